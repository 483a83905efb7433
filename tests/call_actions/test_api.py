"""/api/v1/call-actions: fields, write-only secrets, save-time validation with positions,
warnings, reordering, and the test endpoint."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.call_actions.conftest import EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, FakeCrm
from tests.helpers import bearer, make_token


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="admin"))


@pytest.fixture
async def account_id(app: FastAPI) -> int:
    """A stored OAuth account (not connected: saving rules does not need a token)."""
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
        return int(account.id)


async def create(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> httpx.Response:
    return await client.post("/api/v1/call-actions", json=fields, headers=admin)


def oauth(example: dict[str, Any], account_id: int) -> dict[str, Any]:
    return {**example, "oauth_account_id": account_id}


async def test_every_field_round_trips_and_secrets_are_write_only(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    fields = {
        "event": "answer",
        "order": 3,
        "enabled": False,
        "condition_code": "{TEL}",
        "condition_pattern": "/^090/",
        "auth_type": "bearer",
        "bearer_token": "s3cr3t-token",
        "url": "https://crm.example.com/api/calls?tel={TEL}",
        "method": "post",
        "headers": "Content-Type: application/json\nX-Agent: {AID}",
        "body": '{"tel":"{TEL}","agent":"{AID}"}',
        "timeout_seconds": 7,
        "extract_pattern": '/"id":"(?P<CALL_LOG_ID>[^"]*)"/',
        "json_extractions": "STATUS = $.status",
        "retry_non_idempotent": True,
        "stop_on_failure": True,
        "memo": "通話ログ",
    }
    response = await create(client, admin, **fields)
    assert response.status_code == 201, response.text
    rule = response.json()
    assert rule["method"] == "POST" and rule["bearer_token_set"] is True
    assert "bearer_token" not in rule and "s3cr3t" not in response.text
    assert rule["produces"] == ["RESPONSE_CALL_LOG_ID", "RESPONSE_STATUS"]
    for name, value in fields.items():
        if name not in ("bearer_token", "method"):
            assert rule[name] == value, name
    again = await client.get(f"/api/v1/call-actions/{rule['id']}", headers=admin)
    assert {k: v for k, v in again.json().items() if k != "warnings"} == {
        k: v for k, v in rule.items() if k != "warnings"
    }


async def test_validation_lists_every_error_with_its_position(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await create(
        client,
        admin,
        event="queue",
        url="crm.example.com/{TELL}",
        body='{"a": MD5({TEL}}',
        headers="Content-Type: application/json\nbroken line",
        extract_pattern="/(?P<ok>[/",
        condition_pattern="/(unclosed/",
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    by_field: dict[str, list[dict[str, Any]]] = {}
    for item in detail:
        by_field.setdefault(item["loc"][-1], []).append(item)
    assert set(by_field) >= {"url", "body", "headers", "extract_pattern", "condition_pattern"}
    unknown = next(i for i in by_field["url"] if "TELL" in i["msg"])
    assert unknown["position"] == len("crm.example.com/") and "Did you mean {TEL}" in unknown["msg"]
    assert any(i["position"] == 0 and "http" in i["msg"] for i in by_field["url"])
    assert by_field["headers"][0]["position"] == len("Content-Type: application/json\n")
    assert all("position" in i for i in by_field["extract_pattern"])
    assert (await client.get("/api/v1/call-actions", headers=admin)).json()["total"] == 0


async def test_other_names_are_the_pbx_variables_and_typos_are_errors(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    pbx_variable = await create(client, admin, event="queue", url="https://x.example/?r={RANK}")
    assert pbx_variable.status_code == 201
    note = pbx_variable.json()["warnings"][0]
    assert note["field"] == "url" and "variables[RANK]" in note["message"]
    typo = await create(client, admin, event="queue", url="https://x.example/?t={TELNAM}")
    assert typo.status_code == 422 and "Did you mean {TELNAME}" in typo.text
    refused = await create(client, admin, event="queue", url="https://x.example/?p={APW}")
    assert refused.status_code == 422 and "never holds passwords" in refused.text


async def test_oauth_rules_need_an_existing_account(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    missing = await create(client, admin, **EXAMPLE_1)
    assert missing.status_code == 422
    assert [i["loc"][-1] for i in missing.json()["detail"]] == ["oauth_account_id"]
    unknown = await create(client, admin, **{**EXAMPLE_1, "oauth_account_id": 999})
    assert unknown.status_code == 422
    assert "does not exist" in unknown.json()["detail"][0]["msg"]
    no_auth = await create(client, admin, **{**EXAMPLE_1, "auth_type": "none"})
    assert no_auth.status_code == 422
    assert "{OAUTH_INSTANCE_URL}" in no_auth.json()["detail"][0]["msg"]


async def test_a_response_variable_nobody_produces_is_a_warning_until_someone_does(
    client: httpx.AsyncClient, admin: dict[str, str], account_id: int
) -> None:
    third = (await create(client, admin, **oauth(EXAMPLE_3, account_id))).json()
    messages = [w["message"] for w in third["warnings"]]
    assert any(
        m.startswith("{RESPONSE_CASE_ID} is not produced by any earlier rule") for m in messages
    )
    assert any(m.startswith("{RESPONSE_CONTACT_ID} is not produced") for m in messages)
    position = next(w["position"] for w in third["warnings"] if "RESPONSE_CASE_ID" in w["message"])
    assert EXAMPLE_3["url"][position:].startswith("{RESPONSE_CASE_ID}")
    await create(client, admin, **oauth(EXAMPLE_1, account_id))
    await create(client, admin, **oauth(EXAMPLE_2, account_id))
    now = (await client.get(f"/api/v1/call-actions/{third['id']}", headers=admin)).json()
    assert not [w for w in now["warnings"] if "not produced" in w["message"]]


async def test_a_later_rule_of_the_same_event_does_not_count_as_a_producer(
    client: httpx.AsyncClient, admin: dict[str, str], account_id: int
) -> None:
    await create(client, admin, **oauth({**EXAMPLE_1, "order": 5}, account_id))
    early = await create(client, admin, **oauth({**EXAMPLE_2, "order": 1}, account_id))
    assert any(
        "{RESPONSE_CONTACT_ID} is not produced" in w["message"] for w in early.json()["warnings"]
    )


async def test_manual_artefacts_are_normalised_and_reported(
    client: httpx.AsyncClient, admin: dict[str, str], account_id: int
) -> None:
    rule = (
        await create(
            client,
            admin,
            **oauth(
                {**EXAMPLE_2, "condition_code": "なし", "condition_pattern": "なし"}, account_id
            ),
        )
    ).json()
    assert rule["condition_code"] == "" and rule["condition_pattern"] == ""
    fields = {w["field"] for w in rule["warnings"]}
    assert {"condition_code", "condition_pattern", "url", "extract_pattern"} <= fields
    url_note = next(w for w in rule["warnings"] if w["field"] == "url")
    assert url_note["position"] == EXAMPLE_2["url"].index("sobject s") + len("sobject")
    greedy = next(w for w in rule["warnings"] if w["field"] == "extract_pattern")
    assert "greedy" in greedy["message"] and "$.records" in greedy["message"]
    yen = (
        await create(
            client,
            admin,
            event="incoming",
            url="https://x.example/",
            extract_pattern='/"searchRecords":¥[¥]/',
        )
    ).json()
    assert any("¥" in w["message"] for w in yen["warnings"] if w["field"] == "extract_pattern")


async def test_update_is_partial_and_secrets_are_kept_or_cleared(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    rule = (
        await create(
            client,
            admin,
            event="queue",
            url="https://x.example/",
            auth_type="basic",
            basic_username="u",
            basic_password="pw",
        )
    ).json()
    path = f"/api/v1/call-actions/{rule['id']}"
    patched = await client.patch(path, json={"memo": "changed"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["basic_password_set"] is True
    assert patched.json()["memo"] == "changed" and patched.json()["url"] == "https://x.example/"
    cleared = await client.patch(path, json={"basic_password": ""}, headers=admin)
    assert cleared.status_code == 422  # basic auth without a password
    none = await client.patch(path, json={"auth_type": "none", "basic_password": ""}, headers=admin)
    assert none.status_code == 200 and none.json()["basic_password_set"] is False
    bad = await client.patch(path, json={"url": "https://x.example/MD5({TEL}"}, headers=admin)
    assert bad.status_code == 422
    assert (await client.get(path, headers=admin)).json()["url"] == "https://x.example/"


async def test_rules_are_listed_per_event_in_order_and_reordered(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ids = []
    for memo in ("a", "b", "c"):
        ids.append(
            (
                await create(client, admin, event="queue", url="https://x.example/", memo=memo)
            ).json()["id"]
        )
    await create(client, admin, event="disconnect", url="https://x.example/")
    listed = (await client.get("/api/v1/call-actions?event=queue", headers=admin)).json()
    assert [r["memo"] for r in listed["items"]] == ["a", "b", "c"]
    assert [r["order"] for r in listed["items"]] == [1, 2, 3]
    answer = await client.post(
        "/api/v1/call-actions/reorder",
        headers=admin,
        json={"event": "queue", "ids": [ids[2], ids[0], ids[1]]},
    )
    assert answer.status_code == 200
    assert [r["memo"] for r in answer.json()] == ["c", "a", "b"]
    listed = (await client.get("/api/v1/call-actions?event=queue", headers=admin)).json()
    assert [r["memo"] for r in listed["items"]] == ["c", "a", "b"]
    partial = await client.post(
        "/api/v1/call-actions/reorder", headers=admin, json={"event": "queue", "ids": ids[:2]}
    )
    assert partial.status_code == 422


async def test_delete_and_missing_rules(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    rule = (await create(client, admin, event="queue", url="https://x.example/")).json()
    assert (
        await client.delete(f"/api/v1/call-actions/{rule['id']}", headers=admin)
    ).status_code == 204
    assert (
        await client.get(f"/api/v1/call-actions/{rule['id']}", headers=admin)
    ).status_code == 404
    assert (await client.get("/api/v1/call-actions")).status_code == 401


async def test_the_test_endpoint_expands_and_sends_without_touching_calls(
    client: httpx.AsyncClient, admin: dict[str, str], crm: FakeCrm
) -> None:
    rule = (
        await create(
            client,
            admin,
            event="queue",
            auth_type="bearer",
            bearer_token="tok-123456",
            url=crm.base_url + "/echo?tel={TEL}",
            method="POST",
            headers="Content-Type: application/json",
            body='{"Subject":"{TELNAME}","ContactId":"{RESPONSE_CONTACT_ID}"}',
            extract_pattern='/"id":"(?P<CASE_ID>[^"]*)"/',
        )
    ).json()
    variables = {
        "TEL": "07075373713",
        "TELNAME": 'O"Brien',
        "ID": "t1",
        "RESPONSE_CONTACT_ID": "003X",
    }
    dry = await client.post(
        f"/api/v1/call-actions/{rule['id']}/test", headers=admin, json={"variables": variables}
    )
    assert dry.status_code == 200, dry.text
    result = dry.json()
    assert result["response"] is None and crm.received == []
    assert result["request"]["url"] == crm.base_url + "/echo?tel=07075373713"
    assert json.loads(result["request"]["body"]) == {"Subject": 'O"Brien', "ContactId": "003X"}
    assert result["request"]["headers"]["Authorization"] == "Bearer [redacted]"
    sent = await client.post(
        f"/api/v1/call-actions/{rule['id']}/test",
        headers=admin,
        json={"variables": variables, "send": True},
    )
    result = sent.json()
    assert result["response"]["status"] == 201 and result["error"] is None
    assert result["extracted"] == {"RESPONSE_CASE_ID": "500B0000002"}
    assert len(crm.received) == 1
    assert ("authorization", "Bearer tok-123456") in crm.received[0]["headers"]
    assert "tok-123456" not in sent.text
    calls = await client.get("/api/v1/calls", headers=admin)
    assert calls.json()["total"] == 0


async def test_the_test_endpoint_shows_the_greedy_hint(
    client: httpx.AsyncClient, admin: dict[str, str], crm: FakeCrm
) -> None:
    rule = (
        await create(
            client,
            admin,
            event="queue",
            url=crm.base_url + "/contact",
            extract_pattern='/"Id":"(?P<CONTACT_ID>.*)"/',
        )
    ).json()
    result = (
        await client.post(
            f"/api/v1/call-actions/{rule['id']}/test", headers=admin, json={"send": True}
        )
    ).json()
    assert result["extracted"]["RESPONSE_CONTACT_ID"].startswith('003A0000001","Name')
    hints = [w["message"] for w in result["warnings"]]
    assert any("greedy" in h for h in hints)
    assert any("spans JSON structure" in h for h in hints)
