"""What one process keeps for IVRs: compiled IVRs by revision, the system values templates
need, and the invocation log writer. Started and stopped by the app lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from time import monotonic
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from callbridge.errors import NotFound
from callbridge.ivr import repository, service
from callbridge.ivr.compiler import CompiledIvr
from callbridge.ivr.writer import InvocationWriter, batch_store
from callbridge.kit.loads import SharedLoads
from callbridge.runtime import Runtime
from callbridge.system_settings.service import get_system_settings, svaddr

logger = logging.getLogger("callbridge.ivr")

EXTRAS_KEY = "ivr"
# System settings (public URL, time zone) are used at most this long after they were read.
SYSTEM_TTL = 10.0
# How long a compiled IVR is used after its stored revision was last checked. Saves in this
# process take effect at once (``forget``); another process's within this time.
REVISION_TTL = 1.0


@dataclass(frozen=True)
class SystemValues:
    svaddr: str
    tz: tzinfo
    loaded_at: float


class IvrRuntime:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.writer = InvocationWriter(batch_store(runtime))
        # key → (compiled IVR, when its revision was last confirmed)
        self._compiled: dict[str, tuple[CompiledIvr, float]] = {}
        # key → until when every invocation checks the revision (a save in this process
        # is committed just after it says so).
        self._recheck_until: dict[str, float] = {}
        self._system: SystemValues | None = None
        self._loads: SharedLoads[str, CompiledIvr] = SharedLoads()
        self._system_loads: SharedLoads[None, SystemValues] = SharedLoads()

    async def compiled(self, key: str) -> CompiledIvr:
        """The IVR ready to run. The cached copy is used as it is for ``REVISION_TTL``
        seconds; from half that age one small query in the background tells whether it is
        still the stored revision (another process may have saved a change), and only
        then is the IVR loaded and compiled again — so a steady stream of invocations
        never waits for the database. An older copy is not used: invocations wait for
        the check, one check for all of them. Raises NotFound, or IvrInvalid for a stored
        IVR that no longer compiles."""
        cached = self._compiled.get(key)
        now = monotonic()
        age = None
        if cached is not None and now >= self._recheck_until.get(key, 0.0):
            age = now - cached[1]
        loading = self._loads.stale(key, age, REVISION_TTL, partial(self._load_in_own_session, key))
        if loading is not None:
            return await loading
        assert cached is not None  # a kept copy is used only when there is one
        return cached[0]

    async def _load_in_own_session(self, key: str) -> CompiledIvr:
        async with self.runtime.sessionmaker() as session:
            return await self._load(session, key)

    async def _load(self, session: AsyncSession, key: str) -> CompiledIvr:
        now = monotonic()
        cached = self._compiled.get(key)
        current = await repository.revision_of(session, key)
        if current is None:
            self._compiled.pop(key, None)
            raise NotFound(f"IVR '{key}' does not exist")
        if cached is not None and (cached[0].id, cached[0].revision) == current:
            self._compiled[key] = (cached[0], now)
            return cached[0]
        ivr = await repository.get_by_key(session, key)
        if ivr is None:
            raise NotFound(f"IVR '{key}' does not exist")
        compiled = service.compile_for_run(ivr, self.runtime.secrets)
        self._compiled[key] = (compiled, now)
        return compiled

    async def settle(self) -> None:
        """Returns when the checks and loads under way have ended (shutdown, tests)."""
        await self._loads.quiet()
        await self._system_loads.quiet()

    def forget(self, key: str) -> None:
        """The IVR is being changed: check its revision on every invocation for a while."""
        self._compiled.pop(key, None)
        self._loads.forget(key)
        self._recheck_until[key] = monotonic() + REVISION_TTL

    async def system(self, session: AsyncSession | None = None) -> SystemValues:
        """The public URL and time zone templates need, kept like the compiled IVRs: read
        again in the background from half ``SYSTEM_TTL``, waited for after it. With
        ``session`` (the test panel's) stale values are read in that session."""
        values = self._system
        age = monotonic() - values.loaded_at if values is not None else None
        if session is not None and (age is None or age >= SYSTEM_TTL):
            return await self._read_system(session)
        loading = self._system_loads.stale(None, age, SYSTEM_TTL, self._load_system)
        if loading is not None:
            return await loading
        assert values is not None  # kept values are used only when there are some
        return values

    async def _load_system(self) -> SystemValues:
        async with self.runtime.sessionmaker() as session:
            return await self._read_system(session)

    async def _read_system(self, session: AsyncSession) -> SystemValues:
        loaded_at = monotonic()
        settings = self.runtime.settings
        current = await get_system_settings(session, settings)
        try:
            tz: tzinfo = ZoneInfo(current.timezone)
        except (ValueError, KeyError):
            tz = ZoneInfo("UTC")
        values = SystemValues(svaddr(current.public_url, settings), tz, loaded_at)
        self._system = values
        return values


def get_ivr_runtime(source: Runtime | HTTPConnection) -> IvrRuntime:
    runtime = source if isinstance(source, Runtime) else source.app.state.runtime
    ivr_runtime = runtime.extras.get(EXTRAS_KEY)
    if not isinstance(ivr_runtime, IvrRuntime):
        raise RuntimeError("the IVR runtime is not running (is the app lifespan active?)")
    return ivr_runtime


@asynccontextmanager
async def ivr_lifespan(runtime: Runtime) -> AsyncIterator[IvrRuntime]:
    """Start the invocation log writer; on shutdown write everything still queued."""
    ivr_runtime = IvrRuntime(runtime)
    runtime.extras[EXTRAS_KEY] = ivr_runtime
    ivr_runtime.writer.start()
    try:
        yield ivr_runtime
    finally:
        await ivr_runtime.settle()
        await ivr_runtime.writer.stop()
        runtime.extras.pop(EXTRAS_KEY, None)
        if ivr_runtime.writer.failed:
            logger.error("%d IVR invocation logs could not be stored", ivr_runtime.writer.failed)
