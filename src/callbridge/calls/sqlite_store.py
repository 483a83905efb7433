"""The call store's SQLite driver (``callstore.CallStore``) on a connection of its own.

Through SQLAlchemy and aiosqlite every statement is several hops between the event loop
and aiosqlite's thread (cursor, execute, fetch, commit), and those hops — not SQLite —
were most of the CPU an event cost. Here each operation (storing an event, a claim,
taking the next event, finishing it, recording a rule's execution with its variables)
is one plain function run on one dedicated thread with its own ``sqlite3`` connection:
one hop per operation, its statements in one transaction. Writes still queue on this
process's SQLite write lock (``writes.serialized_writes``), so they never wait in
SQLite's busy handler behind the process's other writes.

Values are stored exactly as the SQLAlchemy models store them: timestamps as naive UTC
``YYYY-MM-DD HH:MM:SS.ffffff`` (``callstore.db_time``), JSON as text.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

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
    PARK,
    RELEASE,
    START,
    STATUS,
    NextEvent,
    db_time,
    from_db_time,
    json_text,
    next_event_from_row,
)
from callbridge.calls.writes import serialized_writes
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime

T = TypeVar("T")

_STORE_CALL_TEMPLATE = """
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
_STORE_CALL = _STORE_CALL_TEMPLATE.format(
    details=", ".join(f"{n} = COALESCE(excluded.{n}, call.{n})" for n in CALL_DETAILS)
)
_STORE_EVENT = """
INSERT INTO call_event (call_pk, dedupe_key, event_id, event, occurred_at, received_at,
                        due_at, agent_id, payload, status, attempts, late)
VALUES (:call_pk, :dedupe_key, :event_id, :event, :occurred_at, :received_at, :due_at,
        :agent_id, :payload, 'pending', 0, 0)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""
_STORE_NAMES = (
    "call_id", *CALL_DETAILS, "event", "event_id", "dedupe_key", "occurred_at",
    "received_at", "ended_at", "due_at", "agent_id", "payload",
)  # fmt: skip
_ADD_EXECUTION_TEMPLATE = """
INSERT INTO execution ({columns})
VALUES ({values})
RETURNING id
"""
_ADD_EXECUTION = _ADD_EXECUTION_TEMPLATE.format(
    columns=", ".join(EXECUTION_COLUMNS), values=", ".join(":" + name for name in EXECUTION_COLUMNS)
)
_COUNT_ERROR = "UPDATE call SET error_count = error_count + 1 WHERE id = :call_pk"
_UPSERT_VARIABLE = """
INSERT INTO call_variable (call_pk, name, value, source, updated_at)
VALUES (:call_pk, :name, :value, :source, :updated_at)
ON CONFLICT (call_pk, name) DO UPDATE SET
    value = excluded.value, source = excluded.source, updated_at = excluded.updated_at
"""
_VARIABLES = "SELECT name, value FROM call_variable WHERE call_pk = ?"
_CLAIM = """
UPDATE call SET lease_owner = :owner, lease_expires_at = :expires
WHERE id IN (
    SELECT id FROM call
    WHERE due_at <= :now AND (lease_expires_at IS NULL OR lease_expires_at < :now)
    ORDER BY due_at
    LIMIT :limit
) AND (lease_expires_at IS NULL OR lease_expires_at < :now)
RETURNING id
"""
_NEXT = """
SELECT c.event_count, c.lease_owner, e.id, e.event, e.event_id, e.occurred_at, e.due_at,
       e.attempts, e.payload, e.outcome, e.parked_at, c.call_id, c.unique_id, c.tel,
       c.tel_name, c.called, c.called_name, c.direction, c.queue,
       (SELECT count(*) FROM call_event n
        WHERE n.call_pk = c.id AND n.status IN ('pending', 'processing')) AS unfinished,
       0 AS started, NULL AS variables
