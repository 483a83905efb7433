"""The call store's PostgreSQL driver (``callstore.CallStore``): every operation one
prepared asyncpg statement on a small pool of its own, committing on its own (no ORM, no
BEGIN/COMMIT round trips). The worker's correctness never needed a transaction spanning
two operations: the lease keeps a call to one worker, the release is a compare-and-set,
and a crash between two statements is resumed from the event's state."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from callbridge.calls.callstore import (
    CALL_DETAILS,
    CALL_PK,
    CLAIM_ONE,
    ENSURE_CALL,
    EXECUTED,
    EXECUTION_COLUMNS,
    EXECUTION_JSON,
    FIND_EVENT,
    FINISH,
    LATE,
    NOTIFY_CHANNEL,
    PARK,
    RELEASE,
    START,
    STATUS,
    NextEvent,
    json_text,
    next_event_from_row,
)
from callbridge.db.connections import call_store_pool_sizes, server_settings
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime

_PARAMETER = re.compile(r"(?<![:\w]):([a-z_]+)")


def _positional(statement: str) -> tuple[str, list[str]]:
    """``:name`` parameters → ``$n`` (asyncpg), with the order of the names."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAMETER.sub(number, statement), names


# Store an event: one statement that finds a repeat, creates or updates the call, adds
# the event and notifies listening workers (at commit).
_STORE_TEMPLATE = """
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
FROM e CROSS JOIN LATERAL (SELECT pg_notify('{channel}', :notice)) AS notified
UNION ALL
SELECT existing.call_pk, existing.id, true FROM existing
"""
_STORE = _positional(
    _STORE_TEMPLATE.format(
        details=", ".join(f"{n} = COALESCE(EXCLUDED.{n}, call.{n})" for n in CALL_DETAILS),
        channel=NOTIFY_CHANNEL,
    )
)
# The variables of a call: the JSON object's members upserted.
_UPSERT_VARIABLES = """
    INSERT INTO call_variable (call_pk, name, value, source, updated_at)
    SELECT $1, key, value, $2, $3 FROM json_each_text($4::json)
    ON CONFLICT (call_pk, name) DO UPDATE SET
        value = excluded.value, source = excluded.source, updated_at = excluded.updated_at
"""
# An execution, an error counted on its call, the variables it extracted: one statement.
_STEP_TEMPLATE = """
WITH x AS (
    INSERT INTO execution ({columns})
    VALUES ($5, $6, $7, $8, $9, $10, $11, $12::json, $13::json, $14, $15::json, $16::json,
            $17::json, $18::json, $19, $20, $21)
    RETURNING id
), v AS ({variables}), e AS (
    UPDATE call SET error_count = error_count + 1 WHERE id = $1 AND $16::json IS NOT NULL
)
SELECT id FROM x
"""
_STEP = _STEP_TEMPLATE.format(columns=", ".join(EXECUTION_COLUMNS), variables=_UPSERT_VARIABLES)
# The IVR log writer's batch as three JSON documents decoded by the database: ``calls``
# one entry per call_id (``errors``: its new failed executions), ``variables`` one per
# (call_id, name), ``executions`` in order with their ``call_id`` and ``at`` in naive
# UTC. A new call is created without events; an existing one only counts the errors.
_STORE_BATCH = """
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
# next + start in one statement: the call's earliest unfinished event, marked as being
# processed when it is due, ours and not abandoned (the columns read are those before
# the update).
_TAKE_TEMPLATE = """
WITH c AS (
    SELECT id, event_count, lease_owner, call_id, unique_id, tel, tel_name, called,
           called_name, direction, queue
    FROM call WHERE id = $1
), n AS (
    SELECT u.id, u.event, u.event_id, u.occurred_at, u.due_at, u.attempts, u.payload,
           u.outcome, u.parked_at, count(*) OVER () AS unfinished
    FROM call_event u
    WHERE u.call_pk = $1 AND u.status IN ('pending', 'processing')
    ORDER BY u.occurred_at, u.id
    LIMIT 1
), s AS (
    UPDATE call_event SET
        status = 'processing', attempts = call_event.attempts + 1, worker = $2,
        started_at = $3,
        late = {late}
    FROM n, c
    WHERE call_event.id = n.id AND $4 AND n.due_at <= $3 AND n.attempts < $5
      AND c.lease_owner = $2
    RETURNING call_event.id
)
SELECT c.event_count, c.lease_owner, n.id, n.event, n.event_id, n.occurred_at, n.due_at,
       n.attempts, n.payload, n.outcome, n.parked_at, n.unfinished, c.call_id, c.unique_id, c.tel,
       c.tel_name, c.called, c.called_name, c.direction, c.queue,
       EXISTS (SELECT 1 FROM s) AS started,
       CASE WHEN n.id IS NOT NULL THEN
           (SELECT json_object_agg(v.name, v.value) FROM call_variable v WHERE v.call_pk = $1)
       END AS variables
