"""What the recordings feature runs for the life of a process: the storage (checked at
start-up, closed at shutdown) and, in the worker role, the retention job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from callbridge.recordings.retention import retention_loop
from callbridge.recordings.service import STORAGE_EXTRA, get_storage
from callbridge.runtime import Runtime


@contextlib.asynccontextmanager
async def recordings_lifespan(runtime: Runtime, role: str) -> AsyncIterator[None]:
    storage = get_storage(runtime)  # a half-configured S3 storage fails the start here
    task: asyncio.Task[None] | None = None
    if role in ("all", "worker"):
        task = asyncio.create_task(retention_loop(runtime), name="callbridge-retention")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await storage.close()
        runtime.extras.pop(STORAGE_EXTRA, None)
