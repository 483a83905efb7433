"""Call events to CRM requests: pickup latency and sustained throughput (issue 5, "Speed").

Run: ``python bench/bench_dispatch.py`` (about three minutes per database; ``--quick``
for a smoke run; ``--postgres URL`` to add PostgreSQL, e.g.
``postgresql+asyncpg://postgres@127.0.0.1/cb_bench`` — its ``public`` schema is dropped
and recreated).

Setup: the sandbox Salesforce (``callbridge sandbox``) answering every request after
``--latency-ms`` (150), an OAuth account connected to it, and the three call actions of
seed 000 §2 configured through the API exactly as the acceptance tests do (queue: find
the contact, create a Case; disconnect: patch the Case with the playback URL).
callbridge runs with its defaults, as the README starts it (``callbridge serve``: on
PostgreSQL one web process per core with dispatcher processes beside them, on SQLite one
process; CPU is reported per process), and the OAuth account keeps its default request
limits (docs/oauth.md §7). On PostgreSQL ``--workers N`` adds a second, labelled run:
``serve --role web`` plus N ``serve --role worker`` processes.

1. Pickup (``--pickup-seconds 0`` skips it): queue events at ``--pickup-rate`` (50/s),
   each for its own number; the time
   from sending the event to the sandbox receiving that call's first request (the
   contact query), p50/p99. Both ends stamp with the machine's clock.
2. Sustained: ``--calls-per-second`` (100) calls for ``--seconds`` (60): each call sends
   ``queue`` and, two seconds later, ``disconnect`` — 3 CRM requests per call. Every
   second: the backlog (events waiting or being processed) and callbridge's memory; on
   PostgreSQL, every 0.1 s, the connections open to the database (the benchmark's own
   left out), of which the most seen is printed.
   Afterwards every call must have its 3 requests, in order, without error.

Reference: a bare ``httpx`` loop (and the same with ``httpx2``, its maintained
successor; callbridge's outbound path sends with aiohttp, docs/outbound.md) in a process
of its own, sending the same three requests per call on the same schedule straight to
the sandbox (no events, no database, no templates): its
request round trip, CPU and memory are the floor to compare with.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import (
    ROOT,
    Callbridge,
    RawClient,
    configuration,
    free_port,
    memory_line,
    percentile,
    running_callbridge,
)

from callbridge.sandbox import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_SECURITY_TOKEN,
    DEMO_USERNAME,
)

SEED_RULES: list[dict[str, Any]] = [
    {
        "event": "queue",
        "order": 1,
        "auth_type": "oauth",
        "method": "GET",
        "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/query?q= SELECT+Id,Name FROM "
        "Contact WHERE Phone ='{TEL}'",
        "timeout_seconds": 10,
        "extract_pattern": '/"Id":"(?P<CONTACT_ID>.*)",/',
    },
    {
        "event": "queue",
        "order": 2,
        "auth_type": "oauth",
        "method": "POST",
        "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobject s/case/",
        "headers": "Content-Type: application/json",
        "body": '{"Origin": "Phone","ContactId":"{RESPONSE_CONTACT_ID}"}',
        "timeout_seconds": 10,
        "extract_pattern": '/"id":"(?P<CASE_ID>.*)",/',
    },
    {
        "event": "disconnect",
        "order": 1,
        "auth_type": "oauth",
        "method": "PATCH",
        "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobjects/cas e/{RESPONSE_CASE_ID}",
        "headers": "Content-Type: application/json",
        "body": '{"Origin": "Phone","Subject":"コールセンターへの着信です ","ContactId":'
        '"{RESPONSE_CONTACT_ID}","Description": "{SVADDR}monitor_link/{ID}"}',
        "timeout_seconds": 10,
    },
]


# ---- the sandbox -------------------------------------------------------------------


SANDBOX_PID: dict[str, int] = {}


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_sandbox_process(latency_ms: float) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "callbridge", "sandbox", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/_sandbox/knobs", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.1)
        httpx.patch(
            base + "/_sandbox/knobs",
            json={
                "latency_ms": latency_ms,
                "max_logged_requests": 1_000_000,
                "api_request_limit": 100_000_000,
            },
        ).raise_for_status()
        SANDBOX_PID[base] = process.pid
        yield base
    finally:
        process.terminate()
        process.wait()


def sandbox_requests(base: str, since: int = 0) -> list[dict[str, Any]]:
    answer = httpx.get(
        base + "/_sandbox/requests", params={"kind": "rest", "since": since}, timeout=60
    )
    answer.raise_for_status()
    return list(answer.json())


def tel_of(request: dict[str, Any]) -> str | None:
    """The caller's number in a contact query (the first request of each call)."""
    q = parse_qs(urlsplit(request["url"]).query).get("q", [""])[0]
    if "Phone =" not in q:
        return None
    return q.rsplit("'", 2)[-2] if q.count("'") >= 2 else None


