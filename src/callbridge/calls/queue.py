"""The dispatcher's statements, in two implementations with one interface.

SQLite: plain SQLAlchemy connections (no ORM session), each operation a short
transaction queued behind this process's other writes. PostgreSQL: each operation one
prepared statement on the asyncpg pool of the hot paths, committing on its own — the
worker's correctness never needed a transaction spanning two of them: the lease keeps a
call to one worker, the release is a compare-and-set, and a crash between two statements
is resumed from the event's state.

Per event the worker needs two operations: ``take`` (the next event, marked as being
processed) and ``finish_and_release`` (its outcome and, when it was the call's last
event and none arrived meanwhile, the call handed back).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from callbridge.calls import repository
from callbridge.calls.pg_ingest import PgIngest, _positional, pg_ingest
from callbridge.calls.repository import NextEvent
from callbridge.calls.sqlite_hot import sqlite_hot_path
from callbridge.calls.writes import read_connection, write_connection
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime


class CallQueue(Protocol):
    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]: ...
    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]: ...
    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool: ...
    async def next(self, call_pk: int) -> NextEvent | None: ...
    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None: ...
    async def start(self, event_pk: int, owner: str) -> None: ...
    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None: ...
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
    ) -> bool: ...
    async def release(
        self, call_pk: int, owner: str, seen_event_count: int, next_due: datetime | None
    ) -> bool: ...
    async def drop(self, owner: str, call_pks: list[int] | None) -> int: ...
    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int: ...
    async def executed(self, event_pk: int, source: str) -> set[int]: ...
    async def status(self, event_pk: int) -> str | None: ...


def call_queue(runtime: Runtime) -> CallQueue:
    if runtime.database_kind == "postgresql":
        return PgQueue(pg_ingest(runtime))
    hot_path = sqlite_hot_path(runtime)
    if hot_path is not None:
        return hot_path
    return SessionQueue(runtime)  # SQLite without a file of its own (in memory)


class SessionQueue:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]:
        async with write_connection(self.runtime) as session:
            return await repository.claim_calls(session, owner, limit, lease)

    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]:
        """:meth:`claim`; the first step of each call is left to ``take``."""
        return [(call_pk, None) for call_pk in await self.claim(owner, limit, lease)]

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        async with write_connection(self.runtime) as session:
            return await repository.claim_call(session, call_pk, owner, lease)

    async def next(self, call_pk: int) -> NextEvent | None:
        async with read_connection(self.runtime) as session:
            step = await repository.next_unfinished_event(session, call_pk)
            if step is not None and step.event is not None:
                step.variables.update(await repository.variables_of(session, call_pk))
            return step

    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None:
        """:meth:`next`, and when its event is due and ours to run, mark it as being
        processed, in one transaction."""
        async with write_connection(self.runtime) as session:
            step = await repository.next_unfinished_event(session, call_pk)
            if step is None or step.event is None:
                return step
            event = step.event
            started = (
                start
                and step.lease_owner == owner
                and event.attempts < max_attempts
                and event.due_at <= utcnow()
            )
            if started:
                await repository.start_event(session, event.id, owner)
            variables = await repository.variables_of(session, call_pk)
        return replace(step, variables=variables, started=started)

    async def start(self, event_pk: int, owner: str) -> None:
        async with write_connection(self.runtime) as session:
            await repository.start_event(session, event_pk, owner)

    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        async with write_connection(self.runtime) as session:
            await repository.finish_event(
                session, event_pk, status=status, outcome=outcome, error=error
            )

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
        """Finish the call's last unfinished event and give the call back if no event
        arrived since ``seen_event_count`` was read (else only finish); one transaction."""
        async with write_connection(self.runtime) as session:
            await repository.finish_event(
                session, event_pk, status=status, outcome=outcome, error=error
            )
            return await repository.release_call(
                session, call_pk, owner, seen_event_count=seen_event_count, next_due=None
            )

    async def release(
        self, call_pk: int, owner: str, seen_event_count: int, next_due: datetime | None
    ) -> bool:
        async with write_connection(self.runtime) as session:
            return await repository.release_call(
                session, call_pk, owner, seen_event_count=seen_event_count, next_due=next_due
            )

    async def drop(self, owner: str, call_pks: list[int] | None) -> int:
        async with write_connection(self.runtime) as session:
            return await repository.drop_lease(session, owner, call_pks)

    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int:
        async with write_connection(self.runtime) as session:
            return await repository.renew_leases(session, owner, call_pks, lease)

    async def executed(self, event_pk: int, source: str) -> set[int]:
        async with read_connection(self.runtime) as session:
            return await repository.executed_rule_ids(session, event_pk, source)

    async def status(self, event_pk: int) -> str | None:
        async with read_connection(self.runtime) as session:
            return await repository.event_status(session, event_pk)


_NEXT_PG = _positional(
    repository.NEXT.replace(
        "\nFROM call c\n",
        ",\n       (SELECT json_object_agg(v.name, v.value) FROM call_variable v"
        " WHERE v.call_pk = c.id) AS variables\nFROM call c\n",
    )
)
_START_PG = _positional(repository.START)
# next + start in one statement: the call's earliest unfinished event, marked as being
# processed when it is due, ours and not abandoned (the columns read are those before
# the update, as in ``next``).
_TAKE_PG_TEMPLATE = """
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
_TAKE_PG = _TAKE_PG_TEMPLATE.format(late=repository.LATE)
# claim + the first take of every claimed call in one statement. The call's counter and
# details come from the statement's snapshot (``c``), like its events (``n``): the
# UPDATE's RETURNING may show a newer row (an event stored meanwhile), and the release's
# compare-and-set must then fail.
_CLAIM_TAKE_PG_TEMPLATE = """
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
_CLAIM_TAKE_PG = _CLAIM_TAKE_PG_TEMPLATE.format(late=repository.LATE)
# finish + release (compare-and-set on the event counter) in one statement.
_FINISH_RELEASE_PG = """
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
_FINISH_PG = _positional(repository.FINISH.replace(":outcome", "CAST(:outcome AS json)"))
_RELEASE_PG = _positional(repository.RELEASE)
_CLAIM_ONE_PG = _positional(repository.CLAIM_ONE)
_DROP_PG = (
    "UPDATE call SET lease_owner = NULL, lease_expires_at = NULL "
    "WHERE lease_owner = $1 AND ($2::bigint[] IS NULL OR id = ANY($2::bigint[]))"
)
_RENEW_PG = (
    "UPDATE call SET lease_expires_at = $1 WHERE lease_owner = $2 AND id = ANY($3::bigint[])"
)
_EXECUTED_PG = (
    "SELECT rule_id FROM execution WHERE event_pk = $1 AND source = $2 AND rule_id IS NOT NULL"
)
_STATUS_PG = "SELECT status FROM call_event WHERE id = $1"


