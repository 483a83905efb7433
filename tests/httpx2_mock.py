"""Route callbridge's outbound traffic (the outbound wire, Authlib's httpx2) through a
respx router.

respx patches httpx only. ``mocked_crm()`` also patches httpx2's transport (Authlib's
token requests) and the outbound wire (``AiohttpWire.exchange``) to mirror each request
into the router, so routes, side effects and ``route.calls`` work as with httpx. A
transport error raised by a side effect comes back as its httpx2 namesake through
httpx2, and as the ``WireError`` aiohttp's equivalent would give through the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import httpx2
import pytest
import respx

from callbridge.outbound.transport import AiohttpWire, WireAnswer, WireError, WireRequest


def _wire_error(exc: httpx.TransportError) -> WireError:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return WireError("timeout", message, sent=False)
    if isinstance(exc, httpx.ConnectError | httpx.UnsupportedProtocol):
        return WireError("connect", message, sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return WireError("timeout", message, sent=True)
    return WireError("network", message, sent=True)


@contextmanager
def respx_for_httpx2(router: respx.MockRouter) -> Iterator[respx.MockRouter]:
    async def handle(self: httpx2.AsyncBaseTransport, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        mirrored = httpx.Request(
            request.method, str(request.url), headers=list(request.headers.raw), content=content
        )
        try:
            response = await router.async_handler(mirrored)
        except httpx.TransportError as exc:
            kind = getattr(httpx2, type(exc).__name__, httpx2.TransportError)
            raise kind(str(exc), request=request) from exc
        body = await response.aread()
        headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"content-length"]
        return httpx2.Response(response.status_code, headers=headers, content=body, request=request)

    async def exchange(self: AiohttpWire, request: WireRequest) -> WireAnswer:
        sent = [(b"User-Agent", self._user_agent.encode())]
        sent += [(k.encode("utf-8"), v.encode("utf-8")) for k, v in request.headers]
        mirrored = httpx.Request(
            request.method, str(request.url), headers=sent, content=request.body or b""
        )
        max_bytes = request.max_bytes
        try:
            response = await router.async_handler(mirrored)
        except httpx.TransportError as exc:
            raise _wire_error(exc) from exc
        content = await response.aread()
        return WireAnswer(
            response.status_code,
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw),
            content[:max_bytes],
            len(content) > max_bytes,
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle)
        patch.setattr(AiohttpWire, "exchange", exchange)
        yield router


@contextmanager
def mocked_crm() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router, respx_for_httpx2(router):
        yield router