FROM c LEFT JOIN n ON true
"""
_TAKE = _TAKE_TEMPLATE.format(late=LATE)
# claim + the first take of every claimed call in one statement. ``FOR UPDATE SKIP
# LOCKED`` lets any number of workers claim at once without waiting for or
# double-claiming each other's rows. The call's counter and details come from the
# statement's snapshot (``c``), like its events (``n``): the UPDATE's RETURNING may show
# a newer row (an event stored meanwhile), and the release's compare-and-set must then
# fail.
_CLAIM_TAKE_TEMPLATE = """
WITH claimed AS (
    UPDATE call SET lease_owner = $1, lease_expires_at = $2
    WHERE id IN (
        SELECT id FROM call
        WHERE due_at <= $3 AND (lease_expires_at IS NULL OR lease_expires_at < $3)
        ORDER BY due_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) AND (lease_expires_at IS NULL OR lease_expires_at < $3)
    RETURNING id
), n AS (
    SELECT DISTINCT ON (u.call_pk) u.call_pk, u.id, u.event, u.event_id, u.occurred_at,
           u.due_at, u.attempts, u.payload, u.outcome, u.parked_at,
           count(*) OVER (PARTITION BY u.call_pk) AS unfinished
    FROM call_event u
    WHERE u.call_pk IN (SELECT id FROM claimed) AND u.status IN ('pending', 'processing')
    ORDER BY u.call_pk, u.occurred_at, u.id
), s AS (
    UPDATE call_event SET
        status = 'processing', attempts = call_event.attempts + 1, worker = $1,
        started_at = $3,
        late = {late}
    FROM n
    WHERE call_event.id = n.id AND n.due_at <= $3 AND n.attempts < $5
    RETURNING call_event.id
)
SELECT claimed.id AS call_pk, c.event_count, $1::text AS lease_owner, n.id, n.event,
       n.event_id, n.occurred_at, n.due_at, n.attempts, n.payload, n.outcome, n.parked_at,
       n.unfinished,
       c.call_id, c.unique_id, c.tel, c.tel_name, c.called, c.called_name, c.direction,
       c.queue, n.id IN (SELECT id FROM s) AS started,
       CASE WHEN n.id IS NOT NULL THEN
           (SELECT json_object_agg(v.name, v.value) FROM call_variable v
            WHERE v.call_pk = claimed.id)
       END AS variables
