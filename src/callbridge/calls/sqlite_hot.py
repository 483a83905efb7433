"""The SQLite hot paths of the dispatcher and the rule engine on a connection of their own.

Through SQLAlchemy and aiosqlite every statement is several hops between the event loop
and aiosqlite's thread (cursor, execute, fetch, commit), and those hops — not SQLite —
were most of the CPU an event cost. Here each operation (a claim, taking the next event,
finishing it, recording a rule's execution with its variables) is one plain function
run on one dedicated thread with its own ``sqlite3`` connection: one hop per operation,
its statements in one transaction. Writes still queue on this process's SQLite write
lock (``writes.serialized_writes``), so they never wait in SQLite's busy handler behind
the ingest's writes.

Values are stored exactly as the SQLAlchemy models store them: timestamps as naive UTC
``YYYY-MM-DD HH:MM:SS.ffffff`` (what ``UTCDateTime`` writes on SQLite), JSON as text.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from callbridge.calls import repository
from callbridge.calls.repository import NextEvent
from callbridge.calls.writes import serialized_writes
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime

_KEY = "calls.sqlite_hot"
T = TypeVar("T")

_CLAIM = repository.CLAIM.format(lock="")
_DROP_ALL = "UPDATE call SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = ?"
_DROP_SOME = (
    "UPDATE call SET lease_owner = NULL, lease_expires_at = NULL "
    "WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))"
)
_RENEW = (
    "UPDATE call SET lease_expires_at = ? WHERE lease_owner = ? "
    "AND id IN (SELECT value FROM json_each(?))"
)
_EXECUTED = (
    "SELECT rule_id FROM execution WHERE event_pk = ? AND source = ? AND rule_id IS NOT NULL"
)
_STATUS = "SELECT status FROM call_event WHERE id = ?"
_FIND_EVENT = "SELECT id, call_pk FROM call_event WHERE dedupe_key = ?"
_STORE_CALL = repository.SQLITE_CALL.format(
    details=", ".join(f"{n} = COALESCE(excluded.{n}, call.{n})" for n in repository.CALL_DETAILS)
)
_STORE_EVENT = repository.SQLITE_EVENT
_STORE_NAMES = (
    "call_id",
    *repository.CALL_DETAILS,
    "event",
    "event_id",
    "dedupe_key",
    "occurred_at",
    "received_at",
    "ended_at",
    "due_at",
    "agent_id",
    "payload",
)


def db_time(value: datetime | None) -> str | None:
    """A timestamp as ``UTCDateTime`` stores it on SQLite (naive UTC, microseconds)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def from_db_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _next_event(connection: sqlite3.Connection, call_pk: int) -> NextEvent | None:
    row = connection.execute(repository.NEXT, {"call_pk": call_pk}).fetchone()
    if row is None:
        return None
    return repository.next_event_from_row(
        call_pk, row, decode_json=json.loads, read_time=from_db_time
    )


def _finish(
    connection: sqlite3.Connection,
    event_pk: int,
    status: str,
    outcome: list[dict[str, Any]] | None,
    error: str | None,
) -> None:
    connection.execute(
        repository.FINISH,
        {
            "status": status,
            "outcome": _json(outcome),
            "error": error,
            "now": db_time(utcnow()),
            "event_pk": event_pk,
        },
    )


def _release(
    connection: sqlite3.Connection,
    call_pk: int,
    owner: str,
    seen_event_count: int,
    next_due: datetime | None,
) -> bool:
    cursor = connection.execute(
        repository.RELEASE,
        {
            "next_due": db_time(next_due),
            "call_pk": call_pk,
            "owner": owner,
            "seen": seen_event_count,
        },
    )
    return cursor.rowcount > 0


def _lease_values(owner: str, lease: timedelta) -> dict[str, Any]:
    """The owner, lease end and current time that the claim statements take."""
    now = utcnow()
    return {"owner": owner, "expires": db_time(now + lease), "now": db_time(now)}


