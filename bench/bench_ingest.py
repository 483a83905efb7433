"""Call-event ingest: events/s accepted durably and the PBX's answer time (issue 5, "Speed").

Run: ``python bench/bench_ingest.py`` (about a minute; ``--quick`` for a smoke run;
``--postgres URL`` to add PostgreSQL, e.g. ``postgresql+asyncpg://postgres@127.0.0.1/cb_bench``
— its ``public`` schema is dropped and recreated).

What is measured: ``POST /api/v1/call-events`` (JSON, a pbx token, a unique ``event_id``)
sent by ``--connections`` keep-alive connections as fast as each answer comes back, for
``--seconds``. Every ``202`` means the event was committed (on PostgreSQL with its default
``synchronous_commit``); the run ends by counting the stored events, which must equal the
``202`` answers. Figures: accepted events/s, answer time p50/p99/max, callbridge's CPU
time per event (from /proc: what decides how many events a core accepts, and what a busy
machine does not distort the way it distorts latencies).

Processes: callbridge as the README starts it (``callbridge serve``, its defaults: on
PostgreSQL one web process per core and dispatchers beside them, on SQLite one process;
the dispatchers are idle here; ``--role web`` adds a second, labelled run of ingest-only
processes as in a split deployment), and the load generator, one
or more processes (``--load-processes``) with a minimal keep-alive HTTP/1.1 client on
asyncio streams — one process with httpx tops out near 1,300 requests/s on a core here
(DESIGN.md §10), below what is measured. Reference: the same load against a bare ASGI
app on the same server stack that answers ``202`` without storing anything — the ceiling
the HTTP layer alone allows on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent


# ---- processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{base_url} exited with {process.returncode}")
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url} did not start")


def reset_postgres(url: str) -> None:
    """Drop and recreate the ``public`` schema of the benchmark's own database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def reset() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    asyncio.run(reset())


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (Linux /proc), children before grandchildren."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = sorted(child for child, parent in parents.items() if parent in frontier)
        found.extend(children)
        frontier = children
    return found


def _listening_ports() -> dict[str, int]:
    """Socket inode → port of every listening TCP socket (Linux /proc/net/tcp*)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _ports_of(pid: int, listening: dict[str, int]) -> set[int]:
    ports = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            port = listening.get(target[8:-1])
            if port is not None:
                ports.add(port)
    return ports


def label_processes(pid: int, port: int) -> dict[str, int]:
    """Label → pid of ``pid`` (a ``callbridge serve``) and the processes under it: the
    supervisor when it has web or dispatcher processes under it, web processes (they hold
    the socket of ``port``), dispatcher processes (a loopback port of their own) and
    multiprocessing's resource tracker."""
    under = descendants(pid)
    listening = _listening_ports()
    found = {"supervisor" if under else "serve": pid}
    counts: dict[str, int] = {}
    for each in under:
        try:
            command = Path(f"/proc/{each}/cmdline").read_text()
            ports = _ports_of(each, listening)
        except OSError:
            continue
        if "resource_tracker" in command:
            kind = "resource tracker"
        elif port in ports:
            kind = "web"
        elif ports:
            kind = "dispatcher"
        else:
            kind = "starting"
        counts[kind] = counts.get(kind, 0) + 1
        found[f"{kind} {counts[kind]}"] = each
    return found


def wait_labelled(pid: int, port: int, seconds: float = 60) -> dict[str, int]:
    """``label_processes`` once every process under ``pid`` has its port (a dispatcher
    binds its loopback port a moment after the web port answers): a figure taken before
    would name it "starting"."""
    deadline = time.monotonic() + seconds
    found = label_processes(pid, port)
    while any(label.startswith("starting") for label in found) and time.monotonic() < deadline:
        time.sleep(0.1)
        found = label_processes(pid, port)
    return found


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


@dataclass(frozen=True)
class Memory:
    """Memory of one process or of several added up, in MB. RSS counts every page a
    process maps, so the RSS of several processes added up counts the pages they share
    (the interpreter, libraries, pages inherited from a fork) once per process; PSS
    divides each shared page between the processes sharing it, so PSS added up is what
    the processes take from the machine together."""

    rss: float = 0.0
    pss: float = 0.0
    processes: int = 0

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.rss + other.rss, self.pss + other.pss, self.processes + other.processes)

    def __str__(self) -> str:
        return f"RSS {self.rss:.0f} MB, PSS {self.pss:.0f} MB"


