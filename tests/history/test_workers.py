"""Exactly one Task per (call, linked record) with several worker processes on
PostgreSQL, one of them killed with SIGKILL after Salesforce saved its Tasks and before
it could store the answer (DESIGN §11.4)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from callbridge.settings import Settings
from tests.calls.test_worker_processes import Workers
from tests.history.conftest import PUBLIC_URL, Live, make_call, make_link, settled, wait_rows

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

NUMBERS = ["09087654321", "0312345678", "011-222-3333", "0120-123-456", "07075373713"]


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    if settings.database_kind != "postgresql":
        pytest.skip("worker processes share the history rows through PostgreSQL")
    # This server takes no history rows: the worker processes below do.
    return settings.model_copy(update={"public_url": PUBLIC_URL, "history_worker": False})


@pytest.mark.parametrize("activity", ["task", "case_and_task"])
async def test_killed_and_concurrent_workers_create_each_task_once(
    connected: Live, live_settings: Settings, tmp_path: Path, activity: str
) -> None:
    live = connected
    link = await make_link(live, status="paused", on_multiple="all", activity=activity)
    # The first write is saved by the org and its answer never comes: the Tasks' (task)
    # or the Cases' (case_and_task: the worker dies before storing the Cases' ids).
    written = "Task" if activity == "task" else "Case"
    calls = [f"w-{index}" for index in range(40)]
    for index, call_id in enumerate(calls):
        await make_call(live, call_id, NUMBERS[index % len(NUMBERS)])
    live.sandbox.knobs.hang_seconds = 120
    live.sandbox.knobs.fail_next(1, "hang_after_commit", body_contains=f'"type":"{written}"')
    workers = Workers(
        live_settings,
        tmp_path,
        CALLBRIDGE_HISTORY_BATCH_ROWS="5",
        CALLBRIDGE_LEASE_SECONDS="6",
        CALLBRIDGE_HISTORY_GATHER_SECONDS="0",
        CALLBRIDGE_HISTORY_POLL_SECONDS="0.1",
        CALLBRIDGE_PUBLIC_URL=PUBLIC_URL,
    )
    try:
        first = workers.start()
        enabled = await live.api(
            "PATCH", f"/api/v1/history-links/{link['id']}", json={"status": "enabled"}
        )
        assert enabled.status_code == 200
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while live.sandbox.knobs.failures:  # readiness wait: the hanging request arrived
            assert loop.time() < deadline and first.poll() is None
            await asyncio.sleep(0.05)
        if activity == "task":
            saved = [
                t for t in live.records("Task") if (t.get("CallObject") or "").startswith("w-")
            ]
        else:
            saved = [c for c in live.records("Case") if c["Subject"].startswith("w-")]
        assert saved, f"the org saved the first batch's {written}s"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        workers.start()
        workers.start()
        rows = await wait_rows(live, link["id"], settled(40), timeout=120)
    finally:
        workers.stop()
    assert {r["state"] for r in rows} == {"synced"}
    tasks = [t for t in live.records("Task") if (t.get("CallObject") or "").startswith("w-")]
    pairs = Counter((t["CallObject"], t["WhoId"] or t["WhatId"]) for t in tasks)
    assert max(pairs.values()) == 1, pairs
    # 07075373713 matches two contacts (on_multiple "all"): two Tasks for those calls.
    expected = sum(2 if NUMBERS[i % len(NUMBERS)] == "07075373713" else 1 for i in range(40))
    assert len(tasks) == expected
    assert sorted({r["call_id"] for r in rows}) == sorted(calls)
    if activity == "case_and_task":
        # One Case per (call, Contact or Account) — none for a Lead — and each Task in it.
        made = [c for c in live.records("Case") if c["Subject"].startswith("w-")]
        per_pair = Counter((c["Subject"], c["ContactId"] or c["AccountId"]) for c in made)
        assert max(per_pair.values()) == 1, per_pair
        leads = sum(NUMBERS[i % len(NUMBERS)] == "0120-123-456" for i in range(40))
        assert len(made) == expected - leads
        case_ids = {c["Id"] for c in made}
        with_case = [t for t in tasks if t["WhatId"] in case_ids]
        assert len(with_case) == len(made)
    # The killed worker's rows were settled by asking which of their Tasks (or Cases) exist.
    asked = b"B_UniqueId__c%20IN" if activity == "task" else b"FROM%20Case%20WHERE"
    assert any(asked in r.body for r in live.sandbox.rest_requests())
