"""A Salesforce outage, then recovery: parked calls and how they drain (issue 22 §4).

Run: ``python bench/bench_outage.py --postgres postgresql+asyncpg://postgres@127.0.0.1/cb_bench``
(its ``public`` schema is dropped and recreated; without ``--postgres`` SQLite is used).
The issue's figure is ``--outage-seconds 600 --rate 20`` (12,000 calls, about 25
minutes with the drain); the default is a shorter, labelled run (``--outage-seconds 120``,
2,400 calls) because the machine is shared.

Setup as ``bench_dispatch.py``: ``callbridge serve`` with its defaults against the sandbox
Salesforce in a process of its own (answering after ``--latency-ms``, 50), an OAuth account,
the three call actions of seed 000 §2 (queue: find the contact, POST a Case; disconnect:
PATCH the Case).

1. Outage: the sandbox answers every request (REST and OAuth) 503. ``--rate`` calls a second
   for ``--outage-seconds``: each sends ``queue`` and, two seconds later, ``disconnect``.
   Afterwards: how many calls are parked, how many requests reached the sandbox during the
   outage, the circuit's probe count (one per account per second is the design).
2. Recovery: the failures are cleared. The time until every event is processed (drain),
   the CRM requests a second during the drain (mean and the busiest second), peak RSS of
   each callbridge process; then every call must have its three requests, in order, and no
   failed execution.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dispatch import (
    EventSender,
    at_rate,
    backlog,
    configure,
    running_sandbox_process,
    sandbox_requests,
    seed_call,
)
from bench_ingest import Callbridge, running_callbridge


async def scalar(database_url: str, sql: str) -> Any:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


async def parked(database_url: str) -> int:
    return int(
        await scalar(
            database_url,
            "SELECT count(*) FROM call_event WHERE park_key IS NOT NULL "
            "AND status IN ('pending', 'processing')",
        )
        or 0
    )


async def outage_then_recovery(
    server: Callbridge, sandbox: str, headers: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    count = int(args.rate * args.outage_seconds)
    sender = EventSender(server.base_url, headers, connections=64)
    httpx.post(
        sandbox + "/_sandbox/failures", json={"kind": "unavailable", "rate": 1.0, "target": "all"}
    ).raise_for_status()
    before = max((r["seq"] for r in sandbox_requests(sandbox)), default=0)

    async def call(n: int) -> None:
        await seed_call(sender, f"o{n}")

    started = time.monotonic()
    await at_rate(args.rate, count, call)
    # Every call parked (its queue event waits, or is the probe just now; the disconnect
    # waits behind it).
    deadline = time.monotonic() + 120
    while await parked(server.database_url) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    outage = time.monotonic() - started
    during = sandbox_requests(sandbox, before)
    probes = int(await scalar(server.database_url, "SELECT max(probes) FROM crm_circuit") or 0)
    parked_calls = await parked(server.database_url)

    last = max((r["seq"] for r in during), default=before)
    httpx.delete(sandbox + "/_sandbox/failures").raise_for_status()
    recovered = time.monotonic()
    recovered_wall = time.time()
    while sum(await backlog(server.database_url)) and time.monotonic() - recovered < 3600:
        await asyncio.sleep(0.5)
    drain = time.monotonic() - recovered
    await sender.close()
    after = sandbox_requests(sandbox, last)
    per_second = Counter(int(r["received_at"] - recovered_wall) for r in after)
    failed = int(
        await scalar(server.database_url, "SELECT count(*) FROM execution WHERE error IS NOT NULL")
        or 0
    )
    posts = sum(
        1
        for r in after
        if r["method"] == "POST" and r["url"].endswith("/case/") and r["status"] == 201
    )
    return {
        "calls": count,
        "outage_seconds": outage,
        "parked": parked_calls,
        "requests_during_outage": len(during),
        "probes": probes,
        "drain_seconds": drain,
        "requests_after": len(after),
        "busiest_second": max(per_second.values(), default=0),
        "failed_executions": failed,
        "cases_created": posts,
        "statuses": sender.statuses,
        "peak_rss_by_process": server.peak_rss_by_process(),
    }


def report(label: str, result: dict[str, Any]) -> None:
    drain = result["drain_seconds"]
    print(
        f"{label}: {result['calls']} calls during {result['outage_seconds']:.0f} s of 503 — "
        f"{result['parked']} parked, {result['requests_during_outage']} requests reached the "
        f"CRM during the outage, {result['probes']} probes "
        f"({result['probes'] / result['outage_seconds']:.2f}/s); recovery: drained in "
        f"{drain:.1f} s, {result['requests_after']} CRM requests "
        f"({result['requests_after'] / drain:.0f}/s mean, busiest second "
        f"{result['busiest_second']}), {result['cases_created']} Cases created, "
        f"{result['failed_executions']} failed executions; ingest answers "
        f"{result['statuses']}; peak RSS "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in result["peak_rss_by_process"].items()),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="PostgreSQL URL (its public schema is reset)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--rate", type=float, default=20.0, help="calls a second")
    parser.add_argument("--outage-seconds", type=float, default=120.0)
    args = parser.parse_args()
    database = "postgresql" if args.postgres else "sqlite"
    with (
        running_sandbox_process(args.latency_ms) as sandbox,
        running_callbridge(database, args.postgres) as server,
    ):
        headers = configure(server, sandbox)
        result = asyncio.run(outage_then_recovery(server, sandbox, headers, args))
    report(f"{database}, {args.outage_seconds:.0f} s outage at {args.rate:g} calls/s", result)


if __name__ == "__main__":
    main()
