"""Start and stop call processing with the app (``create_app``'s lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callbridge.calls.dispatcher import CallWorker, Dispatcher, Processor
from callbridge.runtime import Runtime


@asynccontextmanager
async def call_processing(
    runtime: Runtime, *, run_dispatcher: bool, processor: Processor
) -> AsyncIterator[None]:
    """Roles ``all`` and ``worker`` run the dispatcher; every role can process an event
    inline for ``?wait=true``. On exit, in-flight events finish (or are handed back)."""
    dispatcher: Dispatcher | None = None
    if run_dispatcher:
        dispatcher = Dispatcher(runtime, processor)
        worker = dispatcher.worker
        runtime.extras["dispatcher"] = dispatcher
    else:
        worker = CallWorker(runtime, processor)
    runtime.extras["call_worker"] = worker
    if dispatcher is not None:
        await dispatcher.start()
    else:
        worker.start()
    try:
        yield
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
        else:
            await worker.stop()
            await worker.release_everything()
        runtime.extras.pop("dispatcher", None)
        runtime.extras.pop("call_worker", None)
