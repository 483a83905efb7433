"""Every SQL statement of the call store and of the dispatcher's queue."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callbridge.db.types import UTCDateTime
from callbridge.kit.time import utcnow
from callbridge.models.call import (
    FAILED_CALL,
    UNFINISHED_EVENT_STATUSES,
    Call,
    CallEvent,
    Execution,
)

NOTIFY_CHANNEL = "callbridge_call_events"

# The dispatcher's statements run on an ORM session or on a plain connection.
Executor = AsyncSession | AsyncConnection


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def dialect_of(executor: AsyncSession | AsyncConnection) -> str:
    if isinstance(executor, AsyncConnection):
        return str(executor.dialect.name)
    return str(executor.get_bind().dialect.name)


def is_postgresql(executor: AsyncSession | AsyncConnection) -> bool:
    return dialect_of(executor) == "postgresql"


# ---- ingest, hot path: statements built once, one round trip on PostgreSQL ----------

CALL_DETAILS = ("unique_id", "tel", "tel_name", "called", "called_name", "direction", "queue")
PG_STORE = """
WITH existing AS (
    SELECT id, call_pk FROM call_event WHERE dedupe_key = :dedupe_key
), c AS (
    INSERT INTO call (call_id, unique_id, tel, tel_name, called, called_name, direction,
                      queue, started_at, ended_at, last_event, due_at, event_count,
                      error_count, created_at, updated_at)
    SELECT :call_id, :unique_id, :tel, :tel_name, :called, :called_name, :direction,
           :queue, :occurred_at, :ended_at, :event, :due_at, 1, 0, :received_at,
           :received_at
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (call_id) DO UPDATE SET
        {details},
        started_at = LEAST(call.started_at, EXCLUDED.started_at),
        ended_at = COALESCE(EXCLUDED.ended_at, call.ended_at),
        last_event = EXCLUDED.last_event,
        due_at = LEAST(call.due_at, EXCLUDED.due_at),
        event_count = call.event_count + 1,
        updated_at = EXCLUDED.updated_at
    RETURNING id
), e AS (
    INSERT INTO call_event (call_pk, dedupe_key, event_id, event, occurred_at, received_at,
                            due_at, agent_id, payload, status, attempts, late)
    SELECT c.id, :dedupe_key, :event_id, :event, :occurred_at, :received_at, :due_at,
           :agent_id, :payload, 'pending', 0, false
    FROM c
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, call_pk
)
SELECT e.call_pk, e.id, false AS duplicate
FROM e CROSS JOIN LATERAL (SELECT {notify}) AS notified
UNION ALL
SELECT existing.call_pk, existing.id, true FROM existing
"""
SQLITE_CALL = """
INSERT INTO call (call_id, unique_id, tel, tel_name, called, called_name, direction, queue,
                  started_at, ended_at, last_event, due_at, event_count, error_count,
                  created_at, updated_at)
VALUES (:call_id, :unique_id, :tel, :tel_name, :called, :called_name, :direction, :queue,
        :occurred_at, :ended_at, :event, :due_at, 1, 0, :received_at, :received_at)
ON CONFLICT (call_id) DO UPDATE SET
    {details},
    started_at = CASE WHEN excluded.started_at < call.started_at
                      THEN excluded.started_at ELSE call.started_at END,
    ended_at = COALESCE(excluded.ended_at, call.ended_at),
    last_event = excluded.last_event,
    due_at = CASE WHEN call.due_at IS NULL OR excluded.due_at < call.due_at
                  THEN excluded.due_at ELSE call.due_at END,
    event_count = call.event_count + 1,
    updated_at = excluded.updated_at
RETURNING id
"""
SQLITE_EVENT = """
INSERT INTO call_event (call_pk, dedupe_key, event_id, event, occurred_at, received_at,
                        due_at, agent_id, payload, status, attempts, late)
VALUES (:call_pk, :dedupe_key, :event_id, :event, :occurred_at, :received_at, :due_at,
        :agent_id, :payload, 'pending', 0, 0)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""
