"""The app of a dispatcher process (role worker): the background services and the health
checks on loopback, without the web UI, the API or its OpenAPI document, whose modules a
dispatcher never uses (about 10 MB of memory per process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import callbridge
from callbridge.ops import router as ops_router
from callbridge.ops.middleware import Metrics, MetricsMiddleware
from callbridge.services import create_runtime, running_services
from callbridge.settings import Settings


def create_dispatcher_app(settings: Settings, *, serving: bool = False) -> FastAPI:
    """``serving``: built by ``callbridge serve`` (see ``running_services``)."""
    runtime = create_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(runtime, "worker", serving=serving):
            yield

    app = FastAPI(
        title="callbridge dispatcher",
        version=callbridge.__version__,
        lifespan=lifespan,
        openapi_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.metrics = Metrics()
    app.include_router(ops_router.router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