def proc_memory_mb(pid: int) -> Memory:
    """RSS and PSS of one process (Linux /proc/<pid>/smaps_rollup)."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key] = int(rest.split()[0]) / 1024
    return Memory(values.get("Rss", 0.0), values.get("Pss", 0.0), 1)


def memory_of(pids: Iterable[int]) -> Memory:
    """The memory of these processes added up, skipping any that just ended."""
    total = Memory()
    for pid in pids:
        try:
            total += proc_memory_mb(pid)
        except (OSError, ValueError):
            continue
    return total


def memory_by_label(processes: dict[str, int]) -> dict[str, Memory]:
    """RSS and PSS now of each of these processes (label → pid), leaving out any that
    just ended."""
    return {label: each for label, pid in processes.items() if (each := memory_of([pid])).processes}


def memory_line(by_process: dict[str, Memory]) -> str:
    """``RSS … MB, PSS … MB`` of all the processes added up, then each process's."""
    total = sum(by_process.values(), Memory())
    line = f"{total} added up over {total.processes} process(es)"
    if len(by_process) > 1:
        line += " (" + "; ".join(f"{label} {each}" for label, each in by_process.items()) + ")"
    return line


@dataclass
class Callbridge:
    base_url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    database_url: str
    # ``--role worker`` processes beside ``process`` (a split deployment).
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    role: str = "web"

    def processes(self) -> dict[str, int]:
        """Label → pid of every callbridge process, those ``serve`` started included
        (``--workers``: web and dispatcher processes under the one started)."""
        port = int(self.base_url.rsplit(":", 1)[1])
        found = label_processes(self.process.pid, port)
        for n, worker in enumerate(self.workers):
            found[f"worker{n + 1}"] = worker.pid
        return found

    def cpu_by_process(self) -> dict[str, float]:
        return {label: proc_cpu_seconds(pid) for label, pid in self.processes().items()}

    def peak_rss_by_process(self) -> dict[str, float]:
        return {label: proc_rss_mb(pid)[1] for label, pid in self.processes().items()}

    def memory_by_process(self) -> dict[str, Memory]:
        """RSS and PSS now of every callbridge process (supervisor and helpers included)."""
        return memory_by_label(self.processes())

    def memory(self) -> Memory:
        """RSS and PSS now of all the callbridge processes added up."""
        return sum(self.memory_by_process().values(), Memory())

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "callbridge", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def token(self, scope: str) -> str:
        return self.cli(
            "tokens", "create", "--name", f"bench-{scope}-{time.time_ns()}", "--scope", scope
        )

    def cpu_seconds(self) -> float:
        """User + system CPU time of the callbridge processes so far (all of them)."""
        return sum(self.cpu_by_process().values())

    def rss_mb(self) -> tuple[float, float]:
        """Current and peak resident memory (MB) of the largest callbridge process."""
        values = [proc_rss_mb(pid) for pid in self.processes().values()]
        return max(v[0] for v in values), max(v[1] for v in values)


@contextmanager
def running_callbridge(
    database: str,
    postgres_url: str | None,
    *,
    serve_args: tuple[str, ...] = (),
    workers: int = 0,
    **settings: str,
) -> Iterator[Callbridge]:
    """``callbridge serve`` as the README starts it: no option but the port and no
    ``CALLBRIDGE_`` variable but the data directory and the database — unless
    ``serve_args``, ``settings`` (``CALLBRIDGE_<NAME>``) or ``workers`` (processes of
    ``--role worker`` started after it) make a second, labelled configuration."""
    with tempfile.TemporaryDirectory() as tmp:
        if database == "postgresql":
            assert postgres_url
            reset_postgres(postgres_url)
            url = postgres_url
        else:
            url = f"sqlite+aiosqlite:///{tmp}/callbridge.db"
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "CALLBRIDGE_DATABASE_URL": url,
            "CALLBRIDGE_DATA_DIR": tmp,
            **{f"CALLBRIDGE_{k.upper()}": v for k, v in settings.items()},
        }
        subprocess.run(
            [sys.executable, "-m", "callbridge", "migrate"],
            env=env,
            check=True,
            capture_output=True,
        )
        log = Path(tmp) / "callbridge.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "callbridge", "serve", "--port", str(port), *serve_args],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{port}"
            started: list[tuple[subprocess.Popen[bytes], Path]] = [(process, log)]
            try:
                wait_healthy(base, process)
                wait_labelled(process.pid, port)
                worker_processes = []
                for n in range(workers):
                    worker_port = free_port()
                    worker_log = Path(tmp) / f"worker{n + 1}.log"
                    worker = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "callbridge",
                            "serve",
                            "--port",
                            str(worker_port),
                            "--role",
                            "worker",
                        ],
                        env=env,
                        stdout=worker_log.open("wb"),
                        stderr=subprocess.STDOUT,
                    )
                    started.append((worker, worker_log))
                    wait_healthy(f"http://127.0.0.1:{worker_port}", worker)
                    worker_processes.append(worker)
                role = "serve"
                if "--role" in serve_args:
                    role = serve_args[serve_args.index("--role") + 1]
                yield Callbridge(base, process, env, url, worker_processes, role)
            finally:
                for child, _log in reversed(started):
                    child.terminate()
                for child, child_log in reversed(started):
                    try:
                        child.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
                    if child.returncode not in (0, -15):
                        sys.stderr.write(child_log.read_text()[-3000:])


