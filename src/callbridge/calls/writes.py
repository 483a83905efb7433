"""Database sessions of the dispatcher and the rule engine.

Two queues keep the hot path from hurting itself under load:

- connections: at most ``database_pool_size`` − 4 worker sessions at once (at least 2;
  the rest wait here, in order) — the dispatcher may hold hundreds of calls, and
  sessions beyond the pool would open and close a connection each time;
- SQLite writes: SQLite has one writer at a time, and writers that wait for its lock
  sleep in steps of up to 100 ms (its busy handler), so this process queues its own
  hot-path writes (ingest, dispatcher, executions) on an asyncio lock instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callbridge.runtime import Runtime

_LOCK = "calls.sqlite_write_lock"
_SLOTS = "calls.session_slots"


@asynccontextmanager
async def serialized_writes(runtime: Runtime) -> AsyncIterator[None]:
    """Hold around a write transaction, from its first write to its commit."""
    if runtime.database_kind != "sqlite":
        yield
        return
    lock = runtime.extras.get(_LOCK)
    if lock is None:
        lock = runtime.extras[_LOCK] = asyncio.Lock()
    async with lock:
        yield


def _slots(runtime: Runtime) -> asyncio.Semaphore:
    slots: asyncio.Semaphore | None = runtime.extras.get(_SLOTS)
    if slots is None:
        # Leave a few connections of the pool to the web requests.
        size = max(runtime.settings.database_pool_size - 4, 2)
        slots = runtime.extras[_SLOTS] = asyncio.Semaphore(size)
    return slots


@asynccontextmanager
async def read_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A worker session for reading (rolled back on leaving the block)."""
    async with _slots(runtime), runtime.sessionmaker() as session:
        yield session


@asynccontextmanager
async def write_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A worker session for one short write transaction, committed on leaving the block."""
    async with _slots(runtime), serialized_writes(runtime), runtime.sessionmaker() as session:
        yield session
        await session.commit()


@asynccontextmanager
async def read_connection(runtime: Runtime) -> AsyncIterator[AsyncConnection]:
    """A worker connection for SQL reads (no ORM session: the dispatcher's statements are
    plain SQL, and a session costs more CPU than the statement)."""
    async with _slots(runtime), runtime.engine.connect() as connection:
        yield connection


@asynccontextmanager
async def write_connection(runtime: Runtime) -> AsyncIterator[AsyncConnection]:
    """A worker connection for one short write transaction, committed on leaving the
    block (rolled back on an exception)."""
    async with _slots(runtime), serialized_writes(runtime), runtime.engine.begin() as connection:
        yield connection
