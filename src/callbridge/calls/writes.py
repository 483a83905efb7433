"""SQLite has one writer at a time. Writers that wait for its lock sleep in steps of up
to 100 ms (its busy handler), so this process queues its own hot-path writes (ingest,
dispatcher, executions) on an asyncio lock instead: they then never wait for each other
inside SQLite. PostgreSQL needs nothing of the kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.runtime import Runtime

_KEY = "calls.sqlite_write_lock"


@asynccontextmanager
async def serialized_writes(runtime: Runtime) -> AsyncIterator[None]:
    """Hold around a write transaction, from its first write to its commit."""
    if runtime.database_kind != "sqlite":
        yield
        return
    lock = runtime.extras.get(_KEY)
    if lock is None:
        lock = runtime.extras[_KEY] = asyncio.Lock()
    async with lock:
        yield


@asynccontextmanager
async def write_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A session for one short write transaction, committed on leaving the block."""
    async with serialized_writes(runtime), runtime.sessionmaker() as session:
        yield session
        await session.commit()
