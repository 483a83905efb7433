"""Screen pops to many agent consoles (prints figures; not a test).

Run: python bench/bench_agent_pops.py [--consoles 500] [--rate 50] [--seconds 60]
                                      [--database sqlite|postgresql --postgres-url URL]
                                      [--lookup none|salesforce] [--crm-latency-ms 100]

callbridge runs as ``callbridge serve`` (defaults) in a process of its own, with one
screen-pop profile: without a lookup (``--lookup none``, the default) or finding the
caller in the sandbox Salesforce (``--lookup salesforce``: the sandbox runs in a process
of its own and answers after ``--crm-latency-ms``; one OAuth account, the profile's
default objects Contact, Account, Lead; a tenth of the callers are Contacts in the
sandbox, the rest match nothing and get the new-record URL). ``--consoles`` agents
(extension 1000+n) each hold ``GET /api/v1/agent/events`` open (SSE, one load process);
the agents and their sessions are written straight into the database (signing 500 people
in would only time the password hashing). Ringing events (``incoming`` at one agent's
extension, round robin) are posted at ``--rate`` per second for ``--seconds``.

Figures: event posted → the pop read by the console (this machine's clock on both ends),
p50/p99; with a lookup also event posted → the lookup's answer on the console (the first
message that carries a match, the new-record URL or the lookup error: the card itself
when it waited for the lookup, or its ``update``) and that minus the CRM's latency;
pops received / expected; callbridge's RSS with the consoles connected, before and after
the load, per console. Targets (issue 20): <= 50 ms p50 without a lookup, the CRM's
latency + <= 10 ms p50 with one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from bench_dispatch import EventSender, at_rate
from bench_ingest import Callbridge, free_port, running_callbridge

from callbridge.auth.sessions import SESSION_COOKIE
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import User, UserSession
from callbridge.sandbox import demo_account_fields

# One caller in ten is a Contact of the sandbox (a match); the rest match nothing.
MATCH_EVERY = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def make_agents(database_url: str, count: int) -> list[str]:
    """``count`` agents with a session each; their raw session tokens."""
    engine = create_engine(database_url)
    raws = []
    try:
        async with create_sessionmaker(engine)() as session:
            now = utcnow()
            users = [
                User(username=f"agent{n}", password_hash="!", role="agent", extension=str(1000 + n))
                for n in range(count)
            ]
            session.add_all(users)
            await session.flush()
            for user in users:
                raw = secrets.token_urlsafe(32)
                raws.append(raw)
                session.add(
                    UserSession(
                        token_hash=sha256_hex(raw),
                        user_id=user.id,
                        created_at=now,
                        expires_at=now + timedelta(hours=8),
                        last_seen_at=now,
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()
    return raws


@contextmanager
def running_sandbox(latency_ms: float) -> Iterator[str]:
    """The sandbox Salesforce in a process of its own, answering after ``latency_ms``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    code = f"from callbridge.sandbox import run_sandbox; run_sandbox('127.0.0.1', {port}, None)"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/_sandbox", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        knobs = {"latency_ms": latency_ms, "log_requests": False, "api_request_limit": 10**9}
        httpx.patch(f"{url}/_sandbox/knobs", json=knobs).raise_for_status()
        yield url
    finally:
        process.terminate()
        process.wait(10)


def direct_latency_ms(sandbox: str, samples: int = 50) -> float:
    """p50 of the sandbox's own answer time for a phone search, sent straight to it: the
    CRM's latency that the lookup figures are read against."""
    token = httpx.post(f"{sandbox}/_sandbox/tokens", json={}).json()["access_token"]
    query = "FIND {0300000001} IN PHONE FIELDS RETURNING Contact(Id, Name), Account(Id, Name)"
    times = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(samples):
            started = time.perf_counter()
            http.get(f"{sandbox}/services/data/v59.0/search", params={"q": query})
            times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 0.5)


def caller(n: int) -> str:
    return f"03{n:08d}"


