"""Pure-ASGI layer in front of the sandbox: log each request, add latency, inject failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callbridge.sandbox.knobs import FailureKind
from callbridge.sandbox.state import SandboxState
from callbridge.sandbox.wire import JSON_CONTENT_TYPE, NO_STORE, compact_json

SleepFunction = Callable[[float], Awaitable[None]]
ADMIN_PREFIX = "/_sandbox"

_REST_FAILURES: dict[FailureKind, tuple[int, str, str]] = {
    FailureKind.UNAVAILABLE: (
        503,
        "SERVER_UNAVAILABLE",
        "Server is temporarily unavailable. Please try again later.",
    ),
    FailureKind.HANG: (
        503,
        "SERVER_UNAVAILABLE",
        "Server is temporarily unavailable. Please try again later.",
    ),
    FailureKind.SERVER_ERROR: (
        500,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support: "
        "1431736427-35574 (-1153549394)",
    ),
    FailureKind.INVALID_SESSION: (401, "INVALID_SESSION_ID", "Session expired or invalid"),
    FailureKind.REQUEST_LIMIT: (403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    FailureKind.CONCURRENT_LIMIT: (
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentPerOrgLongTxn Limit exceeded.",
    ),
}

_OAUTH_FAILURES: dict[FailureKind, tuple[int, str, str]] = {
    FailureKind.UNAVAILABLE: (503, "temporarily_unavailable", "service temporarily unavailable"),
    FailureKind.HANG: (503, "temporarily_unavailable", "service temporarily unavailable"),
    FailureKind.SERVER_ERROR: (500, "server_error", "internal server error"),
    FailureKind.INVALID_SESSION: (400, "invalid_grant", "expired access/refresh token"),
    FailureKind.REQUEST_LIMIT: (403, "rate_limit_exceeded", "rate limit exceeded"),
    FailureKind.CONCURRENT_LIMIT: (
        400,
        "invalid_grant",
        "token request is already being processed",
    ),
}


def request_kind(path: str) -> str:
    if path.startswith("/services/data"):
        return "rest"
    if path.startswith("/services/oauth2/") or path.startswith("/id/"):
        return "oauth"
    return "other"


def injected_response(kind: str, failure: FailureKind, state: SandboxState) -> Response:
    if kind == "oauth":
        status, error, description = _OAUTH_FAILURES[failure]
        return Response(
            compact_json({"error": error, "error_description": description}),
            status_code=status,
            media_type=JSON_CONTENT_TYPE,
            headers={"Cache-Control": NO_STORE},
        )
    status, code, message = _REST_FAILURES[failure]
    headers = {"Sforce-Limit-Info": state.limit_info}
    if status == 401:
        headers["WWW-Authenticate"] = "Token"
    return Response(
        compact_json([{"message": message, "errorCode": code}]),
        status_code=status,
        media_type=JSON_CONTENT_TYPE,
        headers=headers,
    )


class SandboxMiddleware:
    """Everything a test steers from outside, applied before the Salesforce endpoints run."""

    def __init__(self, app: ASGIApp, state: SandboxState, sleep: SleepFunction) -> None:
        self.app = app
        self.state = state
        self.sleep = sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        state = self.state
        path: str = scope["path"]
        kind = request_kind(path)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # Some servers (and httpx's ASGI transport) put the query in raw_path too.
        raw_path: bytes = (scope.get("raw_path") or path.encode("utf-8")).split(b"?")[0]
        entry = state.record_request(
            kind=kind,
            method=scope["method"],
            path=path,
            raw_path=raw_path.decode("latin-1"),
            query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=body,
            received_at=state.now(),
        )
        knobs = state.knobs
        if knobs.latency_ms > 0:
            await self.sleep(knobs.latency_ms / 1000.0)
        failure = knobs.pick_failure(kind, path, body) if kind in ("rest", "oauth") else None

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        if failure in (FailureKind.HANG_AFTER_COMMIT, FailureKind.GARBLED_AFTER_COMMIT):
            await self._after_commit(failure, scope, replay, record_status, entry)
            return
        if failure is not None:
            if failure is FailureKind.HANG:
                await self.sleep(knobs.hang_seconds)
            await injected_response(kind, failure, state)(scope, replay, record_status)
            return
        await self.app(scope, replay, record_status)
        state.save_if_dirty()

    async def _after_commit(
        self,
        failure: FailureKind,
        scope: Scope,
        receive: Receive,
        send: Send,
        entry: Any,
    ) -> None:
        """Run the request for real, then lose (hang) or garble the answer."""

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]

        await self.app(scope, receive, swallow)
        self.state.save_if_dirty()
        if failure is FailureKind.HANG_AFTER_COMMIT:
            await self.sleep(self.state.knobs.hang_seconds)
            return
        garbled = Response(
            b"<html><body>Service temporarily unavailable</body></html>",
            status_code=200,
            media_type="text/html",
        )
        await garbled(scope, receive, send)
