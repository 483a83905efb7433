"""Added latency of an IVR invocation over the CRM's own latency (issue 6, "Speed").

Run: ``python bench/bench_ivr.py`` (about 7 minutes, most of it the single caller;
``--levels 50`` measures only 50 callers, about 25 s, for quick comparisons; ``--quick``
for a smoke run;
``--postgres URL`` to add PostgreSQL, e.g. ``postgresql+asyncpg://postgres@127.0.0.1/cb_bench``
— its ``public`` schema is dropped and recreated).

What is measured: the one-step IVR of seed 000 §3 (a SOSL search by the caller's
number, two response settings) against the sandbox Salesforce answering after 100 ms.
For 1, 50 and 200 concurrent callers, rounds of

- direct: the same search request, sent straight to the sandbox with the access token;
- invoke: ``POST /api/v1/ivr/seed000/invoke`` to callbridge, which sends that request;

are interleaved, so both see the same machine. Added latency = invoke − direct, at p50
and p99 of each.

N concurrent callers are N calls in the IVR at once, each asking again as soon as it has
its answer; each caller keeps its connection from round to round. By default
(``--start spread``) the callers begin one after another over one CRM latency, as
independent calls do, and so stay out of step. ``--start together`` has all of them send
in the same millisecond at the start of every round: the worst burst, whose last answer
waits while callbridge handles the N−1 before it, once on the way out and once on the
way back — a figure of CPU per invocation × N rather than of what one invocation adds.

Every invocation has its own ``call_id``, so callbridge also stores a call, its variable
and an execution for each one (off the answer path). "CPU/inv" is
callbridge's own CPU time per invocation (from /proc), log writes included: the figure
that decides how many invocations a core serves, and one that a busy machine does not
distort the way it distorts latencies.

One OAuth account serves every caller, with the account's default request limits
(1000 in flight, 25 running longer than 5 s: docs/oauth.md §7).

Node-RED (``--nodered``): the same dip (SOSL search by the caller's number, guidance
and transfer from the answer) as a Node-RED flow (bench/nodered/flows.json: http in →
function → http request with keep-alive → function → http response), run by Node.js from
``bench/nodered/node_modules`` (``npm install`` there, done on first use; the npm
registry must be reachable), measured in the same rounds as callbridge: its latency, its
CPU per request and its memory beside callbridge's.

Processes: the sandbox, callbridge as the README starts it (``callbridge serve``, its
defaults: on PostgreSQL one web process per core and dispatchers beside them, on SQLite one
process; ``--web-processes N`` adds a second, labelled run of ``serve --role web
--workers N``) and this load
generator each run in a process of their own on 127.0.0.1. The load generator is one
process with a minimal keep-alive HTTP/1.1 client on asyncio streams (one connection per
concurrent caller), because one process with httpx tops out well below what 200
concurrent callers at 100 ms need (DESIGN.md §10); ``--client httpx`` uses one
``httpx.AsyncClient`` per caller instead. Both kinds of round use the same client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from callbridge.sandbox import demo_account_fields

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import (
    Memory,
    configuration,
    descendants,
    label_processes,
    memory_by_label,
    memory_line,
    memory_of,
    proc_cpu_seconds,
    wait_labelled,
)

ROOT = Path(__file__).resolve().parent.parent
# The sandbox's latency; callers starting "spread" begin over this long.
CRM_LATENCY_MS = 100
SEARCH = "FIND {07075373713} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"
SEED_IVR = {
    "key": "seed000",
    "name": "Salesforce 取引先検索",
    "auth_type": "oauth",
    "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/search ?q=FIND {{TEL}} IN PHONE FIELDS "
    "RETURNING Account(Id, Name, Phone)",
    "method": "GET",
    "timeout_seconds": 10,
    "responses": [
        {
            "priority": 1,
            "response_code": "200",
            "response_pattern": '/"searchRecords":¥[¥]/',
            "guidance": {"type": "tts", "text": "お電話ありがとうございます。"},
            "transfer": {"kind": "callcenter", "target": "support"},
        },
        {
            "priority": 2,
            "response_code": "200",
            "extract_pattern": '/"Name":"(?P<NAME>.*)",/',
            "guidance": {"type": "tts", "text": "{CODE1}様、お電話ありがとうございます。"},
            "transfer": {"kind": "callcenter", "target": "support"},
        },
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def child(
    args: list[str], env: dict[str, str], cpus: set[int] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    if cpus:
        os.sched_setaffinity(process.pid, cpus)  # its children (--workers) inherit it
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # The caller's own PYTHONPATH stays after the project's (a profiler's hooks, say).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


# ---- the load generator's client ------------------------------------------------------


@dataclass
class Target:
    host: str
    port: int
    raw: bytes  # the whole request, sent as is


class RawConnection:
    """One keep-alive HTTP/1.1 connection; requests one at a time (Content-Length bodies)."""

    # Below the servers' keep-alive timeouts (uvicorn and Node.js: 5 s): a connection idle
    # longer is not reused, so that no request meets the server closing it.
    IDLE_LIMIT = 4.0

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used_at = 0.0

    async def request(self, raw: bytes) -> int:
        idle = time.monotonic() - self.used_at > self.IDLE_LIMIT
        if self.reader is None or self.reader.at_eof() or idle:
            # New, or closed (or about to be) by the server after it sat idle.
            if self.writer is not None:
                self.writer.close()
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.used_at = time.monotonic()
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def build_request(method: str, url: str, headers: dict[str, str], body: bytes = b"") -> Target:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    assert parts.hostname is not None and parts.port is not None
    return Target(parts.hostname, parts.port, raw)


class Callers:
    """``concurrency`` callers of one kind (direct or invoke), each with a connection of
    its own that it keeps from round to round, as a PBX keeps its connections open."""

    def __init__(self, concurrency: int, client: str, start: str) -> None:
        self.concurrency, self.client, self.start = concurrency, client, start
        self.raw: dict[int, RawConnection] = {}
        self.httpx: dict[int, httpx.AsyncClient] = {}

    async def run(self, make_target: object, total: int) -> list[float]:
        """``total`` requests, each caller sending its next as soon as it has an answer;
        the latency of each in ms.

        ``start="spread"``: the callers begin one after another over one CRM latency, so
        that they are as out of step as independent calls are; they stay so, every
        caller waiting about as long for each answer. ``start="together"``: all of them
        send their first request in the same millisecond — the worst burst, which a
        round of fifty calls reaching the IVR at one instant would be."""
        latencies: list[float] = []
        counter = iter(range(total))

        async def caller(index: int) -> None:
            if self.start == "spread":
                await asyncio.sleep(index * CRM_LATENCY_MS / 1000 / self.concurrency)
            for n in counter:
                target = make_target(n)  # type: ignore[operator]
                started = time.perf_counter()
                status = await self._send(index, target)
                latencies.append((time.perf_counter() - started) * 1000)
                assert status == 200, status

        await asyncio.gather(*(caller(index) for index in range(self.concurrency)))
        return latencies

    async def _send(self, index: int, target: Target | HttpxTarget) -> int:
        if isinstance(target, HttpxTarget):
            http = self.httpx.get(index)
            if http is None:
                http = self.httpx[index] = httpx.AsyncClient(timeout=30)
            response = await http.request(
                target.method, target.url, headers=target.headers, content=target.body
            )
            return response.status_code
        connection = self.raw.get(index)
        if connection is None:
            connection = self.raw[index] = RawConnection(target.host, target.port)
        return await connection.request(target.raw)

    async def close(self) -> None:
        for connection in self.raw.values():
            await connection.close()
        for http in self.httpx.values():
            await http.aclose()


@dataclass
class HttpxTarget:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def _added_up(pid: int, read: Callable[[int], float]) -> float:
    """``read`` of a process and those under it (Linux: ``serve`` starts its web and
    dispatcher processes under the one started), skipping any that just ended."""
    total = 0.0
    for each in [pid, *descendants(pid)]:
        try:
            total += read(each)
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and those under it."""
    return _added_up(pid, proc_cpu_seconds)


