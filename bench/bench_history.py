"""Benchmark of the call history link's backlog (prints figures; not a test).

Run: python bench/bench_history.py [--calls 10000] [--latency-ms 100]
                                   [--database-url postgresql+asyncpg://…]

A real callbridge (``callbridge serve``) runs in a process of its own on a loopback port;
the sandbox Salesforce runs in this process (a thread) with ``--latency-ms`` added to
every request. The org holds ``--customers`` contacts with distinct phone numbers.

Backlog: ``--calls`` calls ended while the link was paused (their calls and held history
rows are written straight into the database, as the disconnects would have: the paused
link's rows are what this measures, not the ingest). The link is then enabled through
the API, and the clock runs until every row is settled. Figures: the time, the rows per
second, the Salesforce API calls used (the sandbox's counter per kind, Composite and
Collections requests counting one each, as Salesforce bills them), the Tasks created,
the server's peak RSS. Targets (issue 19): <= 60 API calls and <= 60 s for 10,000 calls
at 100 ms per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from callbridge.db.engine import create_engine
from callbridge.db.migrate import upgrade_to_head_async
from callbridge.models import Call, HistoryRow
from callbridge.sandbox import demo_account_fields, running_sandbox
from callbridge.sandbox.records import create_record

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recordings import RssSampler, free_port

OWN_NUMBER = "0501234567"
SECRET = "bench-secret-key-0123456789abcdef0123456789"


async def fill_backlog(url: str, link_id: int, numbers: list[str], calls: int, run: str) -> None:
    """Calls that ended while the link was paused, with their held history rows."""
    engine = create_engine(url)
    start = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            for offset in range(0, calls, 1000):
                chunk = range(offset, min(calls, offset + 1000))
                await connection.execute(
                    insert(Call),
                    [
                        {
                            "call_id": f"{run}-{i}",
                            "unique_id": f"u-{run}-{i}",
                            "tel": numbers[i % len(numbers)],
                            "called": OWN_NUMBER,
                            "direction": "inbound",
                            "started_at": start + timedelta(seconds=i),
                            "ended_at": start + timedelta(seconds=i + 90),
                            "last_event": "disconnect",
                            "event_count": 3,
                            "error_count": 0,
                            "created_at": start,
                            "updated_at": start,
                        }
                        for i in chunk
                    ],
                )
                ids = dict(
                    (
                        await connection.execute(
                            select(Call.call_id, Call.id).where(
                                Call.call_id.in_([f"{run}-{i}" for i in chunk])
                            )
                        )
                    ).all()
                )
                await connection.execute(
                    insert(HistoryRow),
                    [
                        {
                            "link_id": link_id,
                            "call_pk": ids[f"{run}-{i}"],
                            "call_id": f"{run}-{i}",
                            "unique_id": f"u-{run}-{i}",
                            "tel": numbers[i % len(numbers)],
                            "direction": "inbound",
                            "phone_from": numbers[i % len(numbers)],
                            "phone_to": OWN_NUMBER,
                            "started_at": start + timedelta(seconds=i),
                            "ended_at": start + timedelta(seconds=i + 90),
                            "duration_seconds": 85,
                            "agent_id_to": f"A{i % 50:03d}",
                            "naisen_to": f"{200 + i % 50}",
                            "values": {"TEL": numbers[i % len(numbers)], "ID": f"{run}-{i}"},
                            "notes_dirty": False,
                            "state": "held",
                            "retry_count": 0,
                            "due_at": start,
                            "attempts": 0,
                            "task_ids": [],
                            "created_at": start,
                        }
                        for i in chunk
                    ],
                )
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="cb-history-bench-"))
    # Names of this run: a reused database may hold an earlier run's.
    run = f"bench{int(time.time())}"
    url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'callbridge.db'}"
    await upgrade_to_head_async(url)
    with running_sandbox() as sandbox:
        state = sandbox.state
        contact = state.schema.get("Contact")
        assert contact is not None
        rng = random.Random(1)
        customers = [f"03{rng.randrange(10**8):08d}" for _ in range(args.customers)]
        for index, number in enumerate(customers):
            create_record(
                state, contact, {"LastName": f"顧客{index}", "Phone": number}, user_id="005"
            )
        # Every tenth call comes from a number no record has: the fallback record.
        numbers = [n if i % 10 else f"06{i:08d}" for i, n in enumerate(customers)]
        env = {
            **os.environ,
            "CALLBRIDGE_DATABASE_URL": url,
            "CALLBRIDGE_DATA_DIR": str(data_dir),
            "CALLBRIDGE_SECRET_KEY": SECRET,
            "CALLBRIDGE_PUBLIC_URL": "https://callbridge.example.jp/",
        }
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "callbridge",
                "tokens",
                "create",
                "--name",
                "bench",
                "--scope",
                "admin",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "callbridge", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
            ) as http:
                for _ in range(600):
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.1)
                account = (
                    await http.post(
                        "/api/v1/oauth-accounts",
                        json=demo_account_fields(sandbox.login_url, f"Sandbox {run}"),
                    )
                ).json()
                connected = await http.post(f"/api/v1/oauth-accounts/{account['id']}/connect")
                assert connected.json()["status"] == "connected", connected.text
                fallback = next(iter(state.records["Account"].values()))["Id"]
                link = (
                    await http.post(
                        "/api/v1/history-links",
                        json={
                            "name": f"bench {run}",
                            "oauth_account_id": account["id"],
                            "fallback_record": fallback,
                            "api_consent": True,
                            "status": "paused",
                            "phone_numbers": [OWN_NUMBER],
                            "search_retries": 0,
                        },
                    )
                ).json()
                await fill_backlog(url, link["id"], numbers, args.calls, run)
                sandbox.knobs.latency_ms = args.latency_ms
                state.api_calls.clear()
                before = state.api_usage
                tasks_before = len(state.records.get("Task", {}))
                sampler = RssSampler(server.pid)
                sampler.__enter__()
                started = time.perf_counter()
                enabled = await http.patch(
                    f"/api/v1/history-links/{link['id']}", json={"status": "enabled"}
                )
                assert enabled.status_code == 200, enabled.text
                settled = 0
                while time.perf_counter() - started < args.timeout:
                    counts = (await http.get(f"/api/v1/history-links/{link['id']}")).json()[
                        "counts"
                    ]
                    settled = sum(counts.get(s, 0) for s in ("synced", "no_match", "failed"))
                    if settled >= args.calls:
                        break
                    await asyncio.sleep(0.2)
                elapsed = time.perf_counter() - started
                sampler.__exit__()
                counts = (await http.get(f"/api/v1/history-links/{link['id']}")).json()["counts"]
        finally:
            server.terminate()
            server.wait(timeout=60)
        tasks = len(state.records.get("Task", {})) - tasks_before
        print(
            json.dumps(
                {
                    "database": url.split(":")[0],
                    "calls": args.calls,
                    "customers": args.customers,
                    "latency_ms": args.latency_ms,
                    "seconds_until_settled": round(elapsed, 2),
                    "rows_per_second": round(settled / elapsed, 1) if elapsed else None,
                    "rows": counts,
                    "tasks_created": tasks,
                    "api_calls": state.api_usage - before,
                    "api_calls_by_kind": dict(state.api_calls),
                    "server_peak_rss_mb": round(sampler.peak, 1),
                },
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    asyncio.run(main(parser.parse_args()))
