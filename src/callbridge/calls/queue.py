"""The dispatcher's statements, in two implementations with one interface.

SQLite: SQLAlchemy sessions, each operation a short transaction queued behind this
process's other writes. PostgreSQL: each operation one prepared statement on the asyncpg
pool of the hot paths, committing on its own — the worker's correctness never needed a
transaction spanning two of them: the lease keeps a call to one worker, the release is
a compare-and-set, and a crash between two statements is resumed from the event's state.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Protocol

from callbridge.calls import repository
from callbridge.calls.pg_ingest import PgIngest, _positional, pg_ingest
from callbridge.calls.repository import CallInfo, NextEvent, PendingEvent
from callbridge.calls.writes import read_session, write_session
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime


class CallQueue(Protocol):
    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]: ...
    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool: ...
    async def next(self, call_pk: int) -> NextEvent | None: ...
    async def start(self, event_pk: int, owner: str) -> None: ...
    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None: ...
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
    return SessionQueue(runtime)


class SessionQueue:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]:
        async with write_session(self.runtime) as session:
            return await repository.claim_calls(session, owner, limit, lease)

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        async with write_session(self.runtime) as session:
            return await repository.claim_call(session, call_pk, owner, lease)

    async def next(self, call_pk: int) -> NextEvent | None:
        async with read_session(self.runtime) as session:
            step = await repository.next_unfinished_event(session, call_pk)
            if step is not None and step.event is not None:
                step.variables.update(await repository.variables_of(session, call_pk))
            return step

    async def start(self, event_pk: int, owner: str) -> None:
        async with write_session(self.runtime) as session:
            await repository.start_event(session, event_pk, owner)

    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        async with write_session(self.runtime) as session:
            await repository.finish_event(
                session, event_pk, status=status, outcome=outcome, error=error
            )

    async def release(
        self, call_pk: int, owner: str, seen_event_count: int, next_due: datetime | None
    ) -> bool:
        async with write_session(self.runtime) as session:
            return await repository.release_call(
                session, call_pk, owner, seen_event_count=seen_event_count, next_due=next_due
            )

    async def drop(self, owner: str, call_pks: list[int] | None) -> int:
        async with write_session(self.runtime) as session:
            return await repository.drop_lease(session, owner, call_pks)

    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int:
        async with write_session(self.runtime) as session:
            return await repository.renew_leases(session, owner, call_pks, lease)

    async def executed(self, event_pk: int, source: str) -> set[int]:
        async with read_session(self.runtime) as session:
            return await repository.executed_rule_ids(session, event_pk, source)

    async def status(self, event_pk: int) -> str | None:
        async with read_session(self.runtime) as session:
            return await repository.event_status(session, event_pk)


_NEXT_PG = _positional(
    repository.NEXT.replace(
        "\nFROM call c\n",
        ",\n       (SELECT json_object_agg(v.name, v.value) FROM call_variable v"
        " WHERE v.call_pk = c.id) AS variables\nFROM call c\n",
    )
)
_START_PG = _positional(repository.START)
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

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        now = utcnow()
        sql, args = _bind(
            _CLAIM_ONE_PG, {"owner": owner, "expires": now + lease, "now": now, "call_pk": call_pk}
        )
        return bool(await self._execute(sql, *args))

    async def next(self, call_pk: int) -> NextEvent | None:
        sql, args = _bind(_NEXT_PG, {"call_pk": call_pk})
        rows = await self._fetch(sql, *args)
        if not rows:
            return None
        row = rows[0]
        event = None
        if row["id"] is not None:
            event = PendingEvent(
                int(row["id"]),
                row["event"],
                row["event_id"],
                row["occurred_at"],
                row["due_at"],
                int(row["attempts"]),
                json.loads(row["payload"] or "{}"),
                json.loads(row["outcome"]) if row["outcome"] else None,
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
        variables = json.loads(row["variables"]) if row["variables"] else {}
        return NextEvent(int(row["event_count"]), row["lease_owner"], event, call, variables)

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
                "outcome": json.dumps(outcome, ensure_ascii=False) if outcome is not None else None,
                "error": error,
                "now": utcnow(),
                "event_pk": event_pk,
            },
        )
        await self._execute(sql, *args)

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
