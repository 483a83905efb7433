"""Seed 001 ステータス変更時の動作, each transition on its own (DESIGN §11.3)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.history.conftest import (
    Live,
    histories,
    make_call,
    make_link,
    settled,
    tasks_of,
    wait_rows,
)

pytestmark = pytest.mark.e2e


async def set_status(live: Live, link: dict[str, Any], status: str) -> None:
    response = await live.api(
        "PATCH", f"/api/v1/history-links/{link['id']}", json={"status": status}
    )
    assert response.status_code == 200, response.text


async def states(live: Live, link: dict[str, Any]) -> dict[str, str]:
    return {r["call_id"]: r["state"] for r in await histories(live, link["id"])}


async def test_enabled_to_disabled_stops_rows_and_tasks(connected: Live) -> None:
    live = connected
    link = await make_link(live)
    await make_call(live, "e-1", "09087654321")
    await wait_rows(live, link["id"], settled(1))
    await set_status(live, link, "disabled")
    await make_call(live, "e-2", "09087654321")
    assert await states(live, link) == {"e-1": "synced"}
    assert tasks_of(live, "e-2") == []


async def test_enabled_to_paused_keeps_rows_without_sending(connected: Live) -> None:
    live = connected
    link = await make_link(live)
    await set_status(live, link, "paused")
    await make_call(live, "p-1", "09087654321")
    # Another, enabled link syncs a later call: the worker has passed, and sent nothing
    # for the paused link.
    other = await make_link(live, name="other", phone_numbers=["0509999999"])
    await make_call(live, "p-2", "09087654321", called="0509999999")
    await wait_rows(live, other["id"], settled(1))
    assert await states(live, link) == {"p-1": "held"}
    assert tasks_of(live, "p-1") == []


async def test_disabled_to_enabled_only_calls_ending_from_then_on(connected: Live) -> None:
    live = connected
    link = await make_link(live, status="disabled")
    await make_call(live, "d-1", "09087654321")
    await set_status(live, link, "enabled")
    await make_call(live, "d-2", "09087654321")
    rows = await wait_rows(live, link["id"], settled(1))
    assert [r["call_id"] for r in rows] == ["d-2"]
    assert tasks_of(live, "d-1") == [] and len(tasks_of(live, "d-2")) == 1


async def test_disabled_to_paused_creates_rows_without_tasks(connected: Live) -> None:
    live = connected
    link = await make_link(live, status="disabled")
    await set_status(live, link, "paused")
    await make_call(live, "dp-1", "09087654321")
    other = await make_link(live, name="other", phone_numbers=["0509999999"])
    await make_call(live, "dp-2", "09087654321", called="0509999999")
    await wait_rows(live, other["id"], settled(1))
    assert await states(live, link) == {"dp-1": "held"}
    assert tasks_of(live, "dp-1") == []


async def test_paused_to_enabled_syncs_the_held_rows(connected: Live) -> None:
    live = connected
    link = await make_link(live, status="paused")
    await make_call(live, "pe-1", "09087654321")
    await make_call(live, "pe-2", "0312345678")
    assert set((await states(live, link)).values()) == {"held"}
    await set_status(live, link, "enabled")
    await wait_rows(live, link["id"], settled(2))
    assert len(tasks_of(live, "pe-1")) == 1 and len(tasks_of(live, "pe-2")) == 1


async def test_paused_to_disabled_to_enabled(connected: Live) -> None:
    live = connected
    link = await make_link(live, status="paused")
    await make_call(live, "pd-1", "09087654321")
    await set_status(live, link, "disabled")
    await make_call(live, "pd-2", "09087654321")
    assert await states(live, link) == {"pd-1": "held"}
    await set_status(live, link, "enabled")
    rows = await wait_rows(live, link["id"], settled(1))
    assert [r["call_id"] for r in rows] == ["pd-1"]
    assert len(tasks_of(live, "pd-1")) == 1 and tasks_of(live, "pd-2") == []
