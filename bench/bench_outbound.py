"""What the outbound path costs, and which HTTP client it should sit on.

Run: ``python bench/bench_outbound.py`` (about a minute; ``--quick`` for a smoke run).

1. Added latency of ``Outbound.send`` (OAuth account, retry policy, redaction-ready
   result) over a bare client, against the sandbox Salesforce over loopback, at 1, 20
   and 100 concurrent requests. Bare and outbound rounds are interleaved so both see the
   same machine; p50/p99 of each and their difference are printed. The bare baselines
   are ``httpx.AsyncClient`` (what the issue names) and ``aiohttp.ClientSession`` (the
   library under the outbound wire, so the difference is the path's own cost).
2. ``Outbound.send`` over an in-memory wire against that wire called directly: the
   path's pure CPU cost, without network or server noise.
3. Client choice (DESIGN.md §10): one shared ``httpx.AsyncClient``, four of them, one
   ``httpx2.AsyncClient``, one ``aiohttp.ClientSession``, and the outbound path on its
   aiohttp wire, at 20, 100 and 200 concurrent requests to a minimal fake CRM answering
   after 50 ms (a separate process, so the server is not what is measured), with the
   load generator's CPU time per request. One load-generating process, as the note in
   §10 says.

The servers run as child processes on 127.0.0.1 and are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import httpx2

from callbridge.outbound import (
    AccountToken,
    ApiUsage,
    OAuthAuth,
    Outbound,
    OutboundRequest,
    TokenRefreshError,
)
from callbridge.outbound.transport import WireAnswer, WireRequest
from callbridge.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

SRC = Path(__file__).resolve().parent.parent / "src"
QUERY = "/services/data/v62.0/query?q=SELECT+Id,Name+FROM+Account+WHERE+Phone='07075373713'"

FAKE_CRM = textwrap.dedent(
    """
    import asyncio, sys
    BODY = b'{"totalSize":1,"done":true,"records":[{"Id":"001000000000001AAA"}]}'
    HEAD = (b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json;charset=UTF-8\\r\\n"
            b"Sforce-Limit-Info: api-usage=18/15000\\r\\nContent-Length: %d\\r\\n\\r\\n")
    DELAY = float(sys.argv[2])
    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\\r\\n\\r\\n")
                await asyncio.sleep(DELAY)
                writer.write(HEAD % len(BODY) + BODY)
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=2048)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
    """
)

SANDBOX = textwrap.dedent(
    """
    import sys
    from callbridge.sandbox import run_sandbox
    run_sandbox("127.0.0.1", int(sys.argv[1]), None)
    """
)


class StaticTokenSource:
    """One connected account whose token never expires (the bench measures sending)."""

    def __init__(self, token: str, instance_url: str) -> None:
        self.token = AccountToken(
            account_id=1,
            name="bench",
            status="connected",
            access_token=token,
            instance_url=instance_url,
            version=1,
        )

    async def load(self, account_id: int) -> AccountToken | None:
        return self.token

    async def refresh(self, account_id: int, stale_version: int) -> AccountToken:
        raise TokenRefreshError("the bench token does not refresh", reauthorize=False)

    async def save_usage(self, account_id: int, usage: ApiUsage) -> None:
        return None


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together, so the same one is not handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start(script: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run_load(
    call: Callable[[], Awaitable[None]], concurrency: int, per_worker: int
) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def worker() -> None:
        for _ in range(per_worker):
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


# ---- 1 and 2: added latency -----------------------------------------------------------


async def added_latency(
    base: str,
    token: str,
    rounds: int,
    per_worker: int,
    wire: InMemoryWire | None = None,
) -> None:
    url = base + QUERY
    headers = {"Authorization": f"Bearer {token}"}
    outbound = Outbound(token_source=StaticTokenSource(token, base), wire=wire)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    bare1 = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    )

    async def via_outbound() -> None:
        result = await outbound.send(OutboundRequest("GET", url, auth=OAuthAuth(1)))
        assert result.status == 200, result.error

    async def via_wire() -> None:
        assert wire is not None
        answer = await wire.exchange(
            WireRequest("GET", httpx2.URL(url), list(headers.items()), None, 5, 10, 1 << 20)
        )
        assert answer.status == 200

    async def via_aiohttp() -> None:
        async with session.get(url, headers=headers) as response:
            await response.read()
            assert response.status == 200

    async def via_httpx() -> None:
        response = await bare1.get(url, headers=headers)
        assert response.status_code == 200

    variants: dict[str, Callable[[], Awaitable[None]]] = {"outbound": via_outbound}
    if wire is not None:
        variants["wire"] = via_wire
    else:
        variants["aiohttp"] = via_aiohttp
        variants["httpx"] = via_httpx
    print(
        f"  {'conc':>4}  {'variant':<9} {'p50 ms':>8} {'p99 ms':>8}   "
        f"{'added p50':>9} {'added p99':>9}  (outbound over this bare client)"
    )
    for concurrency in (1, 20, 100):
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for warm in variants.values():  # warm the pools
            await run_load(warm, concurrency, 3)
        for _ in range(rounds):
            for name, call in variants.items():
                latencies, _elapsed = await run_load(call, concurrency, per_worker)
                samples[name].extend(latencies)
        out = samples["outbound"]
        for name, values in samples.items():
            p50, p99 = statistics.median(values), pct(values, 0.99)
            added = ""
            if name != "outbound":
                added = f"{statistics.median(out) - p50:>+9.3f} {pct(out, 0.99) - p99:>+9.3f}"
            print(f"  {concurrency:>4}  {name:<9} {p50:>8.3f} {p99:>8.3f}   {added}")
    await outbound.aclose()
    await session.close()
    await bare1.aclose()


# ---- 3: client choice ------------------------------------------------------------------


def bare_call(clients: list[Any], url: str) -> Callable[[int], Awaitable[None]]:
    async def call(index: int) -> None:
        response = await clients[index % len(clients)].get(url)
        assert response.status_code == 200

    return call


def aiohttp_call(session: aiohttp.ClientSession, url: str) -> Callable[[int], Awaitable[None]]:
    async def call(index: int) -> None:
        async with session.get(url) as response:
            await response.read()
            assert response.status == 200

    return call


def outbound_call(outbound: Outbound, url: str) -> Callable[[int], Awaitable[None]]:
    async def call(index: int) -> None:
        result = await outbound.send(OutboundRequest("GET", url, auth=OAuthAuth(1)))
        assert result.status == 200, result.error

    return call


async def client_choice(base: str, per_worker: int) -> None:
    url = base + QUERY
    print(
        f"  {'client':<26} {'conc':>4} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU/req ms':>10}"
    )
    for concurrency in (20, 100, 200):
        limit = concurrency + 10
        one_httpx = [
            httpx.AsyncClient(
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
            )
        ]
        four_httpx = [
            httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=limit // 4 + 10, max_keepalive_connections=limit // 4 + 10
                )
            )
            for _ in range(4)
        ]
        one_httpx2 = [
            httpx2.AsyncClient(
                limits=httpx2.Limits(max_connections=limit, max_keepalive_connections=limit)
            )
        ]
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit))
        outbound = Outbound(token_source=StaticTokenSource("bench-token", base))

        cases = [
            ("httpx, 1 client", bare_call(one_httpx, url)),
            ("httpx, 4 clients", bare_call(four_httpx, url)),
            ("httpx2, 1 client", bare_call(one_httpx2, url)),
            ("aiohttp, 1 session", aiohttp_call(session, url)),
            ("outbound (aiohttp wire)", outbound_call(outbound, url)),
        ]
        for name, call in cases:
            counter = iter(range(10**9))

            async def one() -> None:
                await call(next(counter))  # noqa: B023

            await run_load(one, concurrency, 2)
            cpu = time.process_time()
            latencies, elapsed = await run_load(one, concurrency, per_worker)
            cpu_per_request = (time.process_time() - cpu) * 1000 / len(latencies)
            print(
                f"  {name:<26} {concurrency:>4} {len(latencies) / elapsed:>7.0f} "
                f"{statistics.median(latencies):>8.2f} {pct(latencies, 0.99):>8.2f} "
                f"{cpu_per_request:>10.3f}"
            )
        for client in one_httpx + four_httpx:
            await client.aclose()
        for client2 in one_httpx2:
            await client2.aclose()
        await session.close()
        await outbound.aclose()


# ---- main -----------------------------------------------------------------------------


def sandbox_token(base: str, latency_ms: float) -> str:
    answer = httpx.post(
        base + "/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )
    answer.raise_for_status()
    knobs = {"log_requests": False, "latency_ms": latency_ms, "api_request_limit": 10**9}
    httpx.patch(base + "/_sandbox/knobs", json=knobs).raise_for_status()
    return str(answer.json()["access_token"])


class InMemoryWire:
    """Answers every exchange at once, without a network: the outbound path's own cost."""

    BODY = b'{"totalSize":1,"done":true,"records":[{"Id":"001000000000001AAA"}]}'
    HEADERS = (
        ("Content-Type", "application/json;charset=UTF-8"),
        ("Sforce-Limit-Info", "api-usage=18/15000"),
    )

    async def exchange(self, request: WireRequest) -> WireAnswer:
        return WireAnswer(200, self.HEADERS, self.BODY, False)

    async def aclose(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument(
        "--crm-latency-ms",
        type=float,
        default=100.0,
        help="latency the sandbox adds to each answer (default 100, like a CRM)",
    )
    args = parser.parse_args()
    rounds, per_worker = (2, 5) if args.quick else (5, 20)

    sandbox_port, crm_port = free_ports(2)
    children = [start(SANDBOX, str(sandbox_port)), start(FAKE_CRM, str(crm_port), "0.05")]
    try:
        wait_for(sandbox_port)
        wait_for(crm_port)
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        token = sandbox_token(sandbox, args.crm_latency_ms)
        print(
            f"python {sys.version.split()[0]}, httpx {httpx.__version__}, "
            f"httpx2 {httpx2.__version__}, {os.cpu_count()} CPUs"
        )
        print(
            "\n1. Added latency over a bare client, sandbox Salesforce over loopback "
            f"answering after {args.crm_latency_ms:g} ms (SOQL query, OAuth bearer)"
        )
        asyncio.run(added_latency(sandbox, token, rounds, per_worker))
        print(
            "\n2. Added latency over the bare wire, in-memory (no network): the path's own CPU cost"
        )
        asyncio.run(
            added_latency(
                "https://acme.my.salesforce.com",
                "t0ken-1234",
                rounds,
                per_worker * 5,
                wire=InMemoryWire(),
            )
        )
        print("\n3. Client choice: fake CRM answering after 50 ms (DESIGN.md §10)")
        asyncio.run(client_choice(f"http://127.0.0.1:{crm_port}", per_worker))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
