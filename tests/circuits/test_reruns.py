"""Re-runs of failed executions (issue 22 §3): one, a call's, a rule's in a time range;
each an execution of its own, sent to the sandbox Salesforce over sockets."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.call_actions.conftest import EXAMPLE_1, EXAMPLE_2, Live
from tests.circuits.conftest import signed_in_browser
from tests.circuits.test_outage_e2e import TEL, wait_for
from tests.helpers import csrf_from

pytestmark = pytest.mark.e2e


async def failed_case_post(live: Live, call_id: str) -> dict[str, Any]:
    """A call whose Case POST the sandbox answered 500 (not repeated: a POST)."""
    live.sandbox.knobs.fail_next(1, "server_error", path_contains="/sobjects/case")
    queued = await live.event(event="queue", call_id=call_id, tel=TEL)
    assert queued.status_code == 202, queued.text
    call = await live.call(call_id)
    post = call["executions"][1]
    assert post["response"]["status"] == 500 and post["error"]["kind"] == "http_status"
    return call


async def executions_of(live: Live, call_id: str, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        call = await live.call(call_id, settled=False)
        done = call["status"] != "pending" and len(call["executions"]) >= count
        return list(call["executions"]) if done else None

    return list(await wait_for(check, f"{count} executions of {call_id}"))


async def test_rerun_one_a_call_and_a_rule_range(connected: Live) -> None:
    live = connected
    await live.rule(EXAMPLE_1)
    rule = await live.rule(EXAMPLE_2)
    before = len(live.records("Case"))
    call = await failed_case_post(live, "rr-1")
    failed_id = call["executions"][1]["id"]

    answer = await live.api("POST", f"/api/v1/executions/{failed_id}/rerun")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"queued": 1, "execution_ids": [failed_id]}
    executions = await executions_of(live, "rr-1", 3)
    rerun = executions[2]
    assert rerun["rerun_of"] == failed_id
    assert rerun["error"] is None and rerun["response"]["status"] == 201
    assert rerun["rule_id"] == rule["id"] and rerun["event"] == "queue"
    # The call's stored variables were used: the Case names the contact found first.
    sent = live.sandbox.rest_requests()[-1]
    assert sent.method == "POST" and sent.json() == {
        "Origin": "Phone",
        "ContactId": call["variables"]["RESPONSE_CONTACT_ID"],
    }
    assert len(live.records("Case")) == before + 1
    # Already re-run: the call has nothing failed left to re-run.
    again = await live.api("POST", "/api/v1/calls/rr-1/rerun")
    assert again.status_code == 202 and again.json() == {"queued": 0, "execution_ids": []}

    second = await failed_case_post(live, "rr-2")
    whole = await live.api("POST", "/api/v1/calls/rr-2/rerun")
    assert whole.json() == {"queued": 1, "execution_ids": [second["executions"][1]["id"]]}
    await executions_of(live, "rr-2", 3)

    third = await failed_case_post(live, "rr-3")
    now = datetime.now(UTC)
    window = {
        "from": (now - timedelta(minutes=5)).isoformat(),
        "to": (now + timedelta(minutes=5)).isoformat(),
    }
    ranged = await live.api("POST", f"/api/v1/call-actions/{rule['id']}/rerun", params=window)
    assert ranged.status_code == 202, ranged.text
    assert ranged.json() == {"queued": 1, "execution_ids": [third["executions"][1]["id"]]}
    executions = await executions_of(live, "rr-3", 3)
    assert executions[2]["error"] is None
    assert len(live.records("Case")) == before + 3
    # Nothing in an earlier window.
    earlier = {"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}
    none = await live.api("POST", f"/api/v1/call-actions/{rule['id']}/rerun", params=earlier)
    assert none.json() == {"queued": 0, "execution_ids": []}


async def test_rerun_bad_input(connected: Live) -> None:
    live = connected
    rule = await live.rule(EXAMPLE_1)
    missing = await live.api("POST", "/api/v1/executions/999999/rerun")
    assert missing.status_code == 404
    assert missing.json()["detail"] == (
        "execution 999999 does not exist (executions are deleted with their call when "
        "retention removes it)"
    )
    gone = await live.api("POST", "/api/v1/calls/no-such-call/rerun")
    assert gone.status_code == 404
    assert gone.json()["detail"] == (
        "call no-such-call does not exist (it may have been deleted by retention)"
    )
    unknown = await live.api("POST", "/api/v1/call-actions/999999/rerun")
    assert unknown.status_code == 404
    backwards = await live.api(
        "POST",
        f"/api/v1/call-actions/{rule['id']}/rerun",
        params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    [error] = backwards.json()["detail"]
    assert error["loc"] == ["query", "to"]
    assert error["msg"] == "'to' must not be before 'from'"
    garbled = await live.api(
        "POST", f"/api/v1/call-actions/{rule['id']}/rerun", params={"from": "yesterday"}
    )
    assert garbled.status_code == 422
    assert garbled.json()["detail"][0]["loc"] == ["query", "from"]
    # Without an offset, times are in the configured time zone (Japan): 08:30 there is
    # 23:30 UTC the day before, so this window is backwards too.
    japan = await live.api(
        "POST",
        f"/api/v1/call-actions/{rule['id']}/rerun",
        params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-02T08:30"},
    )
    assert japan.status_code == 422
    assert japan.json()["detail"][0]["msg"] == "'to' must not be before 'from'"
    bare = await live.api(
        "POST", f"/api/v1/call-actions/{rule['id']}/rerun", params={"from": "2026-12-02"}
    )
    assert bare.status_code == 202 and bare.json() == {"queued": 0, "execution_ids": []}
    # A bare date is the whole day, to included; the calendar's first and last days are no
    # bound. A time in the first hours of year 1 in Japan is before UTC's calendar starts.
    today = await live.api(
        "POST",
        f"/api/v1/call-actions/{rule['id']}/rerun",
        params={"from": "2026-12-02", "to": "2026-12-02"},
    )
    assert today.status_code == 202
    calendar = await live.api(
        "POST",
        f"/api/v1/call-actions/{rule['id']}/rerun",
        params={"from": "0001-01-01", "to": "9999-12-31"},
    )
    assert calendar.status_code == 202
    first = await live.api(
        "POST", f"/api/v1/call-actions/{rule['id']}/rerun", params={"from": "0001-01-01T00:00"}
    )
    assert first.status_code == 422
    [error] = first.json()["detail"]
    assert error["loc"] == ["query", "from"]
    assert error["msg"] == "is out of range: give a time between the years 1 and 9999"


async def test_rerun_from_the_pages(connected: Live) -> None:
    live = connected
    await live.rule(EXAMPLE_1)
    rule = await live.rule(EXAMPLE_2)
    call = await failed_case_post(live, "rr-ui")
    failed_id = call["executions"][1]["id"]
    browser = await signed_in_browser(live)
    try:
        page = await browser.get("/calls/rr-ui")
        assert page.status_code == 200
        assert "Re-run failed requests" in page.text
        assert f'action="/calls/rr-ui/executions/{failed_id}/rerun"' in page.text
        answer = await browser.post(
            f"/calls/rr-ui/executions/{failed_id}/rerun",
            data={"csrf_token": csrf_from(page.text)},
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/calls/rr-ui?rerun=1"
        await executions_of(live, "rr-ui", 3)
        shown = await browser.get("/calls/rr-ui?rerun=1")
        assert "1 failed request(s) queued for a re-run" in shown.text
        assert f"re-run of #{failed_id}" in shown.text
        assert f"Re-run of execution #{failed_id}" in shown.text

        form = await browser.get(f"/call-actions/{rule['id']}/rerun")
        assert form.status_code == 200
        assert ">From (time)</label>" in form.text and ">To (time)</label>" in form.text
        # In Japanese the period's ends are times, not the history list's phone numbers.
        users = (await live.api("GET", "/api/v1/users")).json()["items"]
        [admin_id] = [user["id"] for user in users if user["username"] == "outage-admin"]
        await live.api("PATCH", f"/api/v1/users/{admin_id}", json={"language": "ja"})
        japanese = await browser.get(f"/call-actions/{rule['id']}/rerun")
        await live.api("PATCH", f"/api/v1/users/{admin_id}", json={"language": "en"})
        assert ">開始日時</label>" in japanese.text and ">終了日時</label>" in japanese.text
        assert "発信電話番号" not in japanese.text
        backwards = await browser.post(
            f"/call-actions/{rule['id']}/rerun",
            data={
                "csrf_token": csrf_from(form.text),
                "from": "2026-12-02T10:00",
                "to": "2026-12-01T10:00",
            },
        )
        assert backwards.status_code == 422
        assert "'To' must not be before 'From'." in html.unescape(backwards.text)
        garbled = await browser.post(
            f"/call-actions/{rule['id']}/rerun",
            data={"csrf_token": csrf_from(form.text), "from": "yesterday", "to": ""},
        )
        assert garbled.status_code == 422 and "Enter a date and time." in garbled.text
        done = await browser.post(
            f"/call-actions/{rule['id']}/rerun",
            data={"csrf_token": csrf_from(form.text), "from": "", "to": ""},
        )
        assert done.status_code == 200
        # rr-ui's failure was re-run already: nothing is left.
        assert "0 failed request(s) queued for a re-run" in done.text
    finally:
        await browser.aclose()
