"""A Salesforce outage loses no work (issue 22 §4): callbridge and the sandbox Salesforce
over real sockets, the seed's three rules (a query, a Case POST, a Case PATCH at
disconnect), every Salesforce request answered 503 while calls arrive, then recovery."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from callbridge.db.migrate import upgrade_to_head_async
from callbridge.sandbox import SandboxHandle, demo_account_fields
from callbridge.settings import Settings
from tests.call_actions.conftest import EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, Live, make_tokens
from tests.circuits.conftest import PUBLIC_URL, serving, signed_in_browser
from tests.ivr.seeds import seed_000_ivr

pytestmark = pytest.mark.e2e

CALLS = 50
TEL = "07075373713"


async def wait_for(check: Any, what: str, seconds: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy (a readiness wait)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def open_circuits(live: Live) -> list[dict[str, Any]]:
    response = await live.api("GET", "/api/v1/circuits")
    assert response.status_code == 200, response.text
    return list(response.json())


async def all_parked(live: Live, count: int) -> list[dict[str, Any]] | None:
    circuits = await open_circuits(live)
    if circuits and circuits[0]["parked_calls"] == count:
        return circuits
    return None


def case_posts(live: Live) -> list[Any]:
    return [
        r
        for r in live.sandbox.rest_requests()
        if r.method == "POST" and r.path.endswith("/sobjects/case/") and r.status == 201
    ]


async def test_calls_during_an_outage_are_parked_and_resume_in_order(connected: Live) -> None:
    live = connected
    for example in (EXAMPLE_1, EXAMPLE_2, EXAMPLE_3):
        await live.rule(example)
    ivr = await live.api("POST", "/api/v1/ivrs", json=seed_000_ivr(live.account_id))
    assert ivr.status_code == 201, ivr.text
    before = len(live.records("Case"))
    live.sandbox.knobs.fail_fraction(1.0, "unavailable", target="all")

    for n in range(CALLS):
        call_id = f"outage-{n}"
        queued = await live.event(event="queue", call_id=call_id, event_id=f"{call_id}-q", tel=TEL)
        assert queued.status_code == 202, queued.text
        ended = await live.event(event="disconnect", call_id=call_id, event_id=f"{call_id}-d")
        assert ended.status_code == 202, ended.text

    [circuit] = await wait_for(lambda: all_parked(live, CALLS), "every call to be parked")
    assert circuit["key"] == f"account:{live.account_id}"
    assert circuit["name"] == "Sandbox"
    assert "HTTP 503: SERVER_UNAVAILABLE" in circuit["last_error"]

    async def between_probes() -> dict[str, Any] | None:
        # Once a second the prober has the oldest parked call (this one) try the CRM, and
        # it is parked again: read the call while its first event waits.
        call = await live.call("outage-0", settled=False)
        return call if call["events"][0]["status"] == "pending" else None

    parked = await wait_for(between_probes, "the first call's event between two probes")
    assert parked["status"] == "pending"
    assert parked["executions"] == []  # nothing failed, no attempt spent
    queue_event = parked["events"][0]
    assert queue_event["status"] == "pending" and queue_event["attempts"] == 0
    assert queue_event["parked_at"] is not None
    assert queue_event["parked_for"] == f"account:{live.account_id}"
    assert parked["events"][1]["status"] == "pending"  # the disconnect waits behind it

    # The dashboard and the call pages show the open circuit; the timeline shows parking.
    browser = await signed_in_browser(live)
    dashboard = await browser.get("/")
    assert "Sandbox is not processing requests since" in dashboard.text
    # (how many: those not being probed or re-parked at this moment)
    assert re.search(r"\b\d+ call\(s\) parked", dashboard.text)
    assert "HTTP 503: SERVER_UNAVAILABLE" in dashboard.text
    call_page = await browser.get("/calls/outage-0")
    assert "Sandbox is not processing requests since" in call_page.text
    assert "parked since" in call_page.text
    assert "nothing is lost and no attempt is spent" in call_page.text

    # The IVR answers request_error at once, without sending anything.
    started = time.perf_counter()
    answer = await live.http.post(
        "/api/v1/ivr/seed000/invoke",
        json={"call_id": "ivr-during", "tel": TEL},
        headers=live.pbx,
    )
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200 and answer.json()["outcome"] == "request_error"
    assert elapsed < 0.5

    async def ivr_logged() -> dict[str, Any] | None:
        response = await live.api("GET", "/api/v1/calls/ivr-during")
        if response.status_code == 200 and response.json()["executions"]:
            return dict(response.json())
        return None

    ivr_call = await wait_for(ivr_logged, "the IVR invocation's log")
    [execution] = ivr_call["executions"]
    assert execution["error"]["kind"] == "unavailable"
    assert execution["attempts"] == []

    # Recovery: the probe succeeds, the parked calls resume oldest first.
    live.sandbox.knobs.clear_failures()
    recovered = time.monotonic()

    async def ivr_matched() -> bool:
        response = await live.http.post(
            "/api/v1/ivr/seed000/invoke",
            json={"call_id": "ivr-after", "tel": TEL},
            headers=live.pbx,
        )
        return bool(response.json()["outcome"] == "matched")

    await wait_for(ivr_matched, "the IVR to match again", seconds=10)
    assert time.monotonic() - recovered < 2.0

    async def settled() -> bool:
        for n in range(CALLS):
            call = await live.call(f"outage-{n}", settled=False)
            if call["status"] == "pending":
                return False
        return True

    await wait_for(settled, "every parked call to finish", seconds=60)
    assert await open_circuits(live) == []
    call_page = await browser.get("/calls/outage-0")
    assert "is not processing requests" not in call_page.text
    assert "parked since" in call_page.text and "resumed at" in call_page.text
    await browser.aclose()
    # Every Case was created exactly once; every update landed on its own Case, after it.
    assert len(live.records("Case")) == before + CALLS
    posts = case_posts(live)
    assert len(posts) == CALLS
    for n in range(CALLS):
        call = await live.call(f"outage-{n}")
        assert call["status"] == "ok", call
        assert [(x["request"]["method"], x["response"]["status"]) for x in call["executions"]] == [
            ("GET", 200),
            ("POST", 201),
            ("PATCH", 204),
        ]
        case_id = call["variables"]["RESPONSE_CASE_ID"]
        [patch] = [
            r
            for r in live.sandbox.rest_requests()
            if r.method == "PATCH" and r.path.endswith(f"/sobjects/case/{case_id}")
        ]
        assert patch.json()["Description"] == f"{PUBLIC_URL}monitor_link/outage-{n}"
        queue_event, end_event = call["events"]
        assert queue_event["parked_at"] is not None
        assert queue_event["resumed_at"] is not None
        assert queue_event["parked_for"] is None
        assert queue_event["status"] == end_event["status"] == "done"


async def test_a_restart_while_parked_loses_nothing(
    live_settings: Settings, sandbox: SandboxHandle
) -> None:
    await upgrade_to_head_async(live_settings.resolved_database_url)
    admin, pbx = await make_tokens(live_settings)
    calls = 6
    async with serving(live_settings, sandbox, admin, pbx, None) as first:
        created = await first.api(
            "POST", "/api/v1/oauth-accounts", json=demo_account_fields(sandbox.login_url, "SF")
        )
        account_id = created.json()["id"]
        connect = await first.api("POST", f"/api/v1/oauth-accounts/{account_id}/connect")
        assert connect.json()["status"] == "connected", connect.text
        first.account_id = account_id
        for example in (EXAMPLE_1, EXAMPLE_2, EXAMPLE_3):
            await first.rule(example)
        sandbox.knobs.fail_fraction(1.0, "unavailable", target="all")
        for n in range(calls):
            await first.event(event="queue", call_id=f"restart-{n}", tel=TEL)
            await first.event(event="disconnect", call_id=f"restart-{n}")
        await wait_for(lambda: all_parked(first, calls), "every call to be parked")
    # The server stopped while every call was parked; the CRM comes back meanwhile.
    sandbox.knobs.clear_failures()
    async with serving(live_settings, sandbox, admin, pbx, account_id) as second:

        async def settled() -> bool:
            for n in range(calls):
                call = await second.call(f"restart-{n}", settled=False)
                if call["status"] == "pending":
                    return False
            return True

        await wait_for(settled, "the parked calls to finish after the restart", seconds=60)
        assert len(case_posts(second)) == calls
        for n in range(calls):
            call = await second.call(f"restart-{n}")
            assert call["status"] == "ok"
            assert [x["response"]["status"] for x in call["executions"]] == [200, 201, 204]
        assert await open_circuits(second) == []


async def test_invalid_grant_still_stops_at_once(connected: Live) -> None:
    live = connected
    for example in (EXAMPLE_1, EXAMPLE_2):
        await live.rule(example)
    live.sandbox.state.expire_access_tokens()
    live.sandbox.knobs.fail_next(1, "invalid_session", target="oauth")
    await live.event(event="queue", call_id="grant-1", tel=TEL)
    call = await live.call("grant-1")
    assert call["status"] == "error"
    lookup = call["executions"][0]
    assert lookup["error"]["kind"] == "auth"
    assert "needs to be reconnected" in lookup["error"]["message"]
    assert call["events"][0]["parked_at"] is None
    assert await open_circuits(live) == []


async def test_a_post_whose_outcome_is_unknown_fails_saying_it_may_have_been_received(
    connected: Live,
) -> None:
    live = connected
    await live.rule(EXAMPLE_1)
    await live.rule({**EXAMPLE_2, "timeout_seconds": 1})
    live.sandbox.knobs.update({"hang_seconds": 3})
    live.sandbox.knobs.fail_next(1, "hang", path_contains="/sobjects/case")
    await live.event(event="queue", call_id="unknown-1", tel=TEL)
    call = await live.call("unknown-1")
    post = call["executions"][1]
    assert post["error"]["kind"] == "timeout"
    assert post["error"]["message"].endswith(
        "the request may have been received by the CRM, so it was not repeated (a POST is "
        "repeated only when its rule allows it)"
    )
    assert len(post["attempts"]) == 1
    assert call["events"][0]["parked_at"] is None
    assert await open_circuits(live) == []
