"""The PostgreSQL hot paths on a small asyncpg pool of their own: storing an event and
recording a rule's execution with its variables are one prepared statement each (no
ORM, no BEGIN/COMMIT round trips: the statement commits on its own), which roughly
halves the CPU they cost."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import make_url

from callbridge.calls.repository import (
    CALL_DETAILS,
    CLAIM,
    NOTIFY_CHANNEL,
    PG_STORE,
    PG_STORE_BATCH,
)
from callbridge.kit.time import utcnow
from callbridge.runtime import Runtime

_KEY = "calls.pg_ingest"
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


_DETAILS = ", ".join(f"{n} = COALESCE(EXCLUDED.{n}, call.{n})" for n in CALL_DETAILS)
STATEMENT, PARAMETERS = _positional(
    PG_STORE.format(details=_DETAILS, notify=f"pg_notify('{NOTIFY_CHANNEL}', :notice)")
)


CLAIM_STATEMENT, CLAIM_PARAMETERS = _positional(CLAIM.format(lock="FOR UPDATE SKIP LOCKED"))

_STEP = """
WITH x AS (
    INSERT INTO execution (call_pk, event_pk, source, rule_id, label, event, attempt,
                           request, response, duration_ms, extracted, error, attempts,
                           notes, at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9::json, $10, $11::json, $12::json,
            $13::json, $14::json, $15)
    RETURNING id
), v AS (
    INSERT INTO call_variable (call_pk, name, value, source, updated_at)
    SELECT $1, key, value, $16, $15 FROM json_each_text($17::json)
    ON CONFLICT (call_pk, name) DO UPDATE SET
        value = excluded.value, source = excluded.source, updated_at = excluded.updated_at
), e AS (
    UPDATE call SET error_count = error_count + 1 WHERE id = $1 AND $18
)
SELECT id FROM x
"""


async def _keep_session(_connection: Any) -> None:
    """Nothing to undo when a connection goes back to the pool: these pools only run
    self-contained statements (no SET, LISTEN, cursors or advisory locks), so asyncpg's
    default reset — one more round trip per use, about a tenth of the dispatcher's
    CPU — is skipped. An open transaction is still rolled back by asyncpg itself."""


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


class PgIngest:
    """Two small pools. ``pool()``: durable statements (events, executions) that have
    reached the disk when they return, as the PBX's 202 promises. ``bookkeeping_pool()``:
    the dispatcher's own state (claims, leases, event status) with ``synchronous_commit``
    off — visible at once to every worker, flushed a moment later; a database crash can
    only lose the last instants of it, and the work is then resumed after the rules
    already recorded (their executions are durable)."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._pools: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def _pool(self, kind: str, size: int, settings: dict[str, str]) -> Any:
        found = self._pools.get(kind)
        if found is None:
            async with self._lock:
                found = self._pools.get(kind)
                if found is None:
                    import asyncpg

                    found = self._pools[kind] = await asyncpg.create_pool(
                        self.dsn,
                        min_size=1,
                        max_size=size,
                        max_inactive_connection_lifetime=300,
                        server_settings=settings,
                        reset=_keep_session,
                    )
        return found

    async def pool(self) -> Any:
        return await self._pool("durable", self.size, {})

    async def bookkeeping_pool(self) -> Any:
        return await self._pool(
            "bookkeeping", max(self.size // 2, 2), {"synchronous_commit": "off"}
        )

    async def store(self, values: Mapping[str, Any]) -> tuple[int, int, bool] | None:
        arguments = [
            json.dumps(values[name], ensure_ascii=False) if name == "payload" else values[name]
            for name in PARAMETERS
        ]
        pool = await self.pool()
        async with pool.acquire() as connection:
            row = await connection.fetchrow(STATEMENT, *arguments)
        return (int(row[0]), int(row[1]), bool(row[2])) if row is not None else None

    async def record_step(
        self, execution: Mapping[str, Any], variables: Mapping[str, str], source: str
    ) -> int:
        """Insert the execution, upsert the variables, count an error: one statement."""
        pool = await self.pool()
        async with pool.acquire() as connection:
            execution_pk = await connection.fetchval(
                _STEP,
                execution["call_pk"],
                execution["event_pk"],
                execution["source"],
                execution["rule_id"],
                execution["label"],
                execution["event"],
                execution["attempt"],
                _json(execution["request"]),
                _json(execution["response"]),
                execution["duration_ms"],
                _json(execution["extracted"]),
                _json(execution["error"]),
                _json(execution["attempts"]),
                _json(execution["notes"]),
                execution["at"],
                source,
                _json(dict(variables)),
                execution["error"] is not None,
            )
        return int(execution_pk)

    async def store_batch(self, calls: str, variables: str, executions: str) -> None:
        """Many calls' executions and variables at once (``repository.PG_STORE_BATCH``:
        JSON documents in, one statement, committed on its own)."""
        pool = await self.pool()
        async with pool.acquire() as connection:
            await connection.execute(PG_STORE_BATCH, calls, variables, executions, utcnow())

    async def claim(self, owner: str, limit: int, lease: timedelta) -> list[int]:
        """The dispatcher's claim (see ``repository.claim_calls``), one statement."""
        now = utcnow()
        values = {"owner": owner, "expires": now + lease, "now": now, "limit": limit}
        pool = await self.bookkeeping_pool()
        async with pool.acquire() as connection:
            rows = await connection.fetch(
                CLAIM_STATEMENT, *(values[name] for name in CLAIM_PARAMETERS)
            )
        return [int(row[0]) for row in rows]

    async def find(self, dedupe_key: str) -> tuple[int, int] | None:
        pool = await self.pool()
        async with pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT id, call_pk FROM call_event WHERE dedupe_key = $1", dedupe_key
            )
        return (int(row[0]), int(row[1])) if row is not None else None

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            # close() waits for every acquired connection to come back; a task that was
            # cancelled mid-statement must not hold shutdown up for ever.
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except TimeoutError:
                pool.terminate()


def pg_ingest(runtime: Runtime) -> PgIngest:
    found: PgIngest | None = runtime.extras.get(_KEY)
    if found is None:
        url = make_url(runtime.settings.resolved_database_url).set(drivername="postgresql")
        found = PgIngest(
            url.render_as_string(hide_password=False),
            max(min(runtime.settings.database_pool_size, 20), 2),
        )
        runtime.extras[_KEY] = found
    return found


async def close_pg_ingest(runtime: Runtime) -> None:
    found: PgIngest | None = runtime.extras.pop(_KEY, None)
    if found is not None:
        await found.close()