# ---- configuring callbridge ----------------------------------------------------------


def configure(server: Callbridge, sandbox: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    with httpx.Client(base_url=server.base_url, headers=admin, timeout=30) as http:
        account = http.post(
            "/api/v1/oauth-accounts",
            json={
                "name": "Sandbox",
                "provider": "salesforce",
                "grant_type": "password",
                "login_url": sandbox,
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
                "username": DEMO_USERNAME,
                "password": DEMO_PASSWORD + DEMO_SECURITY_TOKEN,
            },
        )
        account.raise_for_status()
        account_id = account.json()["id"]
        http.post(f"/api/v1/oauth-accounts/{account_id}/connect").raise_for_status()
        for rule in SEED_RULES:
            http.post(
                "/api/v1/call-actions", json={**rule, "oauth_account_id": account_id}
            ).raise_for_status()
    return {"Authorization": f"Bearer {server.token('pbx')}", "Content-Type": "application/json"}


# ---- load ----------------------------------------------------------------------------


class EventSender:
    """Posts call events on a pool of keep-alive connections, open loop."""

    def __init__(self, base_url: str, headers: dict[str, str], connections: int = 64):
        host, port = base_url.removeprefix("http://").split(":")
        self.headers = headers
        self.pool: asyncio.Queue[RawClient] = asyncio.Queue()
        for _ in range(connections):
            self.pool.put_nowait(RawClient(host, int(port)))
        self.statuses: dict[int, int] = {}

    async def send(self, **fields: Any) -> float:
        """Post the event; the wall-clock time it was sent."""
        client = await self.pool.get()
        try:
            sent = time.time()
            status, _ = await client.request(
                "POST", "/api/v1/call-events", self.headers, json.dumps(fields).encode()
            )
        finally:
            self.pool.put_nowait(client)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return sent

    async def close(self) -> None:
        while not self.pool.empty():
            await self.pool.get_nowait().close()


async def seed_call(sender: EventSender, call_id: str) -> None:
    """One call of the seed: ``queue`` and, two seconds later, ``disconnect``."""
    await sender.send(event="queue", call_id=call_id, event_id=f"{call_id}-q", tel="07075373713")
    await asyncio.sleep(2.0)
    await sender.send(event="disconnect", call_id=call_id, event_id=f"{call_id}-d")


async def at_rate(rate: float, count: int, job: Any) -> list[Any]:
    start = time.perf_counter() + 0.05
    tasks = []
    for n in range(count):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(job(n)))
    return list(await asyncio.gather(*tasks))


def tel_for(run: str, n: int) -> str:
    return f"090{run}{n:05d}"


async def measure_pickup(
    server: Callbridge, sandbox: str, headers: dict[str, str], rate: float, seconds: float
) -> list[float]:
    run = str(int(time.time()) % 1000).zfill(3)
    sender = EventSender(server.base_url, headers)
    since = max((r["seq"] for r in sandbox_requests(sandbox)), default=0)
    count = int(rate * seconds)

    async def job(n: int) -> tuple[str, float]:
        tel = tel_for(run, n)
        return tel, await sender.send(event="queue", call_id=f"p{run}-{n}", tel=tel)

    sent = dict(await at_rate(rate, count, job))
    await sender.close()
    first: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while len(first) < count and time.monotonic() < deadline:
        for request in sandbox_requests(sandbox, since):
            tel = tel_of(request)
            if tel in sent and tel not in first:
                first[tel] = request["received_at"]
        if len(first) < count:
            time.sleep(0.5)
    return sorted(first[t] - sent[t] for t in first)


# The benchmark's own PostgreSQL connections, left out of the count of callbridge's.
BENCH_APPLICATION = "callbridge-bench"


def _bench_connect_args(database_url: str) -> dict[str, Any]:
    if database_url.startswith("postgresql"):
        return {"server_settings": {"application_name": BENCH_APPLICATION}}
    return {}


