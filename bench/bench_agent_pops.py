"""Screen pops to many agent consoles (prints figures; not a test).

Run: python bench/bench_agent_pops.py [--consoles 500] [--rate 50] [--seconds 60]
                                      [--database sqlite|postgresql --postgres-url URL]

callbridge runs as ``callbridge serve`` (defaults) in a process of its own, with one
screen-pop profile without a lookup. ``--consoles`` agents (extension 1000+n) each hold
``GET /api/v1/agent/events`` open (SSE, one load process); the agents and their sessions
are written straight into the database (signing 500 people in would only time the
password hashing). Ringing events (``incoming`` at one agent's extension, round robin)
are posted at ``--rate`` per second for ``--seconds``.

Figures: event posted → the pop read by the console (this machine's clock on both ends),
p50/p99; pops received / expected; callbridge's RSS with the consoles connected, before
and after the load, per console. Target (issue 20): <= 50 ms p50 without a lookup.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from bench_dispatch import EventSender, at_rate
from bench_ingest import Callbridge, running_callbridge

from callbridge.auth.sessions import SESSION_COOKIE
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import User, UserSession


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


async def hold_console(
    http: httpx.AsyncClient, raw: str, received: dict[str, float], ready: asyncio.Event
) -> None:
    headers = {"Cookie": f"{SESSION_COOKIE}={raw}"}
    async with http.stream("GET", "/api/v1/agent/events", headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith(": connected"):
                ready.set()
            elif line.startswith("data: "):
                received[json.loads(line[6:])["call_id"]] = time.time()


async def run(args: argparse.Namespace, server: Callbridge) -> None:
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    pbx = {"Authorization": f"Bearer {server.token('pbx')}", "Content-Type": "application/json"}
    httpx.post(
        f"{server.base_url}/api/v1/screen-pops", json={"name": "bench"}, headers=admin
    ).raise_for_status()
    raws = await make_agents(server.database_url, args.consoles)
    rss_before, _peak = server.rss_mb()
    received: dict[str, float] = {}
    limits = httpx.Limits(max_connections=args.consoles + 10)
    async with httpx.AsyncClient(
        base_url=server.base_url, limits=limits, timeout=httpx.Timeout(None)
    ) as http:
        readies = [asyncio.Event() for _ in raws]
        holders = [
            asyncio.create_task(hold_console(http, raw, received, ready))
            for raw, ready in zip(raws, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        rss_connected, _peak = server.rss_mb()
        sender = EventSender(server.base_url, pbx)
        sent: dict[str, float] = {}
        count = int(args.rate * args.seconds)

        async def ring(n: int) -> None:
            call_id = f"bench-{n}"
            sent[call_id] = await sender.send(
                event="incoming",
                call_id=call_id,
                tel=f"03{n:08d}",
                extension=str(1000 + n % args.consoles),
            )

        await at_rate(args.rate, count, ring)
        deadline = time.time() + 30
        while len(received) < count and time.time() < deadline:
            await asyncio.sleep(0.1)
        _rss, rss_peak = server.rss_mb()
        await sender.close()
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    latencies = [(received[c] - sent[c]) * 1000 for c in sent if c in received]
    print(
        f"database: {args.database}; consoles: {args.consoles}; "
        f"{args.rate} events/s for {args.seconds} s; no lookup"
    )
    print(f"pops received: {len(latencies)} / {count}; statuses: {sender.statuses}")
    print(
        f"event → pop: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms"
    )
    per_console = (rss_connected - rss_before) * 1024 / max(1, args.consoles)
    print(
        f"RSS: {rss_before:.0f} MB idle, {rss_connected:.0f} MB with the consoles "
        f"({per_console:.0f} KB per console), peak {rss_peak:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consoles", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with running_callbridge(args.database, args.postgres_url) as server:
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