class SqliteHotPath:
    """One ``sqlite3`` connection on one thread; see the module's docstring."""

    def __init__(self, runtime: Runtime, path: str) -> None:
        self.runtime = runtime
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-hot-path")
        self._connection: sqlite3.Connection | None = None

    # ---- running operations ------------------------------------------------------

    def _in_thread(self, work: Callable[[sqlite3.Connection], T], write: bool) -> T:
        connection = self._connection
        if connection is None:
            connection = self._connection = _connect(self.path)
        if not write:
            return work(connection)
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        loop = asyncio.get_running_loop()
        try:
            if not write:
                return await loop.run_in_executor(self._executor, self._in_thread, work, False)
            async with serialized_writes(self.runtime):
                return await loop.run_in_executor(self._executor, self._in_thread, work, True)
        except sqlite3.Error as exc:
            # SQLAlchemy's exception classes, as from the other paths: the API answers
            # 503 for an OperationalError (the database cannot be opened, is locked…).
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=False)

    # ---- the dispatcher's queue (``queue.CallQueue``) ------------------------------

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]:
        values = {**_lease_values(owner, lease), "limit": limit}
        rows = await self._run(lambda c: c.execute(_CLAIM, values).fetchall())
        return [int(row[0]) for row in rows]

    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]:
        return [(call_pk, None) for call_pk in await self.claim(owner, limit, lease)]

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        values = {**_lease_values(owner, lease), "call_pk": call_pk}
        return await self._run(lambda c: c.execute(repository.CLAIM_ONE, values).rowcount > 0)

    async def next(self, call_pk: int) -> NextEvent | None:
        def work(connection: sqlite3.Connection) -> NextEvent | None:
            step = _next_event(connection, call_pk)
            if step is not None and step.event is not None:
                step.variables.update(_variables(connection, call_pk))
            return step

        return await self._run(work, write=False)

    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None:
        def work(connection: sqlite3.Connection) -> NextEvent | None:
            step = _next_event(connection, call_pk)
            if step is None or step.event is None:
                return step
            event = step.event
            now = utcnow()
            started = (
                start
                and step.lease_owner == owner
                and event.attempts < max_attempts
                and event.due_at <= now
            )
            if started:
                connection.execute(
                    repository.START,
                    {"owner": owner, "now": db_time(now), "event_pk": event.id},
                )
            return NextEvent(
                step.event_count,
                step.lease_owner,
                event,
                step.call,
                _variables(connection, call_pk),
                unfinished=step.unfinished,
                started=started,
            )

        return await self._run(work)

    async def start(self, event_pk: int, owner: str) -> None:
        values = {"owner": owner, "now": db_time(utcnow()), "event_pk": event_pk}
        await self._run(lambda c: c.execute(repository.START, values))

    async def finish(
        self, event_pk: int, status: str, outcome: list[dict[str, Any]] | None, error: str | None
    ) -> None:
        await self._run(lambda c: _finish(c, event_pk, status, outcome, error))

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
        def work(connection: sqlite3.Connection) -> bool:
            _finish(connection, event_pk, status, outcome, error)
            return _release(connection, call_pk, owner, seen_event_count, None)

        return await self._run(work)

    async def release(
        self, call_pk: int, owner: str, seen_event_count: int, next_due: datetime | None
    ) -> bool:
        return await self._run(lambda c: _release(c, call_pk, owner, seen_event_count, next_due))

    async def drop(self, owner: str, call_pks: list[int] | None) -> int:
        if call_pks is None:
            return await self._run(lambda c: c.execute(_DROP_ALL, (owner,)).rowcount)
        ids = json.dumps(list(call_pks))
        return await self._run(lambda c: c.execute(_DROP_SOME, (owner, ids)).rowcount)

    async def renew(self, owner: str, call_pks: list[int], lease: timedelta) -> int:
        if not call_pks:
            return 0
        arguments = (db_time(utcnow() + lease), owner, json.dumps(list(call_pks)))
        return await self._run(lambda c: c.execute(_RENEW, arguments).rowcount)

    async def executed(self, event_pk: int, source: str) -> set[int]:
        rows = await self._run(
            lambda c: c.execute(_EXECUTED, (event_pk, source)).fetchall(), write=False
        )
        return {int(row[0]) for row in rows}

    async def status(self, event_pk: int) -> str | None:
        row = await self._run(lambda c: c.execute(_STATUS, (event_pk,)).fetchone(), write=False)
        return str(row[0]) if row is not None else None

    # ---- ingest (``service.store_event``) ------------------------------------------

    async def store(self, values: Mapping[str, Any]) -> tuple[int, int, bool] | None:
        """Create or update the call and add the event, committed when this returns:
        ``(call_pk, event_pk, duplicate)``, or None when the event (by its dedupe key) was
        stored by someone else in between (see ``repository.store_event_row``)."""
        row = {name: values.get(name) for name in _STORE_NAMES}
        for name in ("occurred_at", "ended_at", "due_at", "received_at"):
            row[name] = db_time(row[name])
        row["payload"] = _json(row["payload"])

        def work(connection: sqlite3.Connection) -> tuple[int, int, bool] | None:
            if row["dedupe_key"] is not None:
                found = connection.execute(_FIND_EVENT, (row["dedupe_key"],)).fetchone()
                if found is not None:
                    return int(found[1]), int(found[0]), True
            call_pk = int(connection.execute(_STORE_CALL, row).fetchall()[0][0])
            event = connection.execute(_STORE_EVENT, {**row, "call_pk": call_pk}).fetchall()
            return (call_pk, int(event[0][0]), False) if event else None

        return await self._run(work)

    async def find(self, dedupe_key: str) -> tuple[int, int] | None:
        row = await self._run(
            lambda c: c.execute(_FIND_EVENT, (dedupe_key,)).fetchone(), write=False
        )
        return (int(row[0]), int(row[1])) if row is not None else None

    # ---- the engine's step record (``store.record_step``) ---------------------------

    async def record_step(
        self, execution: Mapping[str, Any], variables: Mapping[str, str], source: str
    ) -> int:
        values = dict(execution)
        for name in repository.EXECUTION_JSON:
            values[name] = _json(values[name])
        values["at"] = db_time(values["at"])
        updated_at = db_time(utcnow())
        rows = [
            {
                "call_pk": execution["call_pk"],
                "name": name,
                "value": value,
                "source": source,
                "updated_at": updated_at,
            }
            for name, value in variables.items()
        ]

        def work(connection: sqlite3.Connection) -> int:
            # fetchall: a RETURNING statement must have run to its end before COMMIT.
            execution_pk = connection.execute(repository.ADD_EXECUTION, values).fetchall()[0][0]
            if execution["error"] is not None:
                connection.execute(repository.COUNT_ERROR, {"call_pk": execution["call_pk"]})
            if rows:
                connection.executemany(repository.UPSERT_VARIABLE, rows)
            return int(execution_pk)

        return await self._run(work)

    async def store_batch(self, calls: str, variables: str, executions: str) -> None:
        """Many calls' executions and variables at once (``repository.SQLITE_STORE_BATCH``:
        JSON documents in, decoded by SQLite on this path's thread, one transaction)."""
        values = {
            "calls": calls,
            "variables": variables,
            "executions": executions,
            "now": db_time(utcnow()),
        }

        def work(connection: sqlite3.Connection) -> None:
            for statement in repository.SQLITE_STORE_BATCH:
                connection.execute(statement, values)

        await self._run(work)


def _variables(connection: sqlite3.Connection, call_pk: int) -> dict[str, str]:
    return {
        row[0]: row[1]
        for row in connection.execute(repository.VARIABLES, {"call_pk": call_pk}).fetchall()
    }


def sqlite_hot_path(runtime: Runtime) -> SqliteHotPath | None:
    """The runtime's hot path, or None when the database is not a SQLite file."""
    if runtime.database_kind != "sqlite":
        return None
    found: SqliteHotPath | None = runtime.extras.get(_KEY)
    if found is None:
        path = make_url(runtime.settings.resolved_database_url).database
        if not path or path == ":memory:" or path.startswith("file:"):
            return None
        found = runtime.extras[_KEY] = SqliteHotPath(runtime, path)
    return found


async def close_sqlite_hot_path(runtime: Runtime) -> None:
    found: SqliteHotPath | None = runtime.extras.pop(_KEY, None)
    if found is not None:
        await found.close()