def add_contacts(sandbox: str, count: int) -> None:
    """Every ``MATCH_EVERY``-th caller of the run as a Contact, through the REST API."""
    token = httpx.post(f"{sandbox}/_sandbox/tokens", json={}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(0, count, MATCH_EVERY):
        httpx.post(
            f"{sandbox}/services/data/v59.0/sobjects/Contact",
            json={"LastName": f"Bench {n}", "Phone": caller(n)},
            headers=headers,
        ).raise_for_status()


# How the lookups ended: "match", "new record", "lookup error".
kinds: dict[str, int] = {}
errors: list[str] = []


def outcome(data: dict[str, object]) -> str:
    if data.get("lookup_error"):
        errors.append(str(data["lookup_error"]))
        return "lookup error"
    return "match" if data.get("matches") else "new record"


def looked_up(data: dict[str, object]) -> bool:
    return bool(data.get("matches") or data.get("new_record_url") or data.get("lookup_error"))


async def hold_console(
    http: httpx.AsyncClient,
    raw: str,
    received: dict[str, float],
    answered: dict[str, float],
    ready: asyncio.Event,
) -> None:
    headers = {"Cookie": f"{SESSION_COOKIE}={raw}"}
    async with http.stream("GET", "/api/v1/agent/events", headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith(": connected"):
                ready.set()
            elif line.startswith("data: "):
                now = time.time()
                data = json.loads(line[6:])
                received.setdefault(data["call_id"], now)
                if looked_up(data):
                    answered.setdefault(data["call_id"], now)
                    kinds[outcome(data)] = kinds.get(outcome(data), 0) + 1


async def run(args: argparse.Namespace, server: Callbridge, sandbox: str | None) -> None:
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    pbx = {"Authorization": f"Bearer {server.token('pbx')}", "Content-Type": "application/json"}
    profile: dict[str, object] = {"name": "bench"}
    if sandbox is not None:
        account = httpx.post(
            f"{server.base_url}/api/v1/oauth-accounts",
            json=demo_account_fields(sandbox, "sandbox"),
            headers=admin,
        )
        account.raise_for_status()
        account_id = account.json()["id"]
        connected = httpx.post(
            f"{server.base_url}/api/v1/oauth-accounts/{account_id}/connect",
            headers=admin,
            timeout=30,
        )
        assert connected.json()["status"] == "connected", connected.text
        profile["lookup"] = {"kind": "salesforce", "oauth_account_id": account_id}
        add_contacts(sandbox, int(args.rate * args.seconds))
        args.direct_ms = direct_latency_ms(sandbox)
    httpx.post(
        f"{server.base_url}/api/v1/screen-pops", json=profile, headers=admin
    ).raise_for_status()
    raws = await make_agents(server.database_url, args.consoles)
    idle = server.memory()
    received: dict[str, float] = {}
    answered: dict[str, float] = {}
    limits = httpx.Limits(max_connections=args.consoles + 10)
    async with httpx.AsyncClient(
        base_url=server.base_url, limits=limits, timeout=httpx.Timeout(None)
    ) as http:
        readies = [asyncio.Event() for _ in raws]
        holders = [
            asyncio.create_task(hold_console(http, raw, received, answered, ready))
            for raw, ready in zip(raws, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        connected_memory = server.memory()
        sender = EventSender(server.base_url, pbx)
        sent: dict[str, float] = {}
        count = int(args.rate * args.seconds)

        async def ring(n: int) -> None:
            call_id = f"bench-{n}"
            sent[call_id] = await sender.send(
                event="incoming",
                call_id=call_id,
                tel=caller(n),
                extension=str(1000 + n % args.consoles),
            )

        await at_rate(args.rate, count, ring)
        deadline = time.time() + 30
        expected = answered if sandbox is not None else received
        while len(expected) < count and time.time() < deadline:
            await asyncio.sleep(0.1)
        _rss, rss_peak = server.rss_mb()
        after = server.memory()
        await sender.close()
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    latencies = [(received[c] - sent[c]) * 1000 for c in sent if c in received]
    lookup = (
        f"Salesforce lookup, sandbox at {args.crm_latency_ms:g} ms"
        if sandbox is not None
        else "no lookup"
    )
    print(
        "callbridge defaults: `callbridge serve` with no options, no CALLBRIDGE_ variable "
        "but the data directory and the database"
    )
    print(
        f"database: {args.database}; consoles: {args.consoles}; "
        f"{args.rate} events/s for {args.seconds} s; {lookup}"
    )
    print(f"pops received: {len(latencies)} / {count}; statuses: {sender.statuses}")
    print(
        f"event → pop: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms"
    )
    if sandbox is not None:
        found = [(answered[c] - sent[c]) * 1000 for c in sent if c in answered]
        added = [value - args.direct_ms for value in found]
        print(
            f"event → lookup's answer on the console: {len(found)} / {count}; "
            f"p50 {percentile(found, 0.5):.1f} ms, p99 {percentile(found, 0.99):.1f} ms; "
            f"over the CRM's latency (a search sent straight to the sandbox: p50 "
            f"{args.direct_ms:.1f} ms): p50 {percentile(added, 0.5):+.1f} ms, "
            f"p99 {percentile(added, 0.99):+.1f} ms"
        )
        print(f"lookups: {kinds}; {errors[:1]}")
    # PSS added up over every process of ``serve``: what the consoles cost the machine
    # whichever web process each one reached.
    per_console = (connected_memory.pss - idle.pss) * 1024 / max(1, args.consoles)
    print(
        f"memory added up over {idle.processes} process(es): idle {idle}, with the consoles "
        f"{connected_memory} ({per_console:.0f} KB PSS per console), after the pops {after}; "
        f"the largest process's peak RSS {rss_peak:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consoles", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url")
    parser.add_argument("--lookup", choices=("none", "salesforce"), default="none")
    parser.add_argument("--crm-latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    with running_callbridge(args.database, args.postgres_url) as server:
        if args.lookup == "salesforce":
            with running_sandbox(args.crm_latency_ms) as sandbox:
                asyncio.run(run(args, server, sandbox))
        else:
            asyncio.run(run(args, server, None))


if __name__ == "__main__":
    main()