FROM call c
LEFT JOIN call_event e ON e.id = (
    SELECT u.id FROM call_event u
    WHERE u.call_pk = c.id AND u.status IN ('pending', 'processing')
    ORDER BY u.occurred_at, u.id
    LIMIT 1
)
WHERE c.id = :call_pk
"""
_DROP_ALL = "UPDATE call SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = ?"
_DROP_SOME = (
    "UPDATE call SET lease_owner = NULL, lease_expires_at = NULL "
    "WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))"
)
_RENEW = (
    "UPDATE call SET lease_expires_at = ? WHERE lease_owner = ? "
    "AND id IN (SELECT value FROM json_each(?))"
)
# The IVR log writer's batch (see ``pg_store._STORE_BATCH``) in three statements of one
# transaction ("WHERE true" keeps the parser from reading ON CONFLICT as the join's ON).
_STORE_BATCH = (
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


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=30, isolation_level=None, check_same_thread=False, uri=True
    )
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _variables(connection: sqlite3.Connection, call_pk: int) -> dict[str, str]:
    return {row[0]: row[1] for row in connection.execute(_VARIABLES, (call_pk,)).fetchall()}


def _upsert_variables(
    connection: sqlite3.Connection, call_pk: int, values: Mapping[str, str], source: str
) -> None:
    if values:
        now = db_time(utcnow())
        connection.executemany(
            _UPSERT_VARIABLE,
            [
                {"call_pk": call_pk, "name": n, "value": v, "source": source, "updated_at": now}
                for n, v in values.items()
            ],
        )


def _finish(
    connection: sqlite3.Connection,
    event_pk: int,
    status: str,
    outcome: list[dict[str, Any]] | None,
    error: str | None,
) -> None:
    values = {
        "status": status,
        "outcome": json_text(outcome),
        "error": error,
        "now": db_time(utcnow()),
        "event_pk": event_pk,
    }
    connection.execute(FINISH, values)


def _release(
    connection: sqlite3.Connection,
    call_pk: int,
    owner: str,
    seen_event_count: int,
    next_due: datetime | None,
) -> bool:
    values = {
        "next_due": db_time(next_due),
        "call_pk": call_pk,
        "owner": owner,
        "seen": seen_event_count,
    }
    return connection.execute(RELEASE, values).rowcount > 0


def _lease_values(owner: str, lease: timedelta) -> dict[str, Any]:
    """The owner, lease end and current time that the claim statements take."""
    now = utcnow()
    return {"owner": owner, "expires": db_time(now + lease), "now": db_time(now)}


class SqliteCallStore:
    """One ``sqlite3`` connection on one thread; see the module's docstring."""

    def __init__(self, runtime: Runtime, path: str) -> None:
        self.runtime = runtime
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-call-store")
        self._connection: sqlite3.Connection | None = None

    @classmethod
    def of(cls, runtime: Runtime) -> SqliteCallStore:
        path = make_url(runtime.settings.resolved_database_url).database
        if not path or path == ":memory:":
            # Its own connection would see a database of its own.
            raise ValueError("the call store needs a SQLite database file, not :memory:")
        return cls(runtime, path)

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
            # SQLAlchemy's exception classes, as from the ORM: the API answers 503 for an
            # OperationalError (the database cannot be opened, is locked…).
            raise DBAPIError.instance(None, None, exc, sqlite3.Error) from exc

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, close)
        self._executor.shutdown(wait=False)

    # ---- ingest ----------------------------------------------------------------------

    async def store_event(self, values: Mapping[str, Any]) -> tuple[int, int, bool] | None:
        row = {name: values.get(name) for name in _STORE_NAMES}
        for name in ("occurred_at", "ended_at", "due_at", "received_at"):
            row[name] = db_time(row[name])
        row["payload"] = json_text(row["payload"])

        def work(connection: sqlite3.Connection) -> tuple[int, int, bool] | None:
            if row["dedupe_key"] is not None:
                found = connection.execute(FIND_EVENT, row).fetchone()
                if found is not None:
                    return int(found[1]), int(found[0]), True
            call_pk = int(connection.execute(_STORE_CALL, row).fetchall()[0][0])
            event = connection.execute(_STORE_EVENT, {**row, "call_pk": call_pk}).fetchall()
            return (call_pk, int(event[0][0]), False) if event else None

        return await self._run(work)

    async def find_event(self, dedupe_key: str) -> tuple[int, int] | None:
        values = {"dedupe_key": dedupe_key}
        row = await self._run(lambda c: c.execute(FIND_EVENT, values).fetchone(), write=False)
        return (int(row[0]), int(row[1])) if row is not None else None

    # ---- variables and executions ----------------------------------------------------

    async def ensure_call(self, call_id: str, details: Mapping[str, str | None]) -> int:
        values = {
            **dict.fromkeys(CALL_DETAILS),
            **details,
            "call_id": call_id,
            "now": db_time(utcnow()),
        }

        def work(connection: sqlite3.Connection) -> int:
            connection.execute(ENSURE_CALL, values)
            return int(connection.execute(CALL_PK, values).fetchone()[0])

        return await self._run(work)

    async def record_step(
        self, execution: Mapping[str, Any], variables: Mapping[str, str], source: str
    ) -> int:
        values = {
            name: json_text(value) if name in EXECUTION_JSON else value
            for name, value in execution.items()
        }
        values["at"] = db_time(execution["at"])
        call_pk = execution["call_pk"]

        def work(connection: sqlite3.Connection) -> int:
            # fetchall: a RETURNING statement must have run to its end before COMMIT.
            execution_pk = connection.execute(_ADD_EXECUTION, values).fetchall()[0][0]
            if execution["error"] is not None:
                connection.execute(_COUNT_ERROR, {"call_pk": call_pk})
            _upsert_variables(connection, call_pk, variables, source)
            return int(execution_pk)

        return await self._run(work)

    async def set_variables(self, call_pk: int, values: Mapping[str, str], source: str) -> None:
        if values:
            await self._run(lambda c: _upsert_variables(c, call_pk, values, source))

    async def store_batch(self, calls: str, variables: str, executions: str) -> None:
        values = {
            "calls": calls,
            "variables": variables,
            "executions": executions,
            "now": db_time(utcnow()),
        }

        def work(connection: sqlite3.Connection) -> None:
            for statement in _STORE_BATCH:
                connection.execute(statement, values)

        await self._run(work)

    # ---- the dispatcher's queue ------------------------------------------------------

    async def claim_steps(
        self, owner: str, limit: int, lease: timedelta, *, max_attempts: int
    ) -> list[tuple[int, NextEvent | None]]:
        """The claim; the first step of each call is left to ``take``. The single
        UPDATE runs under the database's one write lock, which serialises claims."""
        values = {**_lease_values(owner, lease), "limit": limit}
        rows = await self._run(lambda c: c.execute(_CLAIM, values).fetchall())
        return [(int(row[0]), None) for row in rows]

    async def claim_one(self, call_pk: int, owner: str, lease: timedelta) -> bool:
        values = {**_lease_values(owner, lease), "call_pk": call_pk}
        return await self._run(lambda c: c.execute(CLAIM_ONE, values).rowcount > 0)

    async def take(
        self, call_pk: int, owner: str, *, start: bool, max_attempts: int
    ) -> NextEvent | None:
        def work(connection: sqlite3.Connection) -> NextEvent | None:
            row = connection.execute(_NEXT, {"call_pk": call_pk}).fetchone()
            if row is None:
                return None
            step = next_event_from_row(call_pk, row, read_time=from_db_time)
            event = step.event
            if event is None:
                return step
            now = utcnow()
            started = (
                start
                and step.lease_owner == owner
                and event.attempts < max_attempts
                and event.due_at <= now
            )
            if started:
                connection.execute(
                    START, {"owner": owner, "now": db_time(now), "event_pk": event.id}
                )
            return replace(step, variables=_variables(connection, call_pk), started=started)

        return await self._run(work)

    async def start(self, event_pk: int, owner: str) -> None:
        values = {"owner": owner, "now": db_time(utcnow()), "event_pk": event_pk}
        await self._run(lambda c: c.execute(START, values))

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
            "now": db_time(utcnow()),
            "next_due": db_time(next_due),
        }

        def work(connection: sqlite3.Connection) -> bool:
            connection.execute(PARK, values)
            return _release(connection, call_pk, owner, seen_event_count, next_due)

        return await self._run(work)

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
        values = {"event_pk": event_pk, "source": source}
        rows = await self._run(lambda c: c.execute(EXECUTED, values).fetchall(), write=False)
        return {int(row[0]) for row in rows}

    async def status(self, event_pk: int) -> str | None:
        values = {"event_pk": event_pk}
        row = await self._run(lambda c: c.execute(STATUS, values).fetchone(), write=False)
        return str(row[0]) if row is not None else None
