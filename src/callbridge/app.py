"""The callbridge web application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError
from starlette.routing import Route
from starlette.types import ASGIApp

import callbridge
from callbridge.admin import auth_pages, pages
from callbridge.admin.rendering import (
    BANNER_PROVIDERS,
    N_,
    NAV,
    Banner,
    NavItem,
    gettext_for,
    render,
    render_message,
    validation_code,
)
from callbridge.agent_desktop import pages as agent_pages
from callbridge.agent_desktop import profile_pages as screen_pop_pages
from callbridge.agent_desktop import router as agent_router
from callbridge.agent_desktop import softphone as agent_softphone
from callbridge.auth.setup import issue_setup_token
from callbridge.call_actions import pages as call_action_pages
from callbridge.call_actions import router as call_actions_router
from callbridge.calls import pages as call_pages
from callbridge.calls import router as calls_router
from callbridge.circuits import pages as circuit_pages
from callbridge.circuits import router as circuits_router
from callbridge.config_io import router as config_router
from callbridge.db.connections import Role
from callbridge.errors import (
    CallbridgeError,
    Conflict,
    FieldError,
    FieldErrors,
    LoginRequired,
    NotFound,
)
from callbridge.history import pages as history_pages
from callbridge.history import router as history_router
from callbridge.hot_routes import serve_hot_routes
from callbridge.ivr import pages as ivr_pages
from callbridge.ivr import router as ivr_router
from callbridge.kit.ids import ids_a_database_can_hold
from callbridge.messages import Message
from callbridge.models import User
from callbridge.monitoring import pages as monitoring_pages
from callbridge.monitoring import router as monitoring_router
from callbridge.oauth_accounts import pages as oauth_pages
from callbridge.oauth_accounts import router as oauth_router
from callbridge.ops import router as ops_router
from callbridge.ops.middleware import EdgeMiddleware, Metrics, MetricsMiddleware
from callbridge.ops.openapi import document_security_and_errors
from callbridge.recordings import pages as recording_pages
from callbridge.recordings import router as recordings_router
from callbridge.runtime import Runtime
from callbridge.services import create_runtime, running_services
from callbridge.settings import Settings
from callbridge.system_settings import router as settings_router
from callbridge.system_settings.service import get_system_settings
from callbridge.tokens import router as tokens_router
from callbridge.users import router as users_router

logger = logging.getLogger("callbridge")

STATIC_DIR = Path(__file__).resolve().parent / "admin" / "static"


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _public_url_banner(
    request: Request, session: AsyncSession, user: User, _: Callable[[str], str]
) -> list[Banner]:
    runtime: Runtime = request.app.state.runtime
    current = await get_system_settings(session, runtime.settings)
    if current.public_url:
        return []
    return [
        Banner(
            "warning",
            _(
                "The public URL is not set: {SVADDR}, OAuth callbacks and playback links "
                "use this server's local address."
            ),
            "/settings",
            _("Set it in Settings"),
        )
    ]


def _register_navigation() -> None:
    if NAV:
        return
    NAV.extend(
        [
            NavItem("calls", N_("Calls"), "/calls"),
            NavItem("executions", N_("Executions"), "/executions"),
            NavItem("call_actions", N_("Call actions"), "/call-actions"),
            NavItem("ivrs", N_("IVRs"), "/ivrs"),
            NavItem("users", N_("Users"), "/users"),
            NavItem("tokens", N_("API tokens"), "/tokens"),
            NavItem("oauth_accounts", N_("OAuth accounts"), "/oauth-accounts"),
            NavItem("recordings", N_("Recordings"), "/recordings"),
            NavItem("history_links", N_("History link"), "/history-links"),
            NavItem("screen_pops", N_("Screen pops"), "/screen-pops"),
            NavItem("settings", N_("Settings"), "/settings"),
            NavItem("agent", N_("Agent console"), "/agent", roles=("admin", "supervisor", "agent")),
            NavItem("audit", N_("Audit log"), "/audit"),
        ]
    )
    BANNER_PROVIDERS.append(_public_url_banner)
    BANNER_PROVIDERS.append(oauth_pages.reauthorization_banner)
    BANNER_PROVIDERS.append(circuit_pages.outage_banner)
    pages.DASHBOARD_CARDS.append(call_pages.dashboard_cards)
    pages.DASHBOARD_CARDS.append(recording_pages.dashboard_cards)
    pages.DASHBOARD_SECTIONS.append(monitoring_pages.dashboard_charts)


def _operation_ids(app: FastAPI) -> None:
    for route in app.routes:
        if isinstance(route, APIRoute) and not route.operation_id:
            route.operation_id = route.name


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CallbridgeError)
    async def callbridge_error(request: Request, exc: CallbridgeError) -> Response:
        if _is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
            if isinstance(exc, FieldError | FieldErrors):
                return JSONResponse({"detail": exc.detail()}, status_code=exc.status_code)
            body: dict[str, Any] = {"detail": exc.message}
            if exc.msg is not None:
                body["code"] = exc.msg.code
            return JSONResponse(body, status_code=exc.status_code, headers=headers)
        if isinstance(exc, LoginRequired):
            return auth_pages.login_redirect(request)
        return await _error_page(request, exc.status_code, exc.msg or exc.message)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(ConnectionError)
    async def storage_unavailable(request: Request, exc: Exception) -> Response:
        logger.error("database unavailable: %s", type(exc).__name__)
        message = N_("Storage is unavailable; retry later.")
        if _is_api(request):
            return JSONResponse({"detail": message}, status_code=503, headers={"Retry-After": "5"})
        return await _error_page(request, 503, message, with_session=False)

    @app.exception_handler(StaleDataError)
    async def deleted_meanwhile(request: Request, exc: StaleDataError) -> Response:
        # Changed while another request deleted it: the row is gone.
        return await callbridge_error(
            request, NotFound("it was deleted by another request meanwhile")
        )

    @app.exception_handler(IntegrityError)
    async def taken_meanwhile(request: Request, exc: IntegrityError) -> Response:
        # A name or key another request took between the check and the write.
        return await callbridge_error(
            request, Conflict("another request stored the same name or key meanwhile: retry")
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {k: v for k, v in error.items() if k in ("loc", "msg", "type", "position")}
            | {"code": validation_code(error)}
            for error in exc.errors()
        ]
        if _is_api(request):
            return JSONResponse({"detail": errors}, status_code=422)
        message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return await _error_page(request, 422, message)


async def _error_page(
    request: Request, status: int, message: str | Message, *, with_session: bool = True
) -> Response:
    user = getattr(request.state, "user", None) if with_session else None
    _ = gettext_for(request, user)
    titles = {
        403: _("Not allowed"),
        404: _("Not found"),
        409: _("Conflict"),
        503: _("Temporarily unavailable"),
    }
    return await render(
        request,
        "error.html",
        {
            "title": titles.get(status, _("Something went wrong")),
            "message": render_message(message, _),
        },
        user=user,
        status_code=status,
    )


class CallbridgeApp(FastAPI):
    """FastAPI with the PBX's hot endpoints served on a lean path (callbridge.hot_routes)."""

    HOT: ClassVar[list[Route]] = [calls_router.HOT_ROUTE, ivr_router.HOT_ROUTE]

    def build_middleware_stack(self) -> ASGIApp:
        return serve_hot_routes(super().build_middleware_stack(), self.router, self.HOT)


