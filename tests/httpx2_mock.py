"""Route httpx2 traffic (the outbound path, Authlib) through a respx router.

respx patches httpx; callbridge sends with httpx2 (same API). ``mocked_crm()`` patches
httpx2's transport to mirror each request into the router, so routes, side effects and
``route.calls`` work as with httpx; transport errors raised by side effects come back
as their httpx2 namesakes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import httpx2
import pytest
import respx


@contextmanager
def respx_for_httpx2(router: respx.MockRouter) -> Iterator[respx.MockRouter]:
    async def handle(self: httpx2.AsyncHTTPTransport, request: httpx2.Request) -> httpx2.Response:
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

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle)
        yield router


@contextmanager
def mocked_crm() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router, respx_for_httpx2(router):
        yield router
