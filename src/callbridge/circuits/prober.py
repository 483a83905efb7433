"""The probe loop of a dispatcher process: once a second, for each open circuit, try to
take its probe (one process wins per second, see ``store.claim_probe``), and while
parked work of a recovered CRM is resuming, wake the dispatcher so the calls start at
their paced due times rather than at its next poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from callbridge.circuits.store import PROBE_SECONDS, DatabaseCircuitStore, parked_counts
from callbridge.outbound import get_outbound
from callbridge.runtime import Runtime

logger = logging.getLogger("callbridge.circuits")


class Prober:
    def __init__(self, runtime: Runtime, wake: Callable[[], None]) -> None:
        self.runtime = runtime
        self.store = DatabaseCircuitStore(runtime)
        self.wake = wake
        self.probes_claimed = 0

    async def tick(self) -> None:
        circuits = get_outbound(self.runtime).circuits
        if circuits is None:
            return
        await circuits.refresh()
        open_keys = set(circuits.open_circuits)
        for key in sorted(open_keys):
            if await self.store.claim_probe(key):
                self.probes_claimed += 1
                self.wake()
        waiting = [key for key in await parked_counts(self.runtime) if key not in open_keys]
        for key in waiting:
            await self.store.resume_stranded(key)
        if waiting:
            self.wake()  # parked work of a recovered CRM is resuming

    async def run(self) -> None:
        """Tick once a second on a fixed schedule (a slow tick does not push the next)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + PROBE_SECONDS, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                await self.tick()
            except Exception:
                logger.warning("probing the open circuits failed", exc_info=True)


@asynccontextmanager
async def probing(runtime: Runtime) -> AsyncIterator[Prober | None]:
    """Run the prober beside this process's dispatcher (none in a web-only process)."""
    dispatcher = runtime.extras.get("dispatcher")
    if dispatcher is None:
        yield None
        return
    prober = Prober(runtime, dispatcher.wake)
    runtime.extras["circuits.prober"] = prober
    task = asyncio.create_task(prober.run(), name="circuit-prober")
    try:
        yield prober
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        runtime.extras.pop("circuits.prober", None)