async def _edge_error_page(
    request: Request, status: int, message: str, values: dict[str, str]
) -> Response:
    """The HTML error page of the edge middleware (refused forms, unexpected errors)."""
    _ = gettext_for(request, None)
    return await _error_page(request, status, _(message).format(**values), with_session=False)


def create_app(
    settings: Settings | None = None, role: Role = "all", *, serving: bool = False
) -> FastAPI:
    """The application. ``serving``: built by ``callbridge serve`` for a process that
    serves until it ends (see ``running_services``)."""
    runtime = create_runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(runtime, role, serving=serving):
            if role in ("all", "web"):
                await _announce_setup(runtime)
            yield

    app = CallbridgeApp(
        title="callbridge",
        version=callbridge.__version__,
        summary="Self-hosted CTI middleware: PBX events and IVRs to Salesforce and other CRMs.",
        lifespan=lifespan,
        dependencies=[Depends(ids_a_database_can_hold)],
        # callbridge reports through /metrics and its logs, not OpenTelemetry: without
        # this FastAPI asks the OpenTelemetry providers on every request (about 8 µs).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.metrics = Metrics()
    _register_navigation()
    _install_error_handlers(app)
    app.include_router(ops_router.router)
    # The PBX's call events and IVR invocations are the busiest routes: matched first.
    app.include_router(calls_router.router)
    app.include_router(ivr_router.router)
    app.include_router(circuits_router.router)
    app.include_router(users_router.router)
    app.include_router(tokens_router.router)
    app.include_router(settings_router.router)
    app.include_router(config_router.router)
    app.include_router(monitoring_router.router)
    app.include_router(monitoring_pages.router)
    app.include_router(auth_pages.router)
    app.include_router(pages.router)
    app.include_router(oauth_router.router)
    app.include_router(oauth_pages.router)
    app.include_router(recordings_router.router)
    app.include_router(ivr_pages.router)
    app.include_router(circuit_pages.router)
    app.include_router(call_pages.router)
    app.include_router(call_actions_router.router)
    app.include_router(call_action_pages.router)
    app.include_router(recording_pages.router)
    app.include_router(history_router.router)
    app.include_router(history_pages.router)
    app.include_router(agent_pages.router)
    app.include_router(screen_pop_pages.router)
    app.include_router(agent_router.router)
    app.include_router(agent_router.events_router)
    app.include_router(agent_softphone.api)
    app.include_router(agent_softphone.pages)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """Browsers and tools that ask for the icon without reading the page's link."""
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    _operation_ids(app)
    document_security_and_errors(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(
        EdgeMiddleware,
        body_timeout=runtime.settings.body_read_timeout_seconds,
        error_page=_edge_error_page,
        softphone_frame_ancestors=runtime.settings.softphone_frame_ancestors,
    )
    return app


async def _announce_setup(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as session:
        raw = await issue_setup_token(session)
        await session.commit()
    if raw is None:
        return
    async with runtime.sessionmaker() as session:
        current = await get_system_settings(session, runtime.settings)
    base = current.public_url or f"http://{runtime.settings.host}:{runtime.settings.port}/"
    logger.warning(
        "No user exists yet. Create the first administrator at: %ssetup?token=%s", base, raw
    )