FROM claimed
JOIN call c ON c.id = claimed.id
LEFT JOIN n ON n.call_pk = claimed.id
ORDER BY c.due_at
"""
_CLAIM_TAKE = _CLAIM_TAKE_TEMPLATE.format(late=LATE)
# finish + release (compare-and-set on the event counter) in one statement.
_FINISH_RELEASE = """
WITH f AS (
    UPDATE call_event SET status = $1, outcome = $2::json, error = $3, processed_at = $4,
        park_key = NULL,
        resumed_at = CASE WHEN park_key IS NULL THEN resumed_at ELSE $4 END
    WHERE id = $5
    RETURNING id
), r AS (
    UPDATE call SET due_at = NULL, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = $6 AND lease_owner = $7 AND event_count = $8
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM r)
"""
_ENSURE_CALL = _positional(ENSURE_CALL)
_CALL_PK = _positional(CALL_PK)
_FIND_EVENT = _positional(FIND_EVENT)
_START = _positional(START)
_FINISH = _positional(FINISH.replace(":outcome", "CAST(:outcome AS json)"))
_RELEASE = _positional(RELEASE)
_CLAIM_ONE = _positional(CLAIM_ONE)
_PARK_RELEASE_TEMPLATE = "WITH p AS ({park} RETURNING id), r AS ({release} RETURNING id) {exists}"
_PARK_RELEASE = _positional(
    _PARK_RELEASE_TEMPLATE.format(
        park=PARK.replace(":outcome", "CAST(:outcome AS json)"),
        release=RELEASE,
        exists="SELECT EXISTS (SELECT 1 FROM r)",
    )
)
_EXECUTED = _positional(EXECUTED)
_STATUS = _positional(STATUS)
_DROP = (
    "UPDATE call SET lease_owner = NULL, lease_expires_at = NULL "
    "WHERE lease_owner = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))"
)
_RENEW = "UPDATE call SET lease_expires_at = $1 WHERE lease_owner = $2 AND id = ANY($3::bigint[])"


async def _keep_session(_connection: Any) -> None:
    """Nothing to undo when a connection goes back to the pool: these pools only run
    self-contained statements (no SET, LISTEN, cursors or advisory locks), so asyncpg's
    default reset — one more round trip per use, about a tenth of the dispatcher's
    CPU — is skipped. An open transaction is still rolled back by asyncpg itself."""


def _count(status: str) -> int:
    """``UPDATE 3`` → 3."""
    return int(status.rsplit(" ", 1)[-1]) if status else 0


def _bind(statement: tuple[str, list[str]], values: Mapping[str, Any]) -> list[Any]:
    return [values[name] for name in statement[1]]


class PgCallStore:
    """Two small pools. The durable one: events, executions and variables, which have
    reached the disk when their statement returns, as the PBX's 202 promises. The
    bookkeeping one: the dispatcher's own state (claims, leases, event status) with
    ``synchronous_commit`` off — visible at once to every worker, flushed a moment
    later; a database crash can only lose the last instants of it, and the work is then
    resumed after the rules already recorded (their executions are durable)."""

    def __init__(self, dsn: str, size: int, bookkeeping_size: int) -> None:
        self.dsn = dsn
        self.size = size
        self.bookkeeping_size = bookkeeping_size
        self._pools: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, runtime: Runtime) -> PgCallStore:
        url = make_url(runtime.settings.resolved_database_url).set(drivername="postgresql")
        return cls(
            url.render_as_string(hide_password=False), *call_store_pool_sizes(runtime.settings)
        )

    async def _pool(self, kind: str) -> Any:
        found = self._pools.get(kind)
        if found is None:
            async with self._lock:
                found = self._pools.get(kind)
                if found is None:
                    import asyncpg

                    durable = kind == "durable"
                    found = self._pools[kind] = await asyncpg.create_pool(
                        self.dsn,
                        min_size=1,
                        max_size=self.size if durable else self.bookkeeping_size,
                        max_inactive_connection_lifetime=300,
                        server_settings=(
                            server_settings()
                            if durable
                            else server_settings(synchronous_commit="off")
                        ),
                        reset=_keep_session,
                    )
        return found

    async def _fetch(self, sql: str, *args: Any, durable: bool = False) -> list[Any]:
        pool = await self._pool("durable" if durable else "bookkeeping")
        async with pool.acquire() as connection:
            return list(await connection.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any, durable: bool = False) -> int:
        pool = await self._pool("durable" if durable else "bookkeeping")
        async with pool.acquire() as connection:
            return _count(await connection.execute(sql, *args))

    # ---- ingest ----------------------------------------------------------------------

    async def store_event(self, values: Mapping[str, Any]) -> tuple[int, int, bool] | None:
        arguments = _bind(_STORE, {**values, "payload": json_text(values["payload"])})
        rows = await self._fetch(_STORE[0], *arguments, durable=True)
        return (int(rows[0][0]), int(rows[0][1]), bool(rows[0][2])) if rows else None

    async def find_event(self, dedupe_key: str) -> tuple[int, int] | None:
        rows = await self._fetch(_FIND_EVENT[0], dedupe_key, durable=True)
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    # ---- variables and executions ----------------------------------------------------

    async def ensure_call(self, call_id: str, details: Mapping[str, str | None]) -> int:
        values = {**dict.fromkeys(CALL_DETAILS), **details, "call_id": call_id, "now": utcnow()}
        pool = await self._pool("durable")
        async with pool.acquire() as connection:
            await connection.execute(_ENSURE_CALL[0], *_bind(_ENSURE_CALL, values))
            return int(await connection.fetchval(_CALL_PK[0], call_id))

    async def record_step(
        self, execution: Mapping[str, Any], variables: Mapping[str, str], source: str
    ) -> int:
        values = {
            name: json_text(value) if name in EXECUTION_JSON else value
            for name, value in execution.items()
        }
        rows = await self._fetch(
            _STEP,
            execution["call_pk"],
            source,
            execution["at"],
            json_text(dict(variables)),
            *(values[name] for name in EXECUTION_COLUMNS),
            durable=True,
        )
        return int(rows[0][0])

    async def set_variables(self, call_pk: int, values: Mapping[str, str], source: str) -> None:
        if values:
            await self._execute(
                _UPSERT_VARIABLES, call_pk, source, utcnow(), json_text(dict(values)), durable=True
            )

    async def store_batch(self, calls: str, variables: str, executions: str) -> None:
        await self._execute(_STORE_BATCH, calls, variables, executions, utcnow(), durable=True)

    # ---- the dispatcher's queue ------------------------------------------------------

    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]:
        now = utcnow()
        rows = await self._fetch(_CLAIM_TAKE, owner, now + lease, now, limit, max_attempts)
        return [
            (int(row["call_pk"]), next_event_from_row(int(row["call_pk"]), row)) for row in rows
        ]

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        now = utcnow()
        values = {"owner": owner, "expires": now + lease, "now": now, "call_pk": call_pk}
        return bool(await self._execute(_CLAIM_ONE[0], *_bind(_CLAIM_ONE, values)))

    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None:
        rows = await self._fetch(_TAKE, call_pk, owner, utcnow(), start, max_attempts)
        return next_event_from_row(call_pk, rows[0]) if rows else None

    async def start(self, event_pk: int, owner: str) -> None:
        values = {"owner": owner, "now": utcnow(), "event_pk": event_pk}
        await self._execute(_START[0], *_bind(_START, values))

    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        values = {
            "status": status,
            "outcome": json_text(outcome),
            "error": error,
            "now": utcnow(),
            "event_pk": event_pk,
        }
        await self._execute(_FINISH[0], *_bind(_FINISH, values))

    async def finish_and_release(
        self,
        event_pk: int,
        status: str,
        outcome: list[dict[str, Any]] | None,
        error: str | None,
        *,
        call_pk: int,
        owner: str,
        seen_event_count: int,
    ) -> bool:
        rows = await self._fetch(
            _FINISH_RELEASE,
            status,
            json_text(outcome),
            error,
            utcnow(),
            event_pk,
            call_pk,
            owner,
            seen_event_count,
        )
        return bool(rows[0][0])

    async def release(
        self, call_pk: int, owner: str, seen_event_count: int, next_due: datetime | None
    ) -> bool:
        values = {
            "next_due": next_due,
            "call_pk": call_pk,
            "owner": owner,
            "seen": seen_event_count,
        }
        return bool(await self._execute(_RELEASE[0], *_bind(_RELEASE, values)))

    async def park(
        self,
        event_pk: int,
        outcome: list[dict[str, Any]] | None,
        error: str,
        *,
        key: str,
        call_pk: int,
        owner: str,
        seen_event_count: int,
        next_due: datetime,
    ) -> bool:
        values = {
            "event_pk": event_pk,
            "outcome": json_text(outcome),
            "error": error,
            "key": key,
            "now": utcnow(),
            "next_due": next_due,
            "call_pk": call_pk,
            "owner": owner,
            "seen": seen_event_count,
        }
        rows = await self._fetch(_PARK_RELEASE[0], *_bind(_PARK_RELEASE, values))
        return bool(rows[0][0])

    async def drop(self, owner: str, call_pks: list[int] | None) -> int:
        return await self._execute(_DROP, owner, call_pks)

    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int:
        if not call_pks:
            return 0
        return await self._execute(_RENEW, utcnow() + lease, owner, call_pks)

    async def executed(self, event_pk: int, source: str) -> set[int]:
        return {int(row[0]) for row in await self._fetch(_EXECUTED[0], event_pk, source)}

    async def status(self, event_pk: int) -> str | None:
        rows = await self._fetch(_STATUS[0], event_pk)
        return str(rows[0][0]) if rows else None

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            # close() waits for every acquired connection to come back; a task that was
            # cancelled mid-statement must not hold shutdown up for ever.
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except TimeoutError:
                pool.terminate()