def reference_app() -> Any:
    """An ASGI app answering like ingest, without storing anything."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/healthz":
            body = b'{"status":"ok"}'
            status = 200
        else:
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
            body = b'{"status":"accepted","event_id":"x","call_id":"y"}'
            status = 202
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def running_reference() -> Iterator[Callbridge]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-reference", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield Callbridge(base, process, env, "")
    finally:
        process.terminate()
        process.wait()


# ---- the load generator ------------------------------------------------------------


class RawClient:
    """One keep-alive HTTP/1.1 connection: write a request, read one response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        try:
            return await self._request(method, path, headers, body)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            # The server closed an idle keep-alive connection: open a new one, once.
            await self.close()
            self.reader = self.writer = None
            return await self._request(method, path, headers, body)

    async def _request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _load_process(args: tuple[str, str, int, float, str]) -> dict[str, Any]:
    base_url, token, connections, seconds, worker = args
    return asyncio.run(_load(base_url, token, connections, seconds, worker))


async def _load(
    base_url: str, token: str, connections: int, seconds: float, worker: str
) -> dict[str, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def one_connection(index: int) -> None:
        client = RawClient(host, int(port))
        n = 0
        try:
            while time.perf_counter() < stop_at:
                n += 1
                body = event_body(f"w{worker}c{index}n{n}")
                started = time.perf_counter()
                status, _ = await client.request("POST", "/api/v1/call-events", headers, body)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection(i) for i in range(connections)))
    return {"latencies": latencies, "statuses": statuses, "elapsed": time.perf_counter() - started}


def event_body(call_id: str) -> bytes:
    return json.dumps(
        {
            "event": "queue",
            "call_id": call_id,
            "event_id": call_id,
            "tel": "07075373713",
            "called": "0312345678",
            "direction": "inbound",
            "queue": "support",
        }
    ).encode()


def _rate_process(args: tuple[str, str, float, float, int, str]) -> dict[str, Any]:
    return asyncio.run(_load_at_rate(*args))