_TIMES = ("occurred_at", "ended_at", "due_at", "received_at")


def _typed(statement: str) -> Any:
    clause = text(statement)
    binds = [bindparam(name, type_=UTCDateTime()) for name in _TIMES if f":{name}" in statement]
    if ":payload" in statement:
        binds.append(bindparam("payload", type_=JSON()))
    return clause.bindparams(*binds)


_STORE_STATEMENTS: dict[str, tuple[Any, ...]] = {}


def _store_statements(session: AsyncSession | AsyncConnection) -> tuple[Any, ...]:
    dialect = dialect_of(session)
    found = _STORE_STATEMENTS.get(dialect)
    if found is None:
        if dialect == "postgresql":
            details = ", ".join(f"{n} = COALESCE(EXCLUDED.{n}, call.{n})" for n in CALL_DETAILS)
            found = (
                _typed(
                    PG_STORE.format(
                        details=details, notify=f"pg_notify('{NOTIFY_CHANNEL}', :notice)"
                    )
                ),
            )
        else:
            details = ", ".join(f"{n} = COALESCE(excluded.{n}, call.{n})" for n in CALL_DETAILS)
            found = (_typed(SQLITE_CALL.format(details=details)), _typed(SQLITE_EVENT))
        _STORE_STATEMENTS[dialect] = found
    return found


async def store_event_row(
    session: AsyncSession | AsyncConnection, values: Mapping[str, Any]
) -> tuple[int, int, bool] | None:
    """Create or update the call and add the event: ``(call_pk, event_pk, duplicate)``,
    or None when a concurrent request stored the same event first. PostgreSQL: one
    statement, which also finds a repeat and notifies listening workers (at commit)."""
    statements = _store_statements(session)
    if len(statements) == 1:
        row = (await session.execute(statements[0], values)).first()
        return (int(row[0]), int(row[1]), bool(row[2])) if row is not None else None
    if values.get("dedupe_key") is not None:
        found = await event_for_dedupe_key(session, values["dedupe_key"])
        if found is not None:
            return found[1], found[0], True
    call_pk = await session.scalar(statements[0], values)
    event_pk = await session.scalar(statements[1], {**values, "call_pk": call_pk})
    return (int(call_pk), int(event_pk), False) if event_pk is not None else None


_FIND_EVENT = text("SELECT id, call_pk FROM call_event WHERE dedupe_key = :key")


async def event_for_dedupe_key(
    session: AsyncSession | AsyncConnection, dedupe_key: str
) -> tuple[int, int] | None:
    row = (await session.execute(_FIND_EVENT, {"key": dedupe_key})).first()
    return (int(row[0]), int(row[1])) if row is not None else None


# ---- dispatcher --------------------------------------------------------------------


# The dispatcher's statements run several times per event: they are written once as
# SQL with typed parameters, so no statement is built or cache-keyed per execution.
CLAIM = """
UPDATE call SET lease_owner = :owner, lease_expires_at = :expires
WHERE id IN (
    SELECT id FROM call
    WHERE due_at <= :now AND (lease_expires_at IS NULL OR lease_expires_at < :now)
    ORDER BY due_at
    LIMIT :limit
    {lock}
) AND (lease_expires_at IS NULL OR lease_expires_at < :now)
RETURNING id
"""
CLAIM_ONE = """
UPDATE call SET lease_owner = :owner, lease_expires_at = :expires
WHERE id = :call_pk AND (lease_expires_at IS NULL OR lease_expires_at < :now)
"""
NEXT = """
SELECT c.event_count, c.lease_owner, e.id, e.event, e.event_id, e.occurred_at, e.due_at,
       e.attempts, e.payload, e.outcome, e.parked_at, c.call_id, c.unique_id, c.tel,
       c.tel_name, c.called, c.called_name, c.direction, c.queue,
       (SELECT count(*) FROM call_event n
        WHERE n.call_pk = c.id AND n.status IN ('pending', 'processing')) AS unfinished
FROM call c
LEFT JOIN call_event e ON e.id = (
    SELECT u.id FROM call_event u
    WHERE u.call_pk = c.id AND u.status IN ('pending', 'processing')
    ORDER BY u.occurred_at, u.id
    LIMIT 1
)
WHERE c.id = :call_pk
"""
# An event is "late" when a later event of its call has already been processed; the one
# expression every statement that starts an event uses.
LATE = """EXISTS (
        SELECT 1 FROM call_event o
        WHERE o.call_pk = call_event.call_pk AND o.status = 'done'
          AND (o.occurred_at > call_event.occurred_at
               OR (o.occurred_at = call_event.occurred_at AND o.id > call_event.id))
    )"""