def memory_by_process(pid: int, port: int) -> dict[str, Memory]:
    """RSS and PSS of ``callbridge serve`` and of each process under it, by label."""
    return memory_by_label(label_processes(pid, port))


def settled_memory(pid: int, port: int, seconds: float = 60) -> dict[str, Memory]:
    """``memory_by_process`` once start-up is over: the same processes, and their PSS
    added up moving by less than 1 MB over two seconds (``seconds`` at most)."""
    deadline = time.monotonic() + seconds
    wait_labelled(pid, port, seconds)
    last = memory_by_process(pid, port)
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = memory_by_process(pid, port)
        before, after = sum(last.values(), Memory()), sum(now.values(), Memory())
        if list(now) == list(last) and abs(after.pss - before.pss) < 1:
            return now
        last = now
    return last


def memory_total(pid: int) -> Memory:
    """RSS and PSS of a process and those under it, added up."""
    return memory_of([pid, *descendants(pid)])


@dataclass
class Peer:
    """Something else doing the same dip as the seed IVR, measured in the same rounds:
    Node-RED running bench/nodered/flows.json, or the floor (bench/floor_app.py)."""

    name: str
    url: str
    pid: int


NODERED_DIR = ROOT / "bench" / "nodered"


@contextmanager
def running_nodered(sandbox: str, token: str, cpus: set[int] | None) -> Iterator[Peer]:
    """Node-RED (installed once with ``npm install`` in bench/nodered) on a free port,
    its flow calling the sandbox with ``token``."""
    red = NODERED_DIR / "node_modules" / "node-red" / "red.js"
    if not red.exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODERED_DIR,
            check=True,
        )
    with tempfile.TemporaryDirectory() as user_dir:
        for name in ("flows.json", "settings.js"):
            (Path(user_dir) / name).write_bytes((NODERED_DIR / name).read_bytes())
        port = free_port()
        env = {**os.environ, "NODERED_PORT": str(port), "SANDBOX_URL": sandbox,
               "SANDBOX_TOKEN": token}  # fmt: skip
        command = ["node", str(red), "--userDir", user_dir, "--settings",
                   str(Path(user_dir) / "settings.js")]  # fmt: skip
        with child(command, env, cpus) as process:
            yield answering(Peer("Node-RED", f"http://127.0.0.1:{port}/ivr/seed000/invoke",
                                 process.pid), process)  # fmt: skip


