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


async def test_killed_and_concurrent_workers_create_each_task_once(
    connected: Live, live_settings: Settings, tmp_path: Path
) -> None:
    live = connected
    link = await make_link(live, status="paused", on_multiple="all")
    calls = [f"w-{index}" for index in range(40)]
    for index, call_id in enumerate(calls):
        await make_call(live, call_id, NUMBERS[index % len(NUMBERS)])
    live.sandbox.knobs.hang_seconds = 120
    # The first Tasks request is saved by the org, and its answer never comes.
    live.sandbox.knobs.fail_next(1, "hang_after_commit", body_contains='"type":"Task"')
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
        saved = [t for t in live.records("Task") if (t.get("CallObject") or "").startswith("w-")]
        assert saved, "the org saved the first batch's Tasks"
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
    # The killed worker's rows were settled by asking which of their Tasks exist.
    assert any(b"B_UniqueId__c%20IN" in r.body for r in live.sandbox.rest_requests())
