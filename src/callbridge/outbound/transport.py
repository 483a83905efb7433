"""httpx2's transport with a cheaper idle-connection check.

Every time a request joins or leaves httpcore2's connection pool, the pool asks each idle
keep-alive connection whether the server has closed it (``get_extra_info("is_readable")``).
On the anyio backend that question goes through anyio's typed attributes, which build a
dictionary of accessors per call: about 11 µs against 1 µs for the socket check itself,
measured here, and with tens of idle connections it was the largest single cost of an
IVR invocation. The streams below answer that question from the socket they keep, and
pass everything else through unchanged.

httpx2 does not take a network backend as an argument, so ``fast_transport`` builds its
``AsyncHTTPTransport`` and replaces the pool with the same pool given this backend;
``tests/outbound/test_transport.py`` fails if a new httpx2 release changes that shape.
"""

# The ``timeout`` arguments are httpcore2's backend interface, passed through unchanged.
# ruff: noqa: ASYNC109

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
from httpcore2 import SOCKET_OPTION, AsyncNetworkBackend, AsyncNetworkStream
from httpcore2._backends.auto import AutoBackend


def is_readable(sock: socket.socket) -> bool:
    """True when a read would not block: data, or the peer closed (or the socket is gone).
    On an idle keep-alive connection either means it cannot be reused."""
    if sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class ProbingStream(AsyncNetworkStream):
    """A network stream whose readability check goes straight to its socket."""

    def __init__(self, stream: AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return ProbingStream(tls)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return is_readable(self._socket)
        return self._stream.get_extra_info(info)


class ProbingBackend(AsyncNetworkBackend):
    """httpcore2's default backend, its streams wrapped in ``ProbingStream``."""

    def __init__(self) -> None:
        self._backend = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return ProbingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return ProbingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def fast_transport(limits: httpx2.Limits) -> httpx2.AsyncHTTPTransport:
    """The transport ``httpx2.AsyncClient(limits=limits)`` makes, on ``ProbingBackend``.
    (Proxies from the environment still apply: the client mounts them beside it.)"""
    transport = httpx2.AsyncHTTPTransport(limits=limits)
    pool = transport._pool
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=pool._http1,
        http2=pool._http2,
        network_backend=ProbingBackend(),
    )
    return transport