@contextmanager
def running_floor(sandbox: str, token: str, cpus: set[int] | None) -> Iterator[Peer]:
    """The floor (bench/floor_app.py): the same dip as a bare ASGI function on uvicorn's
    defaults and aiohttp, on a free port."""
    port = free_port()
    env = {**base_env(), "SANDBOX_URL": sandbox, "SANDBOX_TOKEN": token}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench"), env["PYTHONPATH"]])
    command = [sys.executable, "-m", "uvicorn", "floor_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    with child(command, env, cpus) as process:
        yield answering(Peer("floor", f"http://127.0.0.1:{port}/ivr/seed000/invoke",
                             process.pid), process)  # fmt: skip


def answering(peer: Peer, process: subprocess.Popen[bytes]) -> Peer:
    """``peer`` once it answers an invocation (at most 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = httpx.post(peer.url, json={"call_id": "warm", "tel": "07075373713"})
            if answer.status_code == 200:
                return peer
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{peer.name} did not come up")
        time.sleep(0.2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


# ---- setting up callbridge --------------------------------------------------------------


def reset_postgres(url: str) -> None:
    import asyncio as aio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def reset() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    aio.run(reset())


def make_token(env: dict[str, str], scope: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "callbridge", "tokens", "create", "--name", f"bench-{scope}",
         "--scope", scope],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


def configure(base: str, admin: str, sandbox: str) -> None:
    headers = {"Authorization": f"Bearer {admin}"}
    account = httpx.post(
        f"{base}/api/v1/oauth-accounts",
        json=demo_account_fields(sandbox, "sandbox"),
        headers=headers,
    ).json()
    connected = httpx.post(
        f"{base}/api/v1/oauth-accounts/{account['id']}/connect", headers=headers, timeout=30
    )
    assert connected.json()["status"] == "connected", connected.text
    created = httpx.post(
        f"{base}/api/v1/ivrs", json={**SEED_IVR, "oauth_account_id": account["id"]},
        headers=headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text


# ---- the benchmark -------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    direct: list[float]
    invoke: list[float]
    cpu_ms: float  # callbridge's CPU time per invocation
    memory: Memory = field(default_factory=Memory)  # callbridge's, all processes added up
    # The same dip through each peer (--nodered, --floor), in the same rounds.
    peers: dict[str, PeerLevel] = field(default_factory=dict)


@dataclass
class PeerLevel:
    latencies: list[float]
    cpu_ms: float  # the peer's CPU time per request
    memory: Memory


async def measure(
    base: str,
    pbx: str,
    sandbox: str,
    token: str,
    args: argparse.Namespace,
    server_pid: int,
    peers: list[Peer],
) -> list[Level]:
    levels, per_level, client = args.levels, args.requests, args.client
    direct_url = f"{sandbox}/services/data/v45.0/search?q={quote(SEARCH, safe='')}"
    invoke_url = f"{base}/api/v1/ivr/seed000/invoke"
    direct_headers = {"Authorization": f"Bearer {token}", "Accept": "*/*"}
    invoke_headers = {"Authorization": f"Bearer {pbx}", "Content-Type": "application/json"}

    def direct(n: int) -> object:
        if client == "httpx":
            return HttpxTarget("GET", direct_url, direct_headers, b"")
        return build_request("GET", direct_url, direct_headers)

    sequence = iter(range(10**9))

    def invoke(n: int) -> object:
        body = json.dumps({"call_id": f"bench-{next(sequence)}", "tel": "07075373713"}).encode()
        if client == "httpx":
            return HttpxTarget("POST", invoke_url, invoke_headers, body)
        return build_request("POST", invoke_url, invoke_headers, body)

    def to_peer(url: str) -> Callable[[int], object]:
        def request(n: int) -> object:
            body = json.dumps({"call_id": f"peer-{n}", "tel": "07075373713"}).encode()
            headers = {"Content-Type": "application/json"}
            if client == "httpx":
                return HttpxTarget("POST", url, headers, body)
            return build_request("POST", url, headers, body)

        return request

    results = []
    for concurrency in levels:
        direct_callers = Callers(concurrency, client, args.start)
        invoke_callers = Callers(concurrency, client, args.start)
        peer_callers = {p.name: Callers(concurrency, client, args.start) for p in peers}
        # Warm up: connections, the compiled IVR, the OAuth token, the pools, and the
        # first seconds of a new process (slow full collections of start-up garbage).
        await invoke_callers.run(invoke, min(max(concurrency * 30, 20), 1500))
        await direct_callers.run(direct, concurrency * 2)
        for p in peers:
            await peer_callers[p.name].run(to_peer(p.url), min(max(concurrency * 30, 20), 1500))
        direct_all: list[float] = []
        invoke_all: list[float] = []
        peer_all: dict[str, list[float]] = {p.name: [] for p in peers}
        cpu = 0.0
        peer_cpu = dict.fromkeys(peer_all, 0.0)
        rounds = 4
        size = max(concurrency * 3, per_level // rounds)
        for _ in range(rounds):
            direct_all += await direct_callers.run(direct, size)
            before = cpu_seconds(server_pid)
            invoke_all += await invoke_callers.run(invoke, size)
            # The log writes that follow the answers are part of the cost too.
            await asyncio.sleep(0.5)
            cpu += cpu_seconds(server_pid) - before
            for p in peers:
                before = cpu_seconds(p.pid)
                peer_all[p.name] += await peer_callers[p.name].run(to_peer(p.url), size)
                peer_cpu[p.name] += cpu_seconds(p.pid) - before
        await direct_callers.close()
        await invoke_callers.close()
        for callers in peer_callers.values():
            await callers.close()
        level = Level(concurrency, direct_all, invoke_all, cpu * 1000 / len(invoke_all))
        level.memory = memory_total(server_pid)
        for p in peers:
            latencies = peer_all[p.name]
            level.peers[p.name] = PeerLevel(
                latencies, peer_cpu[p.name] * 1000 / len(latencies), memory_total(p.pid)
            )
        results.append(level)
    return results


async def first_invocations(base: str, pbx: str, count: int) -> list[float]:
    """The first ``count`` invocations after start-up (ms), one after another, each on a
    new connection (with several web processes they reach more than one): what a piece
    built lazily would add to the first call a process serves."""
    headers = {"Authorization": f"Bearer {pbx}", "Content-Type": "application/json"}
    latencies = []
    for n in range(count):
        body = json.dumps({"call_id": f"first-{n}", "tel": "07075373713"}).encode()
        target = build_request("POST", f"{base}/api/v1/ivr/seed000/invoke", headers, body)
        connection = RawConnection(target.host, target.port)
        started = time.perf_counter()
        status = await connection.request(target.raw)
        latencies.append((time.perf_counter() - started) * 1000)
        await connection.close()
        assert status == 200, status
    return latencies


def report(database: str, results: list[Level]) -> None:
    print(f"\n{database}: latency in ms (sandbox at {CRM_LATENCY_MS} ms)")
    print(
        f"{'concurrent':>10} {'n':>6} {'direct p50':>11} {'direct p99':>11} {'invoke p50':>11} "
        f"{'invoke p99':>11} {'added p50':>10} {'added p99':>10} {'CPU/inv':>8}"
    )
    for level in results:
        d50, d99 = percentile(level.direct, 50), percentile(level.direct, 99)
        rows = [("callbridge", level.invoke, level.cpu_ms, level.memory)]
        for name, peer in level.peers.items():
            rows.append((name, peer.latencies, peer.cpu_ms, peer.memory))
        for name, latencies, cpu_ms, memory in rows:
            i50, i99 = percentile(latencies, 50), percentile(latencies, 99)
            print(
                f"{level.concurrency:>10} {len(latencies):>6} {d50:>11.2f} {d99:>11.2f} "
                f"{i50:>11.2f} {i99:>11.2f} {i50 - d50:>10.2f} {i99 - d99:>10.2f} "
                f"{cpu_ms:>8.2f}  {name}, {memory} ({memory.processes} processes)"
            )
    sys.stdout.flush()


def run_database(database: str, url: str | None, sandbox: str, args: argparse.Namespace) -> None:
    run_configuration(database, url, sandbox, args, ())
    if args.web_processes:
        tuned = ("--role", "web", "--workers", str(args.web_processes))
        run_configuration(f"{database} (tuned)", url, sandbox, args, tuned)


def run_configuration(
    database: str,
    url: str | None,
    sandbox: str,
    args: argparse.Namespace,
    serve_args: tuple[str, ...],
) -> None:
    """``callbridge serve`` as the README starts it (no option, no ``CALLBRIDGE_``
    variable but the data directory and the database), unless ``serve_args``."""
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in base_env().items() if not k.startswith("CALLBRIDGE_")}
        env["CALLBRIDGE_DATA_DIR"] = data_dir
        if url:
            reset_postgres(url)
            env["CALLBRIDGE_DATABASE_URL"] = url
        admin = make_token(env, "admin")
        pbx = make_token(env, "pbx")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "callbridge", "serve", "--host", "127.0.0.1",
                   "--port", str(port), *serve_args]  # fmt: skip
        with child(command, env, args.callbridge_cpus) as server:
            wait_http(f"{base}/healthz")
            idle = settled_memory(server.pid, port)
            configure(base, admin, sandbox)
            print(f"\n{database}: {configuration(server.pid, serve_args)}")
            print(f"{database}: callbridge idle after start-up: {memory_line(idle)}")
            first = asyncio.run(first_invocations(base, pbx, 5))
            print(
                f"{database}: first invocations after start-up, a new connection each "
                f"(sandbox at {CRM_LATENCY_MS} ms): "
                + ", ".join(f"{latency:.1f}" for latency in first)
                + " ms"
            )
            token = httpx.post(f"{sandbox}/_sandbox/tokens", json={}).json()["access_token"]
            with contextlib.ExitStack() as running:
                peers = []
                for wanted, start in ((args.nodered, running_nodered), (args.floor, running_floor)):
                    if wanted:
                        peer = running.enter_context(start(sandbox, token, args.callbridge_cpus))
                        print(f"{peer.name} idle after start-up: {memory_total(peer.pid)}")
                        peers.append(peer)
                results = asyncio.run(measure(base, pbx, sandbox, token, args, server.pid, peers))
            report(database, results)
            after = memory_by_process(server.pid, port)
            print(f"{database}: callbridge after the load: {memory_line(after)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="PostgreSQL URL (its public schema is reset)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument(
        "--start",
        choices=("spread", "together"),
        default="spread",
        help="callers begin over one CRM latency (spread) or in the same millisecond",
    )
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--requests", type=int, default=2000, help="per level and kind")
    parser.add_argument(
        "--web-processes",
        type=int,
        help="also measure a second, labelled configuration: serve --role web --workers N",
    )
    parser.add_argument(
        "--nodered",
        action="store_true",
        help="also run the same dip through Node-RED (bench/nodered; `npm install` there "
        "on first use), in the same rounds, on the same CPUs as callbridge",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run the same dip as a bare ASGI function on uvicorn and aiohttp "
        "(bench/floor_app.py): what the stack costs before callbridge does anything",
    )
    parser.add_argument(
        "--callbridge-cpus",
        type=lambda text: {int(n) for n in text.split(",")},
        help="CPUs callbridge may run on, e.g. 0 (Linux); with --others-cpus 1 it has a "
        "core to itself instead of sharing both with the sandbox and the load generator",
    )
    parser.add_argument(
        "--others-cpus",
        type=lambda text: {int(n) for n in text.split(",")},
        help="CPUs the sandbox and the load generator may run on, e.g. 1",
    )
    args = parser.parse_args()
    if args.quick:
        args.requests = 200
    port = free_port()
    sandbox = f"http://127.0.0.1:{port}"
    code = f"from callbridge.sandbox import run_sandbox; run_sandbox('127.0.0.1', {port}, None)"
    if args.others_cpus:
        os.sched_setaffinity(0, args.others_cpus)  # this load generator, and the sandbox
    with child([sys.executable, "-c", code], base_env()):
        wait_http(f"{sandbox}/_sandbox")
        knobs = {"latency_ms": CRM_LATENCY_MS, "log_requests": False, "api_request_limit": 10**9}
        httpx.patch(f"{sandbox}/_sandbox/knobs", json=knobs)
        print(
            f"callbridge IVR benchmark: {os.cpu_count()} CPUs, client {args.client}, "
            f"callers start {args.start}"
        )
        if not args.no_sqlite:
            run_database("SQLite", None, sandbox, args)
        if args.postgres:
            run_database("PostgreSQL", args.postgres, sandbox, args)


if __name__ == "__main__":
    main()
