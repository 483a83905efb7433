"""The rule engine through ``POST /api/v1/call-events?wait=true``: conditions, variables
across events, failures recorded per step, stop-on-failure, binary responses, hostile
patterns, deleted OAuth accounts, and resuming an interrupted event."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from callbridge.models.call import CallEvent, Execution
from tests.call_actions.conftest import FakeCrm
from tests.helpers import bearer, make_token


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="admin"))


@pytest.fixture
async def pbx(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="pbx", name="pbx"))


async def rule(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> int:
    response = await client.post("/api/v1/call-actions", json=fields, headers=admin)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def deliver(client: httpx.AsyncClient, pbx: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/call-events?wait=true", json=fields, headers=pbx)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"
    return dict(response.json())


async def test_conditions_choose_which_rules_run(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: FakeCrm
) -> None:
    await rule(
        client,
        admin,
        event="incoming",
        url=crm.base_url + "/contact?mobile={TEL}",
        condition_code="{TEL}",
        condition_pattern="/^0[789]0/",
    )
    await rule(
        client,
        admin,
        event="incoming",
        url=crm.base_url + "/contact?vip={TEL}",
        condition_code="{VIP}",
    )
    landline = await deliver(client, pbx, event="incoming", call_id="a", tel="0312345678")
    assert landline["executions"] == []
    mobile = await deliver(
        client, pbx, event="incoming", call_id="b", tel="09012345678", variables={"VIP": "yes"}
    )
    assert [x["request"]["url"].split("?")[1] for x in mobile["executions"]] == [
        "mobile=09012345678",
        "vip=09012345678",
    ]
    call = (await client.get("/api/v1/calls/a", headers=admin)).json()
    assert [o["status"] for o in call["events"][0]["outcome"]] == ["skipped", "skipped"]


async def test_values_extracted_at_one_event_are_used_at_a_later_one(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: FakeCrm
) -> None:
    await rule(
        client,
        admin,
        event="queue",
        url=crm.base_url + "/contact",
        extract_pattern='/"Id":"(?P<CONTACT_ID>[^"]*)","Name":"(?P<NAME>(?:[^"\\\\]|\\\\.)*)"/',
    )
    await rule(
        client,
        admin,
        event="disconnect",
        url=crm.base_url + "/echo",
        method="PATCH",
        headers="Content-Type: application/json",
        body='{"who":"{RESPONSE_CONTACT_ID}","name":"{RESPONSE_NAME}"}',
    )
    first = await deliver(client, pbx, event="queue", call_id="v1")
    # JSON string escapes in the capture are decoded: the value is the real name.
    assert first["executions"][0]["extracted"] == {
        "RESPONSE_CONTACT_ID": "003A0000001",
        "RESPONSE_NAME": 'O"Brien \u3042',
    }
    await deliver(client, pbx, event="disconnect", call_id="v1")
    # ... and escaped again where it is used: the body stays valid JSON.
    assert crm.received[-1]["body"] == '{"who":"003A0000001","name":"O\\"Brien \u3042"}'


async def test_a_failing_step_is_recorded_and_later_steps_still_run(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: FakeCrm
) -> None:
    await rule(client, admin, event="answer", url=crm.base_url + "/status/404", order=1)
    await rule(client, admin, event="answer", url=crm.base_url + "/contact", order=2)
    answer = await deliver(client, pbx, event="answer", call_id="f1")
    first, second = answer["executions"]
    assert first["error"]["kind"] == "http_status" and first["response"]["status"] == 404
    assert second["error"] is None
    call = (await client.get("/api/v1/calls/f1", headers=admin)).json()
    assert call["status"] == "error" and call["error_count"] == 1
    assert call["events"][0]["error"] == "1 of 2 rule(s) failed"


async def test_stop_on_failure_skips_the_rest_of_the_event(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: FakeCrm
) -> None:
    await rule(
        client, admin, event="answer", url=crm.base_url + "/status/404", stop_on_failure=True
    )
    await rule(client, admin, event="answer", url=crm.base_url + "/contact")
    answer = await deliver(client, pbx, event="answer", call_id="s1")
    assert len(answer["executions"]) == 1
    call = (await client.get("/api/v1/calls/s1", headers=admin)).json()
    assert [o["status"] for o in call["events"][0]["outcome"]] == ["failed", "stopped"]


async def test_a_binary_response_is_recorded_as_such(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: FakeCrm
) -> None:
    await rule(
        client, admin, event="incoming", url=crm.base_url + "/binary", extract_pattern="/(?P<X>.+)/"
    )
    execution = (await deliver(client, pbx, event="incoming", call_id="bin"))["executions"][0]
    assert execution["response"]["body"] == "<1024 bytes of binary data>"
    assert execution["extracted"] == {} and execution["error"] is None
    assert execution["notes"] == ["The response is binary data: nothing was extracted."]


async def test_a_hostile_pattern_times_out_on_its_step_only(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: FakeCrm
) -> None:
    await rule(
        client,
        admin,
        event="incoming",
        url=crm.base_url + "/many-a",
        extract_pattern="/(?P<X>(a|aa)+b)/",
        order=1,
    )
    await rule(client, admin, event="incoming", url=crm.base_url + "/contact", order=2)
    answer = await deliver(client, pbx, event="incoming", call_id="redos")
    hostile, fine = answer["executions"]
    assert hostile["error"]["kind"] == "pattern"
    assert "did not finish within" in hostile["error"]["message"]
    assert hostile["response"]["status"] == 200
    assert fine["error"] is None


async def test_a_rule_whose_oauth_account_was_deleted_records_a_clear_error(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: FakeCrm,
) -> None:
    from callbridge.models.oauth_account import OAuthAccount

    async with app.state.runtime.sessionmaker() as session:
        account = OAuthAccount(
            name="SF",
            provider="salesforce",
            grant_type="password",
            client_id="x",
            login_url="https://login.salesforce.com",
        )
        session.add(account)
        await session.commit()
        account_id = account.id
    await rule(
        client,
        admin,
        event="queue",
        auth_type="oauth",
        oauth_account_id=account_id,
        url="{OAUTH_INSTANCE_URL}/services/data/v62.0/limits",
    )
    await rule(client, admin, event="queue", url=crm.base_url + "/contact")
    async with app.state.runtime.sessionmaker() as session:
        await session.delete(await session.get(OAuthAccount, account_id))
        await session.commit()
    answer = await deliver(client, pbx, event="queue", call_id="gone")
    broken, fine = answer["executions"]
    assert broken["error"] == {
        "kind": "config",
        "message": f"The rule's OAuth account ({account_id}) was deleted: choose another "
        "account for this rule.",
    }
    assert broken["response"] is None and fine["error"] is None
    listed = (await client.get("/api/v1/call-actions?event=queue", headers=admin)).json()
    assert "does not exist" in listed["items"][0]["warnings"][0]["message"]


async def test_an_interrupted_event_resumes_after_the_rules_already_recorded(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: FakeCrm,
) -> None:
    first = await rule(
        client,
        admin,
        event="queue",
        url=crm.base_url + "/contact",
        extract_pattern='/"Id":"(?P<CONTACT_ID>[^"]*)"/',
    )
    await rule(
        client,
        admin,
        event="queue",
        url=crm.base_url + "/echo",
        method="POST",
        headers="Content-Type: application/json",
        body='{"c":"{RESPONSE_CONTACT_ID}"}',
    )
    await deliver(client, pbx, event="queue", call_id="resume")
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        # As if the worker died after the first rule: its execution and variable are
        # stored, the second rule's are not, the event is still "processing".
        second = (await session.scalars(select(Execution).order_by(Execution.id))).all()[1]
        await session.delete(second)
        await session.execute(update(CallEvent).values(status="processing", attempts=1))
        await session.commit()
    crm.received.clear()
    from callbridge.calls.router import call_worker

    event_pk = (await client.get("/api/v1/calls/resume", headers=admin)).json()["events"][0]["id"]
    status = await call_worker(runtime).process_now(1, event_pk, 10)
    assert status == "done"
    assert [r["path"] for r in crm.received] == ["/echo"]  # the lookup was not repeated
    assert crm.received[0]["body"] == '{"c":"003A0000001"}'
    call = (await client.get("/api/v1/calls/resume", headers=admin)).json()
    outcome = call["events"][0]["outcome"]
    assert [(o["rule_id"], o["status"]) for o in outcome] == [
        (first, "resumed"),
        (first + 1, "ok"),
    ]
