"""Steady state of the call history link (prints figures; not a test).

Run: python bench/bench_history_steady.py [--calls-per-second 100] [--seconds 60]

The sandbox Salesforce (``callbridge sandbox``, ``--latency-ms`` 100 per request) and
callbridge (``callbridge serve``, SQLite, defaults) each run in a process of their own;
the three call actions of seed 000 §2 are configured as in bench_dispatch.py, plus one
history link (enabled) on the number the calls dial. Each call sends ``queue`` and, two
seconds later, ``disconnect`` (3 CRM requests from the rules, and one history row).

Figures: the history lag (the ``disconnect`` sent → the Task's ``CreatedDate`` in the
sandbox; both stamped with this machine's clock), p50/p99, split in two: the dispatcher's
part (``disconnect`` sent → its history row created, which happens when the dispatcher
processes the event, after the call's earlier events and beside the rules' requests) and
the history worker's part (row created → Task created); the history backlog (rows
not yet synced) every second while the load runs; callbridge's peak RSS; the Salesforce
API calls the history link used (Composite requests), beside the rules' own requests.
Targets (issue 19): backlog flat, RSS <= 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dispatch import EventSender, at_rate, configure, running_sandbox_process
from bench_ingest import running_callbridge

OWN_NUMBER = "0501234567"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def from_database(
    database_url: str, prefix: str
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """From callbridge's database: call_id → when its history row was created (the
    dispatcher processed the ``disconnect``), and per event type the dispatcher's lag
    (event received → processed, seconds)."""
    from sqlalchemy import select

    from callbridge.db.engine import create_engine
    from callbridge.models import Call, CallEvent, HistoryRow

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(HistoryRow.call_id, HistoryRow.created_at).where(
                    HistoryRow.call_id.like(f"{prefix}%")
                )
            )
            created = {str(call_id): at.timestamp() for call_id, at in rows}
            events = await connection.execute(
                select(CallEvent.event, CallEvent.received_at, CallEvent.processed_at)
                .join(Call, Call.id == CallEvent.call_pk)
                .where(Call.call_id.like(f"{prefix}%"), CallEvent.processed_at.is_not(None))
            )
            lags: dict[str, list[float]] = {}
            for event, received, processed in events:
                lags.setdefault(str(event), []).append((processed - received).total_seconds())
            return created, lags
    finally:
        await engine.dispose()


def sandbox_tasks(sandbox: str, prefix: str) -> dict[str, float]:
    """CallObject → CreatedDate (epoch seconds) of the Tasks of this run."""
    token = httpx.post(f"{sandbox}/_sandbox/tokens", json={}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = (
        f"{sandbox}/services/data/v62.0/query?q=SELECT CallObject, CreatedDate FROM Task "
        f"WHERE CallObject LIKE '{prefix}%'"
    )
    found: dict[str, float] = {}
    while url:
        body = httpx.get(url, headers=headers, timeout=60).json()
        for record in body["records"]:
            created = datetime.strptime(record["CreatedDate"], "%Y-%m-%dT%H:%M:%S.%f%z")
            found[record["CallObject"]] = created.timestamp()
        url = f"{sandbox}{body['nextRecordsUrl']}" if not body.get("done") else ""
    return found


async def run(args: argparse.Namespace) -> None:
    with (
        running_sandbox_process(args.latency_ms) as sandbox,
        running_callbridge(
            "sqlite", None, **({"history_worker": "false"} if args.no_worker else {})
        ) as server,
    ):
        headers = configure(server, sandbox)
        if args.no_worker:
            shipped = "diagnostic run, NOT the shipped defaults: CALLBRIDGE_HISTORY_WORKER=false"
        elif args.no_link:
            shipped = "diagnostic run: callbridge defaults, the history link not enabled"
        else:
            shipped = (
                "callbridge defaults: `callbridge serve`, no CALLBRIDGE_ variable but the "
                "data directory"
            )
        print(shipped, flush=True)
        admin = {"Authorization": f"Bearer {server.token('admin')}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=admin, timeout=60) as http:
            account_id = (await http.get("/api/v1/oauth-accounts")).json()["items"][0]["id"]
            token = httpx.post(f"{sandbox}/_sandbox/tokens", json={}).json()["access_token"]
            fallback = httpx.get(
                f"{sandbox}/services/data/v62.0/query?q=SELECT Id FROM Account LIMIT 1",
                headers={"Authorization": f"Bearer {token}"},
            ).json()["records"][0]["Id"]
            link = (
                await http.post(
                    "/api/v1/history-links",
                    json={
                        "name": "steady",
                        "oauth_account_id": account_id,
                        "fallback_record": fallback,
                        "api_consent": True,
                        "status": "disabled" if args.no_link else "enabled",
                        "phone_numbers": [OWN_NUMBER],
                    },
                )
            ).json()
            before = httpx.get(f"{sandbox}/_sandbox").json()["api_calls"]
            sender = EventSender(server.base_url, headers)
            prefix = f"hs{int(time.time()) % 100000}-"
            sent: dict[str, float] = {}
            backlog: list[int] = []
            rss: list[float] = []
            done = asyncio.Event()

            async def sample() -> None:
                while not done.is_set():
                    counts = (await http.get(f"/api/v1/history-links/{link['id']}")).json()[
                        "counts"
                    ]
                    backlog.append(counts.get("waiting", 0) + counts.get("searching", 0))
                    rss.append(server.rss_mb()[1])
                    await asyncio.sleep(1.0)

            async def call(n: int) -> None:
                call_id = f"{prefix}{n}"
                base = {"call_id": call_id, "tel": "07075373713", "called": OWN_NUMBER}
                await sender.send(event="queue", event_id=f"{call_id}-q", **base)
                await asyncio.sleep(2.0)
                sent[call_id] = await sender.send(
                    event="disconnect", event_id=f"{call_id}-d", **base
                )

            sampler = asyncio.create_task(sample())
            total = int(args.calls_per_second * args.seconds)
            await at_rate(args.calls_per_second, total, call)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                counts = (await http.get(f"/api/v1/history-links/{link['id']}")).json()["counts"]
                if args.no_link or args.no_worker:
                    _rows, lags_now = await from_database(server.database_url, prefix)
                    if sum(len(v) for v in lags_now.values()) >= 2 * total:
                        break
                elif sum(counts.get(s, 0) for s in ("synced", "failed", "no_match")) >= total:
                    break
                await asyncio.sleep(0.5)
            done.set()
            await sampler
            await sender.close()
            after = httpx.get(f"{sandbox}/_sandbox").json()["api_calls"]
            row_at, event_lags = await from_database(server.database_url, prefix)
        created = sandbox_tasks(sandbox, prefix)
        lags = [created[c] - sent[c] for c in sent if c in created]
        dispatcher = [row_at[c] - sent[c] for c in sent if c in row_at]
        worker = [created[c] - row_at[c] for c in sent if c in created and c in row_at]
        used = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
        print(
            f"{args.calls_per_second:g} calls/s for {args.seconds:g} s, sandbox at "
            f"{args.latency_ms:g} ms: {len(created)}/{total} Tasks; history lag p50 "
            f"{percentile(lags, 0.5):.2f} s, p99 {percentile(lags, 0.99):.2f} s (dispatcher: "
            f"disconnect sent → row created p50 {percentile(dispatcher, 0.5):.2f} s, p99 "
            f"{percentile(dispatcher, 0.99):.2f} s; history worker: row created → Task p50 "
            f"{percentile(worker, 0.5):.2f} s, p99 {percentile(worker, 0.99):.2f} s); dispatcher "
            "lag per event (received → processed, the rules' requests included): "
            + ", ".join(
                f"{event} p50 {percentile(v, 0.5):.2f} s p99 {percentile(v, 0.99):.2f} s"
                for event, v in sorted(event_lags.items())
            )
            + "; backlog per "
            f"second {backlog}; final counts {counts}; callbridge peak RSS "
            f"{max(rss) if rss else float('nan'):.0f} MB; API calls by kind {used} "
            f"(composite = the history link; query/sobject = the seed rules); mean backlog "
            f"{statistics.mean(backlog) if backlog else 0:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls-per-second", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument(
        "--no-link",
        action="store_true",
        help="the link disabled: the rules alone, to compare the dispatcher's lag",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="rows are created but no history worker runs (CALLBRIDGE_HISTORY_WORKER=false)",
    )
    asyncio.run(run(parser.parse_args()))
