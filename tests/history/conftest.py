"""History link fixtures: callbridge and the sandbox Salesforce on loopback sockets, an
OAuth account connected to the sandbox, and helpers to make calls and wait for rows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from callbridge.settings import Settings
from tests.call_actions.conftest import PUBLIC_URL, Live, connected, live, sandbox

__all__ = ["PUBLIC_URL", "Live", "connected", "live", "sandbox"]

FALLBACK_URL = "https://ap15.lightning.force.com/lightning/r/Account/{id}/view"


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "public_url": PUBLIC_URL,
            "history_gather_seconds": 0.0,
            "history_poll_seconds": 0.05,
            # Short leases: a request whose answer is lost times out after 5 s.
            "lease_seconds": 6,
        }
    )


def account_id_of(live: Live, name: str) -> str:
    return str(next(a["Id"] for a in live.records("Account") if a["Name"] == name))


async def make_link(live: Live, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "サポート窓口",
        "oauth_account_id": live.account_id,
        "fallback_record": FALLBACK_URL.format(id=account_id_of(live, "みなと物流株式会社")),
        "api_consent": True,
        "status": "enabled",
        "phone_numbers": ["0501234567", "201"],
        "search_retries": 0,
        "retry_minutes": 0.05,
    }
    body.update(fields)
    response = await live.api("POST", "/api/v1/history-links", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def make_call(
    live: Live,
    call_id: str,
    tel: str,
    *,
    called: str = "0501234567",
    agent: str = "A100",
    extension: str = "201",
    direction: str = "inbound",
    answered: bool = True,
) -> None:
    base = {"call_id": call_id, "tel": tel, "called": called, "direction": direction}
    first = "incoming" if direction == "inbound" else "outgoing"
    events = [
        {**base, "event": first, "occurred_at": "2026-12-04T01:00:00+00:00"},
    ]
    if direction == "outbound":
        events[0].update(agent_id=agent, extension=extension)
    if answered:
        events.append(
            {
                **base,
                "event": "answer",
                "agent_id": agent,
                "extension": extension,
                "occurred_at": "2026-12-04T01:00:05+00:00",
            }
        )
    events.append(
        {
            **base,
            "event": "disconnect",
            "unique_id": f"u-{call_id}",
            "occurred_at": "2026-12-04T01:02:05+00:00",
        }
    )
    for event in events:
        answer = await live.http.post("/api/v1/call-events?wait=true", json=event, headers=live.pbx)
        assert answer.status_code in (200, 202), answer.text


async def histories(live: Live, link_id: int, **params: Any) -> list[dict[str, Any]]:
    response = await live.api("GET", f"/api/v1/history-links/{link_id}/histories", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def wait_rows(
    live: Live,
    link_id: int,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """The link's rows once ``done`` holds for them (a readiness wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = await histories(live, link_id, limit=500)
        if done(rows):
            return rows
        assert loop.time() < deadline, f"rows never settled: {rows}"
        await asyncio.sleep(0.02)


def settled(count: int, states: tuple[str, ...] = ("synced", "failed", "no_match")) -> Any:
    return lambda rows: len(rows) == count and all(r["state"] in states for r in rows)


def tasks_of(live: Live, call_id: str) -> list[dict[str, Any]]:
    return [t for t in live.records("Task") if t.get("CallObject") == call_id]
