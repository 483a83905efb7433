"""The outbound transport's idle-connection check, over real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpcore2
import pytest

from callbridge.outbound import NO_AUTH, Outbound, OutboundRequest
from callbridge.outbound.transport import ProbingBackend, is_readable


def test_is_readable_tells_data_and_a_closed_peer_from_an_idle_socket() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert not is_readable(ours)
        theirs.send(b"x")
        assert is_readable(ours)
        ours.recv(1)
        assert not is_readable(ours)
        theirs.close()
        assert is_readable(ours)
    finally:
        ours.close()
    assert is_readable(ours)  # a closed socket cannot be reused either


async def test_the_client_pool_uses_the_probing_backend() -> None:
    # Fails when a new httpx2 release changes the shape fast_transport relies on.
    async with Outbound(allow_insecure_http=True) as outbound:
        pool = outbound._client._transport._pool
        assert isinstance(pool, httpcore2.AsyncConnectionPool)
        assert isinstance(pool._network_backend, ProbingBackend)


class ClosingServer:
    """Answers each request with keep-alive, then closes the connection from its side."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        self.closed.set()


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[ClosingServer, str]]:
    handler = ClosingServer()
    server = await asyncio.start_server(handler.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield handler, f"http://127.0.0.1:{port}/"


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    closing_server: tuple[ClosingServer, str],
) -> None:
    handler, url = closing_server
    request = OutboundRequest(method="POST", url=url, auth=NO_AUTH, body="x", timeout=5)
    async with Outbound(allow_insecure_http=True) as outbound:
        first = await outbound.send(request)
        assert first.status == 200 and first.error is None
        await handler.closed.wait()
        # A POST is never retried: it succeeds only if the pool saw the close and dialled anew.
        second = await outbound.send(request)
        assert second.status == 200 and second.error is None
    assert handler.connections == 2
