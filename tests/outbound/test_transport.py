"""The outbound wire (aiohttp), over real loopback sockets: what goes on the wire,
connection reuse, and every kind of failure as the outbound result reports it."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from callbridge.outbound import NO_AUTH, Outbound, OutboundRequest, RetryPolicy
from callbridge.outbound.transport import AiohttpWire

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A loopback HTTP/1.1 server whose every byte the test writes by hand."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.answer(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()
            self.closed.set()


async def read_request(reader: asyncio.StreamReader, server: RawServer) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    server.requests.append(head + body)
    return head + body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[RawServer, str]]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Handler) -> tuple[RawServer, str]:
        raw = RawServer(answer)
        server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return raw, f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def keep_alive(server: RawServer, answer: bytes) -> Handler:
    """A handler answering every request on a connection with ``answer``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader, server)
            except asyncio.IncompleteReadError:
                return
            writer.write(answer)
            await writer.drain()

    return handle


def answer_once_then_drop(server: RawServer) -> Handler:
    """Answers a connection's first request with keep-alive; reads its second and closes
    without a word (a server ending an idle connection just as a request arrives)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, server)
        writer.write(ok())
        await writer.drain()
        await read_request(reader, server)

    return handle


def request(url: str, **fields: object) -> OutboundRequest:
    values: dict[str, object] = {"method": "GET", "url": url, "auth": NO_AUTH, "timeout": 5}
    values.update(fields)
    return OutboundRequest(**values)  # type: ignore[arg-type]


async def test_the_outbound_client_sends_through_the_aiohttp_wire() -> None:
    async with Outbound(allow_insecure_http=True) as outbound:
        assert isinstance(outbound._wire, AiohttpWire)


async def test_the_wire_carries_each_header_once_and_the_url_as_built(serve) -> None:  # type: ignore[no-untyped-def]
    raw, base = await serve(lambda r, w: keep_alive(raw, ok())(r, w))
    url = f"{base}/services/data/v45.0/search?q=FIND%20%7B0707%7D%20IN%20PHONE&x=%E3%81%82"
    async with Outbound(allow_insecure_http=True) as outbound:
        got = await outbound.send(request(url, headers=(("X-Trace", "a b"),)))
        posted = await outbound.send(
            request(
                f"{base}/p",
                method="POST",
                body='{"a":1}',
                headers=(("Content-Type", "application/json"),),
            )
        )
        empty = await outbound.send(request(f"{base}/e", method="POST", body=""))
    assert got.status == posted.status == empty.status == 200
    assert raw.connections == 1  # one keep-alive connection for the three
    get_head, post_head, empty_head = (r.decode("utf-8").lower() for r in raw.requests)
    first_line = raw.requests[0].split(b"\r\n", 1)[0].decode()
    assert first_line == (
        "GET /services/data/v45.0/search?q=FIND%20%7B0707%7D%20IN%20PHONE&x=%E3%81%82 HTTP/1.1"
    )
    for head in (get_head, post_head, empty_head):
        for name in ("host:", "user-agent:", "accept:", "accept-encoding:"):
            assert head.count("\r\n" + name) == 1, (name, head)
        assert "user-agent: callbridge/" in head
        assert "cookie" not in head
    assert "x-trace: a b" in get_head
    assert post_head.count("content-length: 7") == 1 and post_head.endswith('{"a":1}')
    assert post_head.count("content-type:") == 1
    assert empty_head.count("content-length: 0") == 1


async def test_a_compressed_body_is_decoded_once(serve) -> None:  # type: ignore[no-untyped-def]
    body = gzip.compress(b'{"Id":"003"}')

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        writer.write(ok(body, b"Content-Encoding: gzip\r\n"))
        await writer.drain()

    raw, base = await serve(answer)
    async with Outbound(allow_insecure_http=True) as outbound:
        result = await outbound.send(request(base + "/"))
    assert result.status == 200 and result.text == '{"Id":"003"}'


async def test_a_connection_the_server_closed_while_idle_is_not_reused(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers with keep-alive, then closes the connection from its side.
        await read_request(reader, raw)
        writer.write(ok())
        await writer.drain()

    raw, base = await serve(answer)
    post = request(base + "/", method="POST", body="x")
    async with Outbound(allow_insecure_http=True) as outbound:
        first = await outbound.send(post)
        assert first.status == 200 and first.error is None
        await raw.closed.wait()
        # A POST is never retried: it succeeds only if the pool saw the close and dialled anew.
        second = await outbound.send(post)
        assert second.status == 200 and second.error is None
    assert raw.connections == 2


async def test_a_get_the_server_drops_unanswered_is_sent_again_and_both_sends_are_listed(  # type: ignore[no-untyped-def]
    serve,
) -> None:
    raw, base = await serve(lambda r, w: answer_once_then_drop(raw)(r, w))
    async with Outbound(allow_insecure_http=True) as outbound:
        first = await outbound.send(request(base + "/a"))
        second = await outbound.send(request(base + "/b", retry=RetryPolicy.NONE))
    assert first.status == second.status == 200 and second.error is None
    assert [r.split(b" ", 2)[1] for r in raw.requests] == [b"/a", b"/b", b"/b"]
    assert raw.connections == 2
    assert len(first.attempts) == 1
    dropped, answered = second.attempts
    assert (dropped.number, dropped.status, answered.number, answered.status) == (1, None, 2, 200)
    assert dropped.error is not None and dropped.error.kind == "connect"
    assert "closed the kept-alive connection without answering" in dropped.error.message
    assert answered.at >= dropped.at and dropped.elapsed_ms >= 0 and answered.elapsed_ms >= 0


async def test_a_post_the_server_drops_unanswered_is_not_sent_again(serve) -> None:  # type: ignore[no-untyped-def]
    raw, base = await serve(lambda r, w: answer_once_then_drop(raw)(r, w))
    post = request(base + "/p", method="POST", body="x", retry=RetryPolicy.NONE)
    async with Outbound(allow_insecure_http=True) as outbound:
        await outbound.send(post)
        dropped = await outbound.send(post)
    assert dropped.status is None and dropped.error is not None
    assert len(raw.requests) == 2 and len(dropped.attempts) == 1


async def test_a_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with Outbound(allow_insecure_http=True) as outbound:
        once = RetryPolicy(max_attempts=1)
        url = f"http://127.0.0.1:{port}/"
        result = await outbound.send(request(url, method="POST", body="x", retry=once))
    assert result.status is None and result.error is not None
    assert result.error.kind == "connect" and "could not connect" in result.error.message
    assert "ConnectError" in result.error.message


async def test_a_server_that_never_answers_is_a_timeout_within_the_limit(serve) -> None:  # type: ignore[no-untyped-def]
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        await reader.read()  # until the client gives up and closes

    raw, base = await serve(answer)
    async with Outbound(allow_insecure_http=True) as outbound:
        loop = asyncio.get_running_loop()
        started = loop.time()
        once = RetryPolicy(max_attempts=1)
        result = await outbound.send(request(base + "/", timeout=0.2, retry=once))
        took = loop.time() - started
    assert result.error is not None and result.error.kind == "timeout"
    assert took < 1.0


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "network failure"),
        (b"NOT HTTP AT ALL\r\n\r\n", "network failure"),
        (b"", "network failure"),
    ],
    ids=["body-cut-short", "not-http", "closed-without-answer"],
)
async def test_a_broken_answer_is_a_network_failure_not_a_crash(  # type: ignore[no-untyped-def]
    serve, wire: bytes, words: str
) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, raw)
        writer.write(wire)
        await writer.drain()

    raw, base = await serve(answer)
    no_retry = RetryPolicy(max_attempts=1)
    async with Outbound(allow_insecure_http=True) as outbound:
        result = await outbound.send(request(base + "/", method="POST", body="x", retry=no_retry))
    assert result.error is not None and result.error.kind == "connect", result.error
    assert result.error.message.startswith(words)


async def test_a_capped_body_stops_reading_and_the_next_request_still_works(serve) -> None:  # type: ignore[no-untyped-def]
    big = b"x" * 200_000
    raw, base = await serve(lambda r, w: keep_alive(raw, ok(big))(r, w))
    async with Outbound(allow_insecure_http=True) as outbound:
        capped = await outbound.send(request(base + "/", max_response_bytes=1000))
        again = await outbound.send(request(base + "/"))
    assert capped.truncated and len(capped.content) == 1000
    assert again.status == 200 and len(again.content) == len(big) and not again.truncated