async def backlog(database_url: str) -> tuple[int, int]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url, connect_args=_bench_connect_args(database_url))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT status, count(*) FROM call_event "
                    "WHERE status IN ('pending', 'processing') GROUP BY status"
                )
            )
            counts = dict(rows.all())
            return int(counts.get("pending", 0)), int(counts.get("processing", 0))
    finally:
        await engine.dispose()


async def watch_connections(database_url: str, stop: asyncio.Event) -> int | None:
    """The most connections to the benchmark's PostgreSQL database open at once while
    ``stop`` is not set (sampled every 0.1 s), the benchmark's own left out; None on
    SQLite."""
    if not database_url.startswith("postgresql"):
        await stop.wait()
        return None
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(
        dsn.render_as_string(hide_password=False),
        server_settings={"application_name": BENCH_APPLICATION},
    )
    peak = 0
    try:
        while not stop.is_set():
            seen = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name <> $1",
                BENCH_APPLICATION,
            )
            peak = max(peak, int(seen))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await connection.close()
    return peak


async def sustained(
    server: Callbridge,
    sandbox: str,
    headers: dict[str, str],
    calls_per_second: float,
    seconds: float,
) -> dict[str, Any]:
    run = "s" + str(int(time.time()) % 1000).zfill(3)
    sender = EventSender(server.base_url, headers, connections=128)
    count = int(calls_per_second * seconds)
    samples: list[tuple[float, int, int, float]] = []
    # The pickup measurement ends when each of its calls has sent its first request; their
    # second requests (the Case) may still be on their way. Only this run's are counted:
    # from the moment no earlier event is left to process.
    while sum(await backlog(server.database_url)):
        await asyncio.sleep(0.2)
    since = max((r["seq"] for r in sandbox_requests(sandbox)), default=0)
    cpu_before = server.cpu_by_process()
    stop = asyncio.Event()

    async def sample() -> None:
        started = time.monotonic()
        while not stop.is_set():
            pending, processing = await backlog(server.database_url)
            samples.append((time.monotonic() - started, pending, processing, server.rss_mb()[0]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def call(n: int) -> None:
        await seed_call(sender, f"{run}-{n}")

    sampler = asyncio.create_task(sample())
    connections = asyncio.create_task(watch_connections(server.database_url, stop))
    sandbox_cpu_before = (
        process_cpu_seconds(SANDBOX_PID[sandbox]) if sandbox in SANDBOX_PID else 0.0
    )
    started = time.perf_counter()
    await at_rate(calls_per_second, count, call)
    offered = time.perf_counter() - started
    drain_started = time.monotonic()
    while sum(await backlog(server.database_url)) and time.monotonic() - drain_started < 120:
        await asyncio.sleep(0.2)
    drained = time.monotonic() - drain_started
    stop.set()
    await sampler
    peak_connections = await connections
    cpu_by_process = {
        label: seconds - cpu_before.get(label, 0.0)
        for label, seconds in server.cpu_by_process().items()
    }
    cpu = sum(cpu_by_process.values())
    sandbox_cpu = (
        process_cpu_seconds(SANDBOX_PID[sandbox]) - sandbox_cpu_before
        if sandbox in SANDBOX_PID
        else 0.0
    )
    await sender.close()
    requests = sandbox_requests(sandbox, since)
    errors = [r for r in requests if (r.get("status") or 0) >= 400]
    return {
        "calls": count,
        "offered_seconds": offered,
        "drain_seconds": drained,
        "samples": samples,
        "requests": len(requests),
        "errors": len(errors),
        "statuses": sender.statuses,
        "cpu": cpu,
        "cpu_by_process": cpu_by_process,
        "peak_rss": server.rss_mb()[1],
        "peak_rss_by_process": server.peak_rss_by_process(),
        "memory": server.memory_by_process(),
        "sandbox_cpu": sandbox_cpu,
        "peak_connections": peak_connections,
    }


def report_sustained(label: str, result: dict[str, Any]) -> None:
    samples = result["samples"]
    steady = [s for s in samples if 5 <= s[0] <= result["offered_seconds"]]
    backlogs = [p + q for _t, p, q, _r in steady] or [0]
    thirds = max(len(backlogs) // 3, 1)
    print(
        f"{label:<34} {result['calls']} calls in {result['offered_seconds']:.1f} s, "
        f"{result['requests']} CRM requests ({3 * result['calls']} expected), "
        f"{result['errors']} errors; backlog during the run min {min(backlogs)} / "
        f"median {statistics.median(backlogs):.0f} / max {max(backlogs)} (first third "
        f"median {statistics.median(backlogs[:thirds]):.0f}, last third "
        f"{statistics.median(backlogs[-thirds:]):.0f}); drained "
        f"{result['drain_seconds']:.1f} s after the last event; CPU "
        f"{result['cpu'] / (result['calls'] * 2) * 1000:.2f} ms/event, "
        f"{result['cpu'] / (result['offered_seconds'] + result['drain_seconds']) * 100:.0f}"
        f"% of a core (the sandbox "
        f"{result['sandbox_cpu'] / (result['offered_seconds'] + result['drain_seconds']) * 100:.0f}"
        f"%); peak RSS {result['peak_rss']:.0f} MB (the largest process); after the run "
        f"{memory_line(result['memory'])}"
        + (
            f"; at most {result['peak_connections']} database connections open"
            if result["peak_connections"] is not None
            else ""
        ),
        flush=True,
    )
    if len(result["cpu_by_process"]) > 1:
        elapsed = result["offered_seconds"] + result["drain_seconds"]
        events = result["calls"] * 2
        print(
            f"{'':<34} per process: "
            + ", ".join(
                f"{label} {seconds / events * 1000:.2f} ms/event, "
                f"{seconds / elapsed * 100:.0f}% of a core, peak RSS "
                f"{result['peak_rss_by_process'][label]:.0f} MB"
                for label, seconds in result["cpu_by_process"].items()
            ),
            flush=True,
        )


def run_database(
    database: str, postgres_url: str | None, sandbox: str, args: argparse.Namespace
) -> None:
    run_configuration(database, postgres_url, sandbox, args, 0)
    if args.workers and database == "postgresql":
        run_configuration(database, postgres_url, sandbox, args, args.workers)


def run_configuration(
    database: str, postgres_url: str | None, sandbox: str, args: argparse.Namespace, workers: int
) -> None:
    """The defaults (``callbridge serve``), or with ``workers`` the labelled split
    deployment: ``serve --role web --workers 1`` plus that many ``--role worker``."""
    settings: dict[str, str] = {}
    serve_args: tuple[str, ...] = ()
    label = database
    if workers:
        # Several processes share the server's connections (max_connections is often 100).
        settings.update(database_pool_size="10", database_max_overflow="5")
        serve_args = ("--role", "web", "--workers", "1")
        label = f"{database} (tuned: web + {workers} workers)"
    with running_callbridge(
        database, postgres_url, serve_args=serve_args, workers=workers, **settings
    ) as server:
        described = configuration(server.process.pid, serve_args, **settings)
        if workers:
            described += f", plus {workers} `callbridge serve --role worker` process(es)"
        print(f"{label}: {described}", flush=True)
        print(f"{label}: memory idle after start-up: {memory_line(server.memory_by_process())}")
        headers = configure(server, sandbox)
        asyncio.run(measure_pickup(server, sandbox, headers, 5, 1))  # warm up
        if args.pickup_seconds > 0:
            pickup = asyncio.run(
                measure_pickup(server, sandbox, headers, args.pickup_rate, args.pickup_seconds)
            )
            print(
                f"{label + ': event → first CRM request':<34} "
                f"at {args.pickup_rate:g} events/s: p50 {percentile(pickup, 0.5) * 1000:.1f} ms"
                f"  p99 {percentile(pickup, 0.99) * 1000:.1f} ms  max "
                f"{(pickup[-1] if pickup else float('nan')) * 1000:.1f} ms  ({len(pickup)} "
                "events)",
                flush=True,
            )
        result = asyncio.run(
            sustained(server, sandbox, headers, args.calls_per_second, args.seconds)
        )
        report_sustained(f"{label}: sustained", result)


# ---- reference -----------------------------------------------------------------------


def reference_process(
    sandbox: str,
    calls_per_second: float,
    seconds: float,
    pickup_rate: float,
    pickup_seconds: float,
    library: str,
) -> None:
    """The same requests straight to the sandbox with one client (child process)."""
    import importlib

    client_library: Any = importlib.import_module(library)
    token = httpx.post(
        sandbox + "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD + DEMO_SECURITY_TOKEN,
        },
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    base = sandbox + "/services/data/v45.0"

    async def main() -> dict[str, Any]:
        limits = client_library.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with client_library.AsyncClient(headers=auth, limits=limits, timeout=30) as http:
            lateness: list[float] = []

            async def pickup_job(n: int) -> None:
                due = time.perf_counter()
                await http.get(
                    base + "/query",
                    params={"q": "SELECT Id,Name FROM Contact WHERE Phone ='07075373713'"},
                )
                lateness.append(time.perf_counter() - due)

            await at_rate(pickup_rate, int(pickup_rate * pickup_seconds), pickup_job)
            cpu_before = time.process_time()

            async def call(n: int) -> None:
                found = await http.get(
                    base + "/query",
                    params={"q": "SELECT Id,Name FROM Contact WHERE Phone ='07075373713'"},
                )
                contact = found.json()["records"][0]["Id"]
                case = await http.post(
                    base + "/sobjects/case/", json={"Origin": "Phone", "ContactId": contact}
                )
                await asyncio.sleep(2.0)
                await http.patch(
                    base + f"/sobjects/case/{case.json()['id']}",
                    json={"Description": f"https://x/monitor_link/{n}"},
                )

            started = time.perf_counter()
            await at_rate(calls_per_second, int(calls_per_second * seconds), call)
            elapsed = time.perf_counter() - started
            return {
                "lateness": sorted(lateness),
                "cpu": time.process_time() - cpu_before,
                "elapsed": elapsed,
            }

    result = asyncio.run(main())
    peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    result["peak_rss"] = peak
    print(json.dumps(result))


def run_reference(sandbox: str, args: argparse.Namespace, library: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--reference-of",
            sandbox,
            "--calls-per-second",
            str(args.calls_per_second),
            "--seconds",
            str(args.seconds),
            "--pickup-rate",
            str(args.pickup_rate),
            "--pickup-seconds",
            str(args.pickup_seconds),
            "--reference-library",
            library,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    lateness = result["lateness"]
    latency = float(args.latency_ms) / 1000
    on_schedule = args.seconds + 2 + 3 * latency
    print(
        f"{'reference: bare ' + library + ' loop':<34} request round trip at "
        f"{args.pickup_rate:g}/s p50 {percentile(lateness, 0.5) * 1000:.1f} ms p99 "
        f"{percentile(lateness, 0.99) * 1000:.1f} ms (of which {latency * 1000:.0f} ms is "
        f"the sandbox's latency); {args.calls_per_second:g} calls/s for {args.seconds:g} s "
        f"took {result['elapsed']:.0f} s ({on_schedule:.0f} s on schedule): CPU "
        f"{result['cpu'] / (args.calls_per_second * args.seconds * 3) * 1000:.2f} "
        f"ms/request, {result['cpu'] / result['elapsed'] * 100:.0f}% of a core; peak RSS "
        f"{result['peak_rss']:.0f} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="PostgreSQL URL (its public schema is reset)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=150.0)
    parser.add_argument("--pickup-rate", type=float, default=50.0)
    parser.add_argument("--pickup-seconds", type=float, default=20.0)
    parser.add_argument("--calls-per-second", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="PostgreSQL: also measure a second, labelled configuration: `serve --role web` "
        "plus this many `serve --role worker` processes",
    )
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--reference-of", help=argparse.SUPPRESS)
    parser.add_argument("--reference-library", default="httpx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_of:
        reference_process(
            args.reference_of,
            args.calls_per_second,
            args.seconds,
            args.pickup_rate,
            args.pickup_seconds,
            args.reference_library,
        )
        return
    if args.quick:
        args.pickup_seconds, args.seconds, args.calls_per_second = 3.0, 5.0, 20.0
    print(
        f"dispatch: sandbox latency {args.latency_ms:g} ms; pickup at "
        f"{args.pickup_rate:g} events/s for {args.pickup_seconds:g} s; sustained "
        f"{args.calls_per_second:g} calls/s (seed rules, 3 requests each) for "
        f"{args.seconds:g} s; {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    with running_sandbox_process(args.latency_ms) as sandbox:
        if not args.no_sqlite:
            run_database("sqlite", None, sandbox, args)
        if args.postgres:
            run_database("postgresql", args.postgres, sandbox, args)
        if not args.no_reference:
            run_reference(sandbox, args, "httpx")
            # httpx's maintained successor (DESIGN.md §10).
            run_reference(sandbox, args, "httpx2")


if __name__ == "__main__":
    main()
