"""The PBX's two busiest endpoints (call events, IVR invoke) on a lean path.

Profiles of the IVR at 50 callers put about a third of the CPU of an invocation in the
ASGI and FastAPI layers; of that, FastAPI's routing, request wrapping and dependency
solving are the part callbridge can skip. ``HotRoutes`` sits where the router sits in
the application's middleware stack: every middleware (request IDs, metrics, the error
handlers and whatever is added later) still wraps these requests, exactly as for any
other route. For a request that one of the hot routes matches — matched with that
route's own path pattern and method, so the URLs are the same — it sets the scope as the
router would (``route``, ``endpoint``, ``path_params``) and calls the endpoint's plain
function, which checks the PBX token and reads the body with the same code as before;
errors are raised to the same exception handlers. Everything else goes to the router.

The FastAPI routes stay declared with the same path templates: they document the
endpoints (OpenAPI); requests no longer reach them. The application's own dependencies
are not run for them: the one there is (``ids_a_database_can_hold``) checks whole-number
path parameters, which these routes do not have (a test pins that list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

HotHandler = Callable[[Request], Awaitable[Response]]

_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def query_flag(request: Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter read as FastAPI reads one (``true``/``1``/``yes``/``on``
    …), with FastAPI's 422 for anything else."""
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return _BOOL.validate_python(value)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("query", name, *error["loc"])}
            for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


def hot_route(path: str, handler: HotHandler) -> Route:
    """A POST route of the lean path: the same path template as the FastAPI route that
    documents it (Starlette compiles both alike), served by ``handler``."""
    return Route(path, handler, methods=["POST"])


class HotRoutes:
    """Serves the hot routes' requests itself, passes every other one to ``router``."""

    def __init__(self, router: ASGIApp, routes: Sequence[Route]) -> None:
        self.router = router
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self.router)
                    scope["route"] = route
                    scope.update(child_scope)
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                    return
        await self.router(scope, receive, send)


def serve_hot_routes(stack: ASGIApp, router: ASGIApp, routes: Sequence[Route]) -> ASGIApp:
    """Put ``HotRoutes`` in place of ``router`` inside the middleware ``stack``."""
    layer = stack
    while True:
        inner = getattr(layer, "app", None)
        if inner is router:
            layer.app = HotRoutes(router, routes)  # type: ignore[attr-defined]
            return stack
        if inner is None:
            raise RuntimeError("the router was not found in the middleware stack")
        layer = inner