_START_TEMPLATE = """
UPDATE call_event SET
    status = 'processing', attempts = attempts + 1, worker = :owner, started_at = :now,
    late = {late}
WHERE id = :event_pk
"""
START = _START_TEMPLATE.format(late=LATE)
# A parked event that finishes has resumed: it stops counting as parked.
FINISH = """
UPDATE call_event SET status = :status, outcome = :outcome, error = :error,
                      processed_at = :now, park_key = NULL,
                      resumed_at = CASE WHEN park_key IS NULL THEN resumed_at ELSE :now END
WHERE id = :event_pk
"""
RELEASE = """
UPDATE call SET due_at = :next_due, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :call_pk AND lease_owner = :owner AND event_count = :seen
"""


def _sql(statement: str, *, times: tuple[str, ...] = (), json: tuple[str, ...] = ()) -> Any:
    binds = [bindparam(n, type_=UTCDateTime()) for n in times]
    binds += [bindparam(n, type_=JSON(none_as_null=True)) for n in json]
    return text(statement).bindparams(*binds)


_CLAIM_SQL = {
    "postgresql": _sql(CLAIM.format(lock="FOR UPDATE SKIP LOCKED"), times=("now", "expires")),
    "sqlite": _sql(CLAIM.format(lock=""), times=("now", "expires")),
}
_CLAIM_ONE_SQL = _sql(CLAIM_ONE, times=("now", "expires"))
_NEXT_SQL = _sql(NEXT).columns(
    event_count=Integer(),
    lease_owner=String(),
    id=Integer(),
    event=String(),
    event_id=String(),
    occurred_at=UTCDateTime(),
    due_at=UTCDateTime(),
    attempts=Integer(),
    payload=JSON(),
    outcome=JSON(),
    parked_at=UTCDateTime(),
    call_id=String(),
    unique_id=String(),
    tel=String(),
    tel_name=String(),
    called=String(),
    called_name=String(),
    direction=String(),
    queue=String(),
    unfinished=Integer(),
)
_START_SQL = _sql(START, times=("now",))
_FINISH_SQL = _sql(FINISH, times=("now",), json=("outcome",))
_RELEASE_SQL = _sql(RELEASE, times=("next_due",))


async def claim_calls(session: Executor, owner: str, limit: int, lease: timedelta) -> list[int]:
    """Lease up to ``limit`` calls with due work: never one another worker holds.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim at once
    without waiting for or double-claiming each other's rows; a row claimed concurrently
    is re-checked against the lease just set. SQLite: the single UPDATE statement runs
    under the database's one write lock, which serialises claims.
    """
    now = utcnow()
    statement = _CLAIM_SQL["postgresql" if is_postgresql(session) else "sqlite"]
    rows = await session.execute(
        statement, {"owner": owner, "expires": now + lease, "now": now, "limit": limit}
    )
    return [int(pk) for (pk,) in rows]


