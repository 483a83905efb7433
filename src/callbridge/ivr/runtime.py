"""What one process keeps for IVRs: compiled IVRs by revision, the system values templates
need, and the invocation log writer. Started and stopped by the app lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from callbridge.errors import NotFound
from callbridge.ivr import repository, service
from callbridge.ivr.compiler import CompiledIvr
from callbridge.ivr.writer import InvocationWriter
from callbridge.runtime import Runtime
from callbridge.system_settings.service import get_system_settings, svaddr

logger = logging.getLogger("callbridge.ivr")

EXTRAS_KEY = "ivr"
# System settings (public URL, time zone) are re-read at most this often per process.
_SYSTEM_TTL = 10.0
# How long a compiled IVR is used before its stored revision is checked again. Saves in
# this process take effect at once (``forget``); another process's within this time.
REVISION_TTL = 1.0


@dataclass(frozen=True)
class SystemValues:
    svaddr: str
    tz: tzinfo
    loaded_at: float


class IvrRuntime:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.writer = InvocationWriter(runtime.sessionmaker)
        # key → (compiled IVR, when its revision was last confirmed)
        self._compiled: dict[str, tuple[CompiledIvr, float]] = {}
        # key → until when every invocation checks the revision (a save in this process
        # is committed just after it says so).
        self._recheck_until: dict[str, float] = {}
        self._system: SystemValues | None = None
        self._loading: dict[str, asyncio.Future[CompiledIvr]] = {}

    def fresh(self, key: str) -> CompiledIvr | None:
        """The compiled IVR when it can be used without asking the database."""
        cached = self._compiled.get(key)
        if cached is None:
            return None
        now = time.monotonic()
        if now - cached[1] < REVISION_TTL and now >= self._recheck_until.get(key, 0.0):
            return cached[0]
        return None

    async def compiled(self, key: str) -> CompiledIvr:
        """The IVR ready to run. The cached copy is used as it is for ``REVISION_TTL``
        seconds; after that one small query tells whether it is still the stored revision
        (another process may have saved a change), and only then is the IVR loaded and
        compiled again. Invocations arriving while that check runs wait for it rather than
        each asking the database. Raises NotFound, or IvrInvalid for a stored IVR that no
        longer compiles."""
        ready = self.fresh(key)
        if ready is not None:
            return ready
        loading = self._loading.get(key)
        if loading is None:
            # A task of its own: a caller that hangs up does not cancel the others' load.
            loading = asyncio.ensure_future(self._load_in_own_session(key))
            self._loading[key] = loading
            loading.add_done_callback(lambda done: self._loaded(key, done))
        return await asyncio.shield(loading)

    def _loaded(self, key: str, done: asyncio.Future[CompiledIvr]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]

    async def _load_in_own_session(self, key: str) -> CompiledIvr:
        async with self.runtime.sessionmaker() as session:
            return await self._load(session, key)

    async def _load(self, session: AsyncSession, key: str) -> CompiledIvr:
        now = time.monotonic()
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

    def forget(self, key: str) -> None:
        """The IVR is being changed: check its revision on every invocation for a while."""
        self._compiled.pop(key, None)
        self._loading.pop(key, None)  # a load under way may have read the old revision
        self._recheck_until[key] = time.monotonic() + REVISION_TTL

    async def system(self, session: AsyncSession | None = None) -> SystemValues:
        """Without ``session`` a session of its own is opened when the values are stale."""
        values = self._system
        now = time.monotonic()
        if values is not None and now - values.loaded_at < _SYSTEM_TTL:
            return values
        settings = self.runtime.settings
        if session is None:
            async with self.runtime.sessionmaker() as own:
                current = await get_system_settings(own, settings)
        else:
            current = await get_system_settings(session, settings)
        try:
            tz: tzinfo = ZoneInfo(current.timezone)
        except (ValueError, KeyError):
            tz = ZoneInfo("UTC")
        values = SystemValues(svaddr(current.public_url, settings), tz, now)
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
        await ivr_runtime.writer.stop()
        runtime.extras.pop(EXTRAS_KEY, None)
        if ivr_runtime.writer.failed:
            logger.error("%d IVR invocation logs could not be stored", ivr_runtime.writer.failed)