def _count(status: str) -> int:
    """``UPDATE 3`` → 3."""
    return int(status.rsplit(" ", 1)[-1]) if status else 0


def _bind(statement: tuple[str, list[str]], values: dict[str, Any]) -> tuple[str, list[Any]]:
    sql, names = statement
    return sql, [values[name] for name in names]


def _dumps(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value is not None else None


def _next_event(call_pk: int, row: Any) -> NextEvent:
    """A row of ``next`` or ``take`` (asyncpg: JSON arrives as text)."""
    return repository.next_event_from_row(call_pk, row, decode_json=json.loads)


class PgQueue:
    def __init__(self, pg: PgIngest) -> None:
        self.pg = pg

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        pool = await self.pg.bookkeeping_pool()
        async with pool.acquire() as connection:
            return list(await connection.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> int:
        pool = await self.pg.bookkeeping_pool()
        async with pool.acquire() as connection:
            return _count(await connection.execute(sql, *args))

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]:
        return await self.pg.claim(owner, limit, lease)

    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]:
        """:meth:`claim`, with each claimed call's ``take`` done by the same statement."""
        now = utcnow()
        rows = await self._fetch(_CLAIM_TAKE_PG, owner, now + lease, now, limit, max_attempts)
        return [(int(row["call_pk"]), _next_event(int(row["call_pk"]), row)) for row in rows]

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        now = utcnow()
        sql, args = _bind(
            _CLAIM_ONE_PG, {"owner": owner, "expires": now + lease, "now": now, "call_pk": call_pk}
        )
        return bool(await self._execute(sql, *args))

    async def next(self, call_pk: int) -> NextEvent | None:
        sql, args = _bind(_NEXT_PG, {"call_pk": call_pk})
        rows = await self._fetch(sql, *args)
        return _next_event(call_pk, rows[0]) if rows else None

    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None:
        rows = await self._fetch(_TAKE_PG, call_pk, owner, utcnow(), start, max_attempts)
        return _next_event(call_pk, rows[0]) if rows else None

    async def start(self, event_pk: int, owner: str) -> None:
        sql, args = _bind(_START_PG, {"owner": owner, "now": utcnow(), "event_pk": event_pk})
        await self._execute(sql, *args)

    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        sql, args = _bind(
            _FINISH_PG,
            {
                "status": status,
                "outcome": _dumps(outcome),
                "error": error,
                "now": utcnow(),
                "event_pk": event_pk,
            },
        )
        await self._execute(sql, *args)

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
            _FINISH_RELEASE_PG,
            status,
            _dumps(outcome),
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
        sql, args = _bind(
            _RELEASE_PG,
            {"next_due": next_due, "call_pk": call_pk, "owner": owner, "seen": seen_event_count},
        )
        return bool(await self._execute(sql, *args))

    async def drop(self, owner: str, call_pks: list[int] | None) -> int:
        return await self._execute(_DROP_PG, owner, call_pks)

    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int:
        if not call_pks:
            return 0
        return await self._execute(_RENEW_PG, utcnow() + lease, owner, call_pks)

    async def executed(self, event_pk: int, source: str) -> set[int]:
        return {int(row[0]) for row in await self._fetch(_EXECUTED_PG, event_pk, source)}

    async def status(self, event_pk: int) -> str | None:
        rows = await self._fetch(_STATUS_PG, event_pk)
        return str(rows[0][0]) if rows else None