async def claim_call(session: Executor, call_pk: int, owner: str, lease: timedelta) -> bool:
    """Lease one given call if nobody holds it (``?wait=true`` processing)."""
    now = utcnow()
    result = await session.execute(
        _CLAIM_ONE_SQL, {"owner": owner, "expires": now + lease, "now": now, "call_pk": call_pk}
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """The fields of an unfinished event the worker needs."""

    id: int
    event: str
    event_id: str | None
    occurred_at: datetime
    due_at: datetime
    attempts: int
    payload: dict[str, Any]
    outcome: list[dict[str, Any]] | None
    # When the event was parked first (DESIGN.md §6), None when it never was.
    parked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NextEvent:
    """What the lease holder needs to decide its next step for one call."""

    event_count: int
    lease_owner: str | None
    event: PendingEvent | None
    call: CallInfo
    # The call's variables (read with the next event, when there is one).
    variables: dict[str, str] = field(default_factory=dict)
    # How many unfinished events the call has (``event`` is the earliest of them).
    unfinished: int = 0
    # ``event`` was marked as being processed by the same operation (see ``take``).
    started: bool = False


async def next_unfinished_event(session: Executor, call_pk: int) -> NextEvent | None:
    """The call's earliest unfinished event with the call's event counter, read in one
    statement so both come from the same snapshot."""
    row = (await session.execute(_NEXT_SQL, {"call_pk": call_pk})).first()
    if row is None:
        return None
    return next_event_from_row(call_pk, row._mapping)


def _as_is(value: Any) -> Any:
    return value


def next_event_from_row(
    call_pk: int,
    row: Any,
    *,
    decode_json: Callable[[Any], Any] = _as_is,
    read_time: Callable[[Any], Any] = _as_is,
) -> NextEvent:
    """A row of ``NEXT`` (or a statement with its columns, optionally ``variables`` and
    ``started``) from any driver: ``decode_json`` and ``read_time`` turn the driver's raw
    JSON and timestamp values into Python ones (SQLAlchemy rows need neither)."""
    keys = set(row.keys())  # asyncpg gives an iterator
    event = None
    if row["id"] is not None:
        event = PendingEvent(
            int(row["id"]),
            row["event"],
            row["event_id"],
            read_time(row["occurred_at"]),
            read_time(row["due_at"]),
            int(row["attempts"]),
            decode_json(row["payload"]) if row["payload"] else {},
            decode_json(row["outcome"]) if row["outcome"] is not None else None,
            read_time(row["parked_at"]) if "parked_at" in keys else None,
        )
    call = CallInfo(
        call_pk,
        row["call_id"],
        row["unique_id"],
        row["tel"],
        row["tel_name"],
        row["called"],
        row["called_name"],
        row["direction"],
        row["queue"],
    )
    variables = row["variables"] if "variables" in keys else None
    return NextEvent(
        int(row["event_count"]),
        row["lease_owner"],
        event,
        call,
        decode_json(variables) if variables else {},
        unfinished=int(row["unfinished"] or 0),
        started=bool(row["started"]) if "started" in keys else False,
    )


async def start_event(session: Executor, event_pk: int, owner: str) -> None:
    """Mark the event as being processed; ``late`` when a later event already ran."""
    await session.execute(_START_SQL, {"owner": owner, "now": utcnow(), "event_pk": event_pk})


async def finish_event(
    session: Executor,
    event_pk: int,
    *,
    status: str,
    outcome: list[dict[str, Any]] | None,
    error: str | None,
) -> None:
    await session.execute(
        _FINISH_SQL,
        {
            "status": status,
            "outcome": outcome,
            "error": error,
            "now": utcnow(),
            "event_pk": event_pk,
        },
    )


async def release_call(
    session: Executor,
    call_pk: int,
    owner: str,
    *,
    seen_event_count: int,
    next_due: datetime | None,
) -> bool:
    """Give the call up if no event arrived since ``seen_event_count`` was read.

    Compare-and-set: an event stored meanwhile bumped the counter, the UPDATE matches
    nothing, and the worker looks again instead of leaving that event behind.
    """
    result = await session.execute(
        _RELEASE_SQL,
        {"next_due": next_due, "call_pk": call_pk, "owner": owner, "seen": seen_event_count},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def drop_lease(session: Executor, owner: str, call_pks: Sequence[int] | None) -> int:
    """Hand calls back without touching their work (shutdown): others take them at once."""
    statement = update(Call).where(Call.lease_owner == owner)
    if call_pks is not None:
        statement = statement.where(Call.id.in_(call_pks))
    result = await session.execute(
        statement.values(lease_owner=None, lease_expires_at=None).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def renew_leases(
    session: Executor, owner: str, call_pks: Sequence[int], lease: timedelta
) -> int:
    if not call_pks:
        return 0
    result = await session.execute(
        update(Call)
        .where(Call.lease_owner == owner, Call.id.in_(call_pks))
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# ---- call store --------------------------------------------------------------------


async def get_call_by_call_id(session: AsyncSession, call_id: str) -> Call | None:
    return await session.scalar(select(Call).where(Call.call_id == call_id))


async def get_or_create_call(session: AsyncSession, call_id: str, values: Mapping[str, Any]) -> int:
    """The call's primary key, creating a bare call (no events) when it is new."""
    now = utcnow()
    statement = (
        _insert(session, Call)
        .values(
            call_id=call_id,
            **values,
            event_count=0,
            error_count=0,
            started_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Call.call_id])
        .returning(Call.id)
    )
    call_pk = await session.scalar(statement)
    if call_pk is None:
        call_pk = await session.scalar(select(Call.id).where(Call.call_id == call_id))
    assert call_pk is not None
    return int(call_pk)


UPSERT_VARIABLE = """
INSERT INTO call_variable (call_pk, name, value, source, updated_at)
VALUES (:call_pk, :name, :value, :source, :updated_at)
ON CONFLICT (call_pk, name) DO UPDATE SET
    value = excluded.value, source = excluded.source, updated_at = excluded.updated_at
"""
ADD_EXECUTION = """
INSERT INTO execution (call_pk, event_pk, source, rule_id, label, event, attempt, request,
                       response, duration_ms, extracted, error, attempts, notes, at, outcome)
VALUES (:call_pk, :event_pk, :source, :rule_id, :label, :event, :attempt, :request,
        :response, :duration_ms, :extracted, :error, :attempts, :notes, :at, :outcome)
RETURNING id
"""
EXECUTION_JSON = ("request", "response", "extracted", "error", "attempts", "notes")
COUNT_ERROR = "UPDATE call SET error_count = error_count + 1 WHERE id = :call_pk"
VARIABLES = "SELECT name, value FROM call_variable WHERE call_pk = :call_pk"
_UPSERT_VARIABLE_SQL = _sql(UPSERT_VARIABLE, times=("updated_at",))
_EXECUTION_SQL = _sql(ADD_EXECUTION, times=("at",), json=EXECUTION_JSON)
_COUNT_ERROR_SQL = text(COUNT_ERROR)
_VARIABLES_SQL = text(VARIABLES)

# ---- call store, many records at once (the IVR log writer) -----------------------------
# The batch arrives as three JSON documents, one per table, decoded by the database: one
# statement on PostgreSQL and three on SQLite, whatever the number of records, instead
# of encoding every value of every row in Python. ``calls``: one entry per call_id
# (``call_id``, ``tel``, ``called``, ``tel_name``, ``errors`` — its new failed
# executions); ``variables``: one entry per (call_id, name), the last value given;
# ``executions``: in order, each with its ``call_id`` and its ``at`` in naive UTC. A new
# call is created without events, as ``get_or_create_call`` does; an existing one only
# counts the errors.

PG_STORE_BATCH = """
WITH c AS (
    INSERT INTO call (call_id, tel, called, tel_name, event_count, error_count, started_at,
                      created_at, updated_at)
    SELECT r.call_id, r.tel, r.called, r.tel_name, 0, r.errors, $4, $4, $4
    FROM json_to_recordset($1::json)
         AS r(call_id text, tel text, called text, tel_name text, errors int)
    ORDER BY r.call_id
    ON CONFLICT (call_id) DO UPDATE SET error_count = call.error_count + EXCLUDED.error_count
    RETURNING id, call_id
), v AS (
    INSERT INTO call_variable (call_pk, name, value, source, updated_at)
    SELECT c.id, r.name, r.value, r.source, $4
    FROM json_to_recordset($2::json) AS r(call_id text, name text, value text, source text)
    JOIN c ON c.call_id = r.call_id
    ON CONFLICT (call_pk, name) DO UPDATE SET
        value = excluded.value, source = excluded.source, updated_at = excluded.updated_at
)
INSERT INTO execution (call_pk, source, rule_id, label, attempt, request, response,
                       duration_ms, extracted, error, attempts, notes, at, outcome)
SELECT c.id, r.source, r.rule_id, r.label, r.attempt, r.request, r.response,
       r.duration_ms, r.extracted, r.error, r.attempts, r.notes, r.at AT TIME ZONE 'UTC',
       r.outcome
FROM json_array_elements($3::json) WITH ORDINALITY AS e(value, n)
CROSS JOIN LATERAL json_to_record(e.value)
     AS r(call_id text, source text, rule_id int, label text, attempt int, request json,
          response json, duration_ms float8, extracted json, error json, attempts json,
          notes json, at timestamp, outcome text)
JOIN c ON c.call_id = r.call_id
ORDER BY e.n
"""
# SQLite: the same in three statements of one transaction ("WHERE true" keeps the parser
# from reading ON CONFLICT as the join's ON).
SQLITE_STORE_BATCH = (
    """
INSERT INTO call (call_id, tel, called, tel_name, event_count, error_count, started_at,
                  created_at, updated_at)
SELECT json_extract(j.value, '$.call_id'), json_extract(j.value, '$.tel'),
       json_extract(j.value, '$.called'), json_extract(j.value, '$.tel_name'), 0,
       json_extract(j.value, '$.errors'), :now, :now, :now
FROM json_each(:calls) AS j WHERE true
ON CONFLICT (call_id) DO UPDATE SET error_count = error_count + excluded.error_count
""",
    """
INSERT INTO call_variable (call_pk, name, value, source, updated_at)
SELECT call.id, json_extract(j.value, '$.name'), json_extract(j.value, '$.value'),
       json_extract(j.value, '$.source'), :now
FROM json_each(:variables) AS j JOIN call ON call.call_id = json_extract(j.value, '$.call_id')
WHERE true
ON CONFLICT (call_pk, name) DO UPDATE SET
    value = excluded.value, source = excluded.source, updated_at = excluded.updated_at
""",
    """
INSERT INTO execution (call_pk, source, rule_id, label, attempt, request, response,
                       duration_ms, extracted, error, attempts, notes, at, outcome)
SELECT call.id, json_extract(j.value, '$.source'), json_extract(j.value, '$.rule_id'),
       json_extract(j.value, '$.label'), json_extract(j.value, '$.attempt'),
       json_extract(j.value, '$.request'), json_extract(j.value, '$.response'),
       json_extract(j.value, '$.duration_ms'), json_extract(j.value, '$.extracted'),
       json_extract(j.value, '$.error'), json_extract(j.value, '$.attempts'),
       json_extract(j.value, '$.notes'), json_extract(j.value, '$.at'),
       json_extract(j.value, '$.outcome')
FROM json_each(:executions) AS j JOIN call ON call.call_id = json_extract(j.value, '$.call_id')
ORDER BY j.key
""",
)

_CALL_INFO_SQL = text(
    "SELECT id, call_id, unique_id, tel, tel_name, called, called_name, direction, queue "
    "FROM call WHERE id = :call_pk"
)


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What templates read from a call."""

    id: int
    call_id: str
    unique_id: str | None
    tel: str | None
    tel_name: str | None
    called: str | None
    called_name: str | None
    direction: str | None
    queue: str | None


async def call_info(session: AsyncSession, call_pk: int) -> CallInfo | None:
    row = (await session.execute(_CALL_INFO_SQL, {"call_pk": call_pk})).first()
    return CallInfo(*row) if row is not None else None


async def variables_of(session: Executor, call_pk: int) -> dict[str, str]:
    rows = await session.execute(_VARIABLES_SQL, {"call_pk": call_pk})
    return {name: value for name, value in rows}


async def upsert_variables(
    session: Executor, call_pk: int, values: Mapping[str, str], source: str
) -> None:
    if not values:
        return
    now = utcnow()
    await session.execute(
        _UPSERT_VARIABLE_SQL,
        [
            {"call_pk": call_pk, "name": name, "value": value, "source": source, "updated_at": now}
            for name, value in values.items()
        ],
    )


async def add_execution(session: Executor, values: Mapping[str, Any]) -> int:
    execution_pk = await session.scalar(_EXECUTION_SQL, dict(values))
    if values.get("error") is not None:
        await session.execute(_COUNT_ERROR_SQL, {"call_pk": values["call_pk"]})
    assert execution_pk is not None
    return int(execution_pk)


async def executed_rule_ids(session: Executor, event_pk: int, source: str) -> set[int]:
    rows = await session.scalars(
        select(Execution.rule_id).where(
            Execution.event_pk == event_pk,
            Execution.source == source,
            Execution.rule_id.is_not(None),
        )
    )
    return {int(r) for r in rows if r is not None}


async def executions_of_event(session: AsyncSession, event_pk: int) -> list[Execution]:
    rows = await session.scalars(
        select(Execution).where(Execution.event_pk == event_pk).order_by(Execution.id)
    )
    return list(rows)


async def events_of(session: AsyncSession, call_pk: int) -> list[CallEvent]:
    rows = await session.scalars(
        select(CallEvent)
        .where(CallEvent.call_pk == call_pk)
        .order_by(CallEvent.occurred_at, CallEvent.id)
    )
    return list(rows)


async def executions_of(session: AsyncSession, call_pk: int) -> list[Execution]:
    rows = await session.scalars(
        select(Execution).where(Execution.call_pk == call_pk).order_by(Execution.id)
    )
    return list(rows)


async def event_status(session: Executor, event_pk: int) -> str | None:
    return await session.scalar(select(CallEvent.status).where(CallEvent.id == event_pk))


def call_filters(
    *,
    tel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if tel:
        conditions.append(
            or_(Call.tel.contains(tel, autoescape=True), Call.called.contains(tel, autoescape=True))
        )
    if since is not None:
        conditions.append(Call.started_at >= since)
    if until is not None:
        conditions.append(Call.started_at < until)
    if status == "pending":
        conditions.append(Call.due_at.is_not(None))
    elif status == "error":
        # As written, so that the partial index ix_call_failed serves it.
        conditions.append(literal_column(FAILED_CALL, Boolean()))
    elif status == "ok":
        conditions.append(and_(Call.due_at.is_(None), Call.error_count == 0))
    return conditions


async def list_calls(
    session: AsyncSession, conditions: list[ColumnElement[bool]], limit: int, offset: int
) -> tuple[list[Call], int]:
    total = await count_calls(session, conditions)
    rows = await session.scalars(
        select(Call)
        .where(*conditions)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


async def count_calls(session: AsyncSession, conditions: list[ColumnElement[bool]]) -> int:
    return int(await session.scalar(select(func.count()).select_from(Call).where(*conditions)) or 0)


async def backlog(session: AsyncSession) -> dict[str, int]:
    """Events waiting and being processed (dashboard, benchmarks)."""
    rows = await session.execute(
        select(CallEvent.status, func.count())
        .where(CallEvent.status.in_(UNFINISHED_EVENT_STATUSES))
        .group_by(CallEvent.status)
    )
    counts = {"pending": 0, "processing": 0}
    counts.update({status: int(n) for status, n in rows})
    return counts
