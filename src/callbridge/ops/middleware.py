"""Pure-ASGI middleware: the edge of every request (request IDs, unexpected errors, body
read timeout) and Prometheus request metrics."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callbridge.errors import CallbridgeError
from callbridge.i18n import N_
from callbridge.kit.text import NUL_MESSAGE, urlencoded_problems
from callbridge.ops.logging import client_address_var, request_id_var

logger = logging.getLogger("callbridge.errors")

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


# The HTML error page: (request, status, English message with {placeholders}, values).
ErrorPage = Callable[[Request, int, str, dict[str, str]], Awaitable[Response]]

# What the PBX and the API see for an error nobody foresaw: the request ID to look up.
UNEXPECTED_ERROR = "Internal server error: the administrator can find it by its request ID."
UNEXPECTED_ERROR_PAGE = N_(
    "Something went wrong on the server. Your administrator can find what happened in "
    "the log by this request ID: {request_id}"
)
UNSTORABLE_FORM_PAGE = N_(
    "These fields hold text that cannot be stored (a NUL character, or bytes that are "
    "not UTF-8): {fields}"
)
FORM_TYPE = b"application/x-www-form-urlencoded"
# A form body is read whole to check it; larger ones are refused (no form is this big).
MAX_FORM_BYTES = 4 * 1024 * 1024


# Clickjacking: no other site may frame callbridge's pages (an admin tricked into clicking
# a framed button), except the Open CTI softphone, which Salesforce frames in its utility
# bar: Lightning pages are served from *.lightning.force.com (Visualforce from
# *.vf.force.com), Salesforce Classic from *.my.salesforce.com / *.salesforce.com.
SOFTPHONE_PATH = "/agent/opencti"
SALESFORCE_FRAME_ANCESTORS = (
    "https://*.lightning.force.com https://*.my.salesforce.com "
    "https://*.force.com https://*.salesforce.com"
)


def frame_headers(path: str, extra_ancestors: str = "") -> list[tuple[bytes, bytes]]:
    """The headers that say who may frame an HTML page at ``path``: only callbridge
    itself, or for the softphone also Salesforce and ``extra_ancestors`` (no
    X-Frame-Options there: it cannot name several origins, and the browsers that know
    only it would then refuse Salesforce too)."""
    if path == SOFTPHONE_PATH:
        ancestors = " ".join(
            part for part in ("'self'", SALESFORCE_FRAME_ANCESTORS, extra_ancestors) if part
        )
        return [(b"content-security-policy", f"frame-ancestors {ancestors}".encode())]
    return [
        (b"content-security-policy", b"frame-ancestors 'self'"),
        (b"x-frame-options", b"SAMEORIGIN"),
    ]


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"content-type" and value.lower().startswith(b"text/html")
        for name, value in headers
    )


class BodyReadTimeout(CallbridgeError):
    """The client stopped sending its body: answered 408, and the connection closes (what
    is left of the body will not be read)."""

    status_code = 408


class EdgeMiddleware:
    """The outermost layer of every HTTP request:

    - takes a sane ``X-Request-ID`` from the caller or makes one, and echoes it back;
    - refuses a NUL in the path or the query string (no database stores it) with 422, and
      a form (``application/x-www-form-urlencoded``) whose text is not UTF-8 or holds a
      NUL, naming the fields (the form parser would silently turn bad bytes into U+FFFD);
    - stops waiting for a body that does not arrive: ``body_timeout`` seconds without a
      byte of it answer 408 (the same rule as nginx's ``client_body_timeout``);
    - adds to every HTML page the headers that keep other sites from framing it
      (:func:`frame_headers`; the Open CTI softphone may be framed by Salesforce);
    - answers any exception no handler took with JSON (``/api/`` and non-HTML clients) or
      the HTML error page, both carrying the request ID, and logs it with its traceback:
      the exception does not reach the server, which would drop the kept-alive connection
      and with it the PBX's next request.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        body_timeout: float,
        error_page: ErrorPage | None = None,
        softphone_frame_ancestors: str = "",
    ) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.error_page = error_page
        self.softphone_frame_ancestors = softphone_frame_ancestors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID_OK.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        client = scope.get("client")
        address = client_address_var.set(str(client[0]) if client else "")
        started = False
        body_done = timed_out = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                if _is_html(headers):
                    headers += frame_headers(scope["path"], self.softphone_frame_ancestors)
                if timed_out:  # the rest of the body is never read: this connection is done
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        async def receive_in_time() -> Message:
            nonlocal body_done, timed_out
            if body_done:  # waiting for a disconnect, or a body read twice: no limit
                return await receive()
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                body_done = timed_out = True
                raise BodyReadTimeout(
                    f"the request body stopped arriving for {self.body_timeout:g} seconds"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        try:
            refused = _refused_url(scope)
            app_receive: Receive = receive_in_time
            if refused is None and _is_form(scope):
                refused, app_receive = await self._checked_form(scope, receive_in_time)
            if refused is not None:
                answer = await self._refusal(scope, *refused)
            else:
                await self.app(scope, app_receive, send_with_id)
                return
        except BodyReadTimeout as exc:
            answer = JSONResponse({"detail": exc.message}, exc.status_code)
        except Exception:
            logger.exception("unexpected error answering %s %s", scope["method"], scope["path"])
            if started:
                raise  # the answer is cut short: only closing the connection says so
            answer = await self._refusal(
                scope,
                500,
                {"detail": UNEXPECTED_ERROR, "request_id": request_id},
                (UNEXPECTED_ERROR_PAGE, {"request_id": request_id}),
            )
        try:
            await answer(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            client_address_var.reset(address)

    async def _checked_form(self, scope: Scope, receive: Receive) -> tuple[Refusal | None, Receive]:
        """Reads the form body whole, checks it, and gives the app a replay of it."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None, receive  # the client left: the app finds out itself
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_FORM_BYTES:
                too_large = f"a form is at most {MAX_FORM_BYTES // (1024 * 1024)} MiB"
                return (413, {"detail": too_large}, (too_large, {})), receive
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problems = urlencoded_problems(body)
        if problems:
            detail = [
                {"loc": ["body", name], "msg": message, "type": "value_error"}
                for name, message in problems
            ]
            fields = ", ".join(dict.fromkeys(name for name, _ in problems))
            return (422, {"detail": detail}, (UNSTORABLE_FORM_PAGE, {"fields": fields})), receive
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return None, replay

    async def _refusal(
        self, scope: Scope, status: int, content: dict[str, Any], page: tuple[str, dict[str, str]]
    ) -> Response:
        """JSON for the API and clients that do not ask for HTML, else the error page."""
        request = Request(scope)
        wants_html = "text/html" in request.headers.get("accept", "")
        if self.error_page is not None and wants_html and not _is_api(scope):
            try:
                return await self.error_page(request, status, *page)
            except Exception:
                logger.exception("the error page itself failed")
        return JSONResponse(content, status)


# (status, JSON content, (page message, its values))
Refusal = tuple[int, dict[str, Any], tuple[str, dict[str, str]]]


def _is_api(scope: Scope) -> bool:
    return str(scope["path"]).startswith("/api/")


def _is_form(scope: Scope) -> bool:
    if scope["method"] in ("GET", "HEAD", "OPTIONS"):
        return False
    content_type: bytes = dict(scope["headers"]).get(b"content-type", b"")
    return content_type.split(b";", 1)[0].strip().lower() == FORM_TYPE


def _refused_url(scope: Scope) -> Refusal | None:
    if "\x00" in scope["path"]:
        where = "path"
    elif b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
        where = "query"
    else:
        return None
    detail = [{"loc": [where], "msg": NUL_MESSAGE, "type": "value_error"}]
    return 422, {"detail": detail}, (UNSTORABLE_FORM_PAGE, {"fields": where})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "callbridge_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "callbridge_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template and method.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        # prometheus-client looks a labelled child up anew on every labels() call; the
        # PBX's requests ask for the same few all day. The label sets are the series
        # the registry keeps anyway.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def of(self, route: str, method: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of one route, method and status."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
        return children


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = scope.get("route")
            # Label by template, never by raw path: IDs in paths would explode the series.
            label = getattr(route, "path", None) or "unmatched"
            counter, histogram = self.metrics.of(label, scope["method"], status)
            counter.inc()
            histogram.observe(time.perf_counter() - started)