async def _load_at_rate(
    base_url: str, token: str, rate: float, seconds: float, connections: int, worker: str
) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate whatever happened before; its answer
    time counts from then (a slow answer delays nothing but is fully counted)."""
    host, port = base_url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    pool: asyncio.Queue[RawClient] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(RawClient(host, int(port)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(n: int, due: float) -> None:
        client = await pool.get()
        try:
            status, _ = await client.request(
                "POST", "/api/v1/call-events", headers, event_body(f"{worker}r{n}")
            )
        finally:
            pool.put_nowait(client)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1

    start = time.perf_counter() + 0.05
    tasks = []
    total = int(rate * seconds)
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        await pool.get_nowait().close()
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed}


def generate_rate(
    base_url: str, token: str, rate: float, seconds: float, connections: int, processes: int
) -> dict[str, Any]:
    run = time.time_ns()
    jobs = [
        (base_url, token, rate / processes, seconds, max(connections // processes, 1), f"{run}-{i}")
        for i in range(processes)
    ]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_rate_process, jobs)
    return _merge(results)


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = sorted(x for r in results for x in r["latencies"])
    statuses: dict[int, int] = {}
    for result in results:
        for status, count in result["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    elapsed = max(r["elapsed"] for r in results)
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed}


def generate_load(
    base_url: str, token: str, connections: int, seconds: float, processes: int
) -> dict[str, Any]:
    per = max(connections // processes, 1)
    run = time.time_ns()
    jobs = [(base_url, token, per, seconds, f"{run}-{i}") for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_load_process, jobs)
    return _merge(results)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    return values[min(int(len(values) * fraction), len(values) - 1)]


async def stored_events(database_url: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(
                (await connection.execute(text("SELECT count(*) FROM call_event"))).scalar_one()
            )
    finally:
        await engine.dispose()


def report(label: str, result: dict[str, Any], cpu: float | None, stored: int | None) -> None:
    latencies = result["latencies"]
    accepted = result["statuses"].get(202, 0)
    rate = accepted / result["elapsed"] if result["elapsed"] else 0.0
    other = {k: v for k, v in result["statuses"].items() if k != 202}
    line = (
        f"{label:<34} {rate:8.0f} events/s   answer p50 {percentile(latencies, 0.5) * 1000:6.1f}"
        f" ms  p99 {percentile(latencies, 0.99) * 1000:6.1f} ms  max "
        f"{(latencies[-1] if latencies else 0) * 1000:6.1f} ms"
    )
    if cpu is not None and accepted:
        line += f"   CPU/event {cpu / accepted * 1000:.2f} ms"
    if stored is not None:
        line += f"   stored {stored}/{accepted}"
    if other:
        line += f"   other answers {other}"
    print(line, flush=True)


def configuration(pid: int, serve_args: tuple[str, ...], **settings: str) -> str:
    """What a run used, printed beside its figures: the defaults unless said otherwise;
    ``pid``: the process started (``serve`` starts the others under it)."""
    given = " ".join(serve_args) or "no options"
    variables = ", ".join(f"CALLBRIDGE_{k.upper()}={v}" for k, v in settings.items())
    kind = "tuned" if serve_args or settings else "defaults"
    under = descendants(pid)
    commands = [" ".join(Path(f"/proc/{child}/cmdline").read_text().split("\0")) for child in under]
    helpers = sum("resource_tracker" in command for command in commands)
    return (
        f"callbridge {kind}: `callbridge serve` with {given}, "
        f"{variables or 'no CALLBRIDGE_ variable but the data directory and the database'}"
        f"; {1 + len(under) - helpers} process(es)"
        + (f" (a supervisor and {len(under) - helpers} under it)" if under else "")
    )


def run_database(database: str, postgres_url: str | None, args: argparse.Namespace) -> None:
    run_configuration(database, postgres_url, args, ())
    if args.role:
        run_configuration(database, postgres_url, args, ("--role", args.role))


def run_configuration(
    database: str, postgres_url: str | None, args: argparse.Namespace, serve_args: tuple[str, ...]
) -> None:
    with running_callbridge(database, postgres_url, serve_args=serve_args) as server:
        print(f"{database}: {configuration(server.process.pid, serve_args)}", flush=True)
        if serve_args:
            database = f"{database} (tuned)"
        print(f"{database}: memory idle after start-up: {memory_line(server.memory_by_process())}")
        token = server.token("pbx")
        generate_load(server.base_url, token, 4, 1.0, 1)  # warm-up: connections, caches
        before_cpu = server.cpu_seconds()
        before = asyncio.run(stored_events(server.database_url))
        result = generate_load(
            server.base_url, token, args.connections, args.seconds, args.load_processes
        )
        cpu = server.cpu_seconds() - before_cpu
        stored = asyncio.run(stored_events(server.database_url)) - before
        report(f"{database}: as fast as it answers", result, cpu, stored)
        for rate in args.rates:
            before_cpu = server.cpu_seconds()
            before = asyncio.run(stored_events(server.database_url))
            result = generate_rate(
                server.base_url, token, rate, args.seconds, 128, args.load_processes
            )
            cpu = server.cpu_seconds() - before_cpu
            stored = asyncio.run(stored_events(server.database_url)) - before
            report(f"{database}: offered {rate:g}/s", result, cpu, stored)
        print(f"{database}: memory after the load: {memory_line(server.memory_by_process())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="PostgreSQL URL (its public schema is reset)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument(
        "--role",
        choices=("web", "all"),
        help="also measure a second, labelled configuration: serve --role ROLE",
    )
    parser.add_argument(
        "--rates",
        type=float,
        nargs="*",
        default=[250, 500, 1000],
        help="fixed offered rates (events/s) to measure answer times at",
    )
    parser.add_argument("--serve-reference", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_reference:
        import uvicorn

        uvicorn.run(
            reference_app(),
            host="127.0.0.1",
            port=args.serve_reference,
            log_level="warning",
            access_log=False,
        )
        return
    if args.quick:
        args.seconds = 2.0
    print(
        f"ingest: {args.seconds:g} s per run; saturation with {args.connections} "
        f"connections, then open-loop at fixed rates; {args.load_processes} load "
        f"process(es); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at "
        "start",
        flush=True,
    )
    if not args.no_sqlite:
        run_database("sqlite", None, args)
    if args.postgres:
        run_database("postgresql", args.postgres, args)
    with running_reference() as reference:
        result = generate_load(
            reference.base_url, "x", args.connections, args.seconds, args.load_processes
        )
        report("reference: bare ASGI, no storage", result, None, None)


if __name__ == "__main__":
    main()
