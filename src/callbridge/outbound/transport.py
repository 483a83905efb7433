"""The wire under ``Outbound``: one HTTP exchange over aiohttp's connection pool.

``Outbound`` decides what to send (URL, headers, auth, body), when to retry and what a
result means; ``AiohttpWire.exchange`` only carries one request and its answer and says
how a failure happened (``WireError``: could not connect, timed out, broke mid-way).
aiohttp was chosen for the wire because its pool takes an idle connection in constant
time and its HTTP parser is compiled, where httpx2's pool scans every connection per
request and parses with h11 in Python; figures in docs/outbound.md ("Choosing the HTTP
client"). URLs are still normalised by ``httpx2.URL`` (callbridge's percent-encoding of
templates, unchanged), and aiohttp sends them as given.

Behaviour kept from the httpx2 client it replaces: no redirects followed, no cookies
kept, no proxies from the environment, ``Accept-Encoding: gzip, deflate`` (bodies are
decoded before the size cap applies), the system's TLS verification. A keep-alive
connection the server closed while idle is never handed to a request, even when the
close has reached the socket but not yet the event loop (``_ProbingConnector``).

aiohttp sends an idempotent request (GET, PUT, DELETE…) once more, at once and on a new
connection, when the server closed the kept-alive connection it went out on without
answering (RFC 9112 §9.3.1). The exchange says so (``repeated_after_ms``), so that the
execution records list both sends.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

import aiohttp
import httpx2
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from multidict import CIMultiDict
from yarl import URL

WireFailure = Literal["connect", "timeout", "network"]
_CHUNK = 64 * 1024


@dataclass(slots=True, frozen=True)
class WireRequest:
    """One exchange as ``Outbound`` has prepared it (auth applied, URL normalised)."""

    method: str
    url: httpx2.URL
    headers: list[tuple[str, str]]
    body: bytes | None
    connect_timeout: float
    read_timeout: float
    max_bytes: int


@dataclass(slots=True)
class WireAnswer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool
    # The request went out twice: the first send, on a kept-alive connection the server
    # closed without answering, took this long before aiohttp sent it again.
    repeated_after_ms: float | None = None


class WireError(Exception):
    """A failed exchange. ``sent`` is False when the request cannot have reached the
    server (no connection was made), which makes even a POST safe to repeat."""

    def __init__(self, kind: WireFailure, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.kind: WireFailure = kind
        self.message = message
        self.sent = sent
        self.repeated_after_ms: float | None = None


# When the exchange under way asked the pool for a connection (perf_counter), once per
# send: a second entry means aiohttp sent the request again.
_connects: ContextVar[list[float] | None] = ContextVar("callbridge_wire_connects", default=None)


def is_readable(sock: socket.socket) -> bool:
    """True when a read would not block: data, or the peer closed (or the socket is gone).
    On an idle keep-alive connection either means it cannot be reused."""
    if sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _ProbingConnector(aiohttp.TCPConnector):
    """aiohttp's pool drops a connection once the loop has handled the server's close; one
    whose close is still in the socket, unread, would be handed out and fail the request
    (a POST is not retried). So each connection is asked first, straight on its socket."""

    async def connect(  # aiohttp's signature
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> Connection:
        connects = _connects.get()
        if connects is not None:
            connects.append(time.perf_counter())
        while True:
            connection = await super().connect(req, traces, timeout)
            transport = connection.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None or not is_readable(sock):
                return connection
            connection.close()


def _describe(exc: BaseException, name: str | None = None) -> str:
    text = str(exc).strip()
    name = name or type(exc).__name__
    return f"{name}: {text}" if text else name


def _failure(exc: BaseException) -> WireError:
    """What an aiohttp exception means for the request (its words kept in the message)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return WireError("timeout", _describe(exc, "ConnectTimeout"), sent=False)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return WireError("connect", _describe(exc, "ConnectError"), sent=False)
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return WireError("timeout", _describe(exc, "ReadTimeout"), sent=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return WireError("network", _describe(exc, "RemoteProtocolError"), sent=True)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        # A body cut short, or an answer that is not HTTP.
        return WireError("network", _describe(exc, "RemoteProtocolError"), sent=True)
    return WireError("network", _describe(exc, "ReadError"), sent=True)


def _repeated_after_ms(connects: list[float]) -> float | None:
    return (connects[1] - connects[0]) * 1000 if len(connects) > 1 else None


class AiohttpWire:
    """One ``aiohttp.ClientSession`` per process, opened on first use on the running loop
    (aiohttp binds a session to one loop)."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._user_agent = user_agent
        self._ssl_context = ssl_context or httpx2.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = _ProbingConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._ssl_context,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": self._user_agent},
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=False,
            requote_redirect_url=False,
        )
        return self._session

    def _timeout(self, connect: float, read: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            # "connect" covers waiting for a pool slot as well as dialling.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=connect + read, sock_connect=connect, sock_read=read
            )
            self._timeouts[(connect, read)] = timeout
        return timeout

    async def exchange(self, request: WireRequest) -> WireAnswer:
        """Send one request and read at most ``max_bytes`` of its (decoded) body.
        Raises ``WireError``; the caller bounds the whole exchange in time."""
        max_bytes = request.max_bytes
        session = self._session
        if session is None or session.closed:
            session = self._open()
        connects: list[float] = []
        context = _connects.set(connects)
        try:
            async with session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=CIMultiDict(request.headers),
                data=request.body,
                allow_redirects=False,
                timeout=self._timeout(request.connect_timeout, request.read_timeout),
            ) as response:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                async for chunk in response.content.iter_chunked(_CHUNK):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        truncated = True
                        break
                content = b"".join(chunks)
                return WireAnswer(
                    response.status,
                    tuple(
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers
                    ),
                    content[:max_bytes] if truncated else content,
                    truncated,
                    _repeated_after_ms(connects),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = _failure(exc)
            failure.repeated_after_ms = _repeated_after_ms(connects)
            raise failure from exc
        finally:
            _connects.reset(context)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
