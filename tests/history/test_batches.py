"""Batches of the history worker: with a backlog, the next batch is taken while this
one's Tasks are written, and its lookups ride in the same Composite request (DESIGN
§11.4: batches of up to 200 rows, one API call per batch)."""

from __future__ import annotations

import json

import pytest

from callbridge.settings import Settings
from tests.history.conftest import (
    PUBLIC_URL,
    Live,
    histories,
    make_call,
    make_link,
    settled,
    tasks_of,
    wait_rows,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "public_url": PUBLIC_URL,
            "history_gather_seconds": 0.0,
            "history_poll_seconds": 0.05,
            "history_batch_rows": 10,
        }
    )


async def test_a_backlog_costs_one_api_call_per_batch(connected: Live) -> None:
    live = connected
    link = await make_link(live, status="paused")
    numbers = ["09087654321", "0312345678", "011-222-3333", "0120-123-456"]
    for index in range(30):
        await make_call(live, f"k-{index}", numbers[index % len(numbers)])
    assert len(await histories(live, link["id"], limit=100)) == 30
    live.sandbox.state.api_calls.clear()
    requests_before = len(live.sandbox.rest_requests())
    enabled = await live.api(
        "PATCH", f"/api/v1/history-links/{link['id']}", json={"status": "enabled"}
    )
    assert enabled.status_code == 200, enabled.text
    rows = await wait_rows(live, link["id"], settled(30))
    assert {r["state"] for r in rows} == {"synced"}
    assert all(len(tasks_of(live, f"k-{index}")) == 1 for index in range(30))
    # Three batches of 10: a describe, the first batch's searches, then each batch's
    # Tasks with the next batch's searches in one Composite request (the last alone).
    assert live.sandbox.state.api_calls == {"composite": 5}
    sent = [
        json.loads(r.body)["compositeRequest"]
        for r in live.sandbox.rest_requests()[requests_before:]
        if r.path.endswith("/composite")
    ]
    kinds = [
        sorted(
            {
                "tasks"
                if "/composite/sobjects" in sub["url"]
                else "search"
                if "/search?" in sub["url"]
                else "describe"
                for sub in subs
            }
        )
        for subs in sent
    ]
    assert kinds == [
        ["describe"],
        ["search"],
        ["search", "tasks"],
        ["search", "tasks"],
        ["tasks"],
    ]
