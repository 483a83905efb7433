"""The resources and background services of one process: what ``create_app``'s lifespan
runs, and all that a dispatcher process runs (``callbridge.dispatcher_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from callbridge.agent_desktop.pops import agent_pops_lifespan, with_screen_pops
from callbridge.call_actions.engine import process_event
from callbridge.calls.lifecycle import call_processing
from callbridge.calls.pbx_auth import settle_checks
from callbridge.calls.store import close_call_store
from callbridge.circuits.prober import probing
from callbridge.circuits.store import DatabaseCircuitStore
from callbridge.db.connections import Role
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.history.rows import with_history
from callbridge.history.sync import history_lifespan
from callbridge.ivr.runtime import ivr_lifespan
from callbridge.kit.collector import settle_long_lived_objects
from callbridge.kit.crypto import SecretBox
from callbridge.oauth_accounts.token_source import DatabaseTokenSource
from callbridge.outbound import outbound_lifespan
from callbridge.recordings.lifecycle import recordings_lifespan
from callbridge.runtime import Runtime
from callbridge.settings import Settings


def create_runtime(settings: Settings) -> Runtime:
    """The engine, its sessions and the secret box of one process."""
    settings.ensure_data_dir()
    # PostgreSQL: no ping before each use of a pooled connection (a round trip per
    # transaction on the event path); a connection found dead fails that one operation
    # and the pool is refreshed, and connections are renewed every half hour.
    pool = (
        {
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_max_overflow,
            "pool_pre_ping": False,
            "pool_recycle": 1800,
        }
        if settings.database_kind == "postgresql"
        else {}
    )
    engine = create_engine(settings.resolved_database_url, **pool)
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        secrets=SecretBox(settings.load_secret_key(), settings.previous_keys()),
    )


@asynccontextmanager
async def running_services(
    runtime: Runtime, role: Role, *, serving: bool = False
) -> AsyncIterator[None]:
    """The outbound client, recordings, the IVR log writer, the history worker, screen
    pops, the dispatcher (roles all and worker) and the circuit prober, for as long as the
    block runs; then the call store's connections and the engine are closed.

    ``serving``: this process serves until it ends (``callbridge serve``): once everything
    has started, what was built is frozen for the garbage collector
    (callbridge.kit.collector); tests leave it off."""
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(
                outbound_lifespan(
                    runtime, DatabaseTokenSource(runtime), DatabaseCircuitStore(runtime)
                )
            )
            await stack.enter_async_context(recordings_lifespan(runtime, role))
            # After the outbound client: the IVR log writer drains before it closes.
            await stack.enter_async_context(ivr_lifespan(runtime))
            # After the outbound client: history batches finish before it closes.
            await stack.enter_async_context(
                history_lifespan(runtime, run_worker=role in ("all", "worker"))
            )
            await stack.enter_async_context(agent_pops_lifespan(runtime, role))
            # After the outbound client: events in flight finish before it closes.
            await stack.enter_async_context(
                call_processing(
                    runtime,
                    run_dispatcher=role in ("all", "worker"),
                    processor=with_screen_pops(with_history(process_event)),
                )
            )
            await stack.enter_async_context(probing(runtime))
            if serving:
                settle_long_lived_objects()
            yield
            await stack.aclose()
    finally:
        await settle_checks()  # a token check in the background uses the engine
        # The IVR log writer and the dispatcher have stopped: their connections go.
        await close_call_store(runtime)
        await runtime.engine.dispose()
