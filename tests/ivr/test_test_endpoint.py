"""``POST /api/v1/ivrs/{key}/test``: each step's request and response, why each response
setting matched or not, the final guidance and transfer, and nothing stored."""

from __future__ import annotations

import httpx
import respx
from fastapi import FastAPI

from tests.ivr.conftest import CRM, create_ivr, flush_logs, simple_ivr

ACCOUNT = '{"records":[{"Id":"001A","Name":"CDF 株式会社"}]}'
CONTACT = '{"records":[{"Id":"003B"}]}'
CASE = '{"records":[{"Id":"500C","CaseNumber":"00001001","Priority":"High"}]}'
EMPTY = '{"records":[]}'


def three_steps() -> dict:
    return simple_ivr(
        key="ani",
        url=CRM + "/account?tel={TEL}",
        extract_pattern="ACCOUNT_ID = $.records[0].Id\nACCOUNT_NAME = $.records[0].Name",
        steps=[
            {
                "name": "contact",
                "url": CRM + "/contact?tel={TEL}",
                "extract_pattern": "CONTACT_ID = $.records[0].Id",
            },
            {
                "name": "open_case",
                "url": CRM + "/case?contact={RESPONSE_CONTACT_ID}",
                "condition_code": "{RESPONSE_CONTACT_ID}",
                "extract_pattern": "PRIORITY = $.records[0].Priority",
            },
        ],
        responses=[
            {
                "priority": 1,
                "response_code": "*",
                "step": "main",
                "condition_code": "{RESPONSE_PRIORITY}",
                "condition_pattern": "/^High$/",
                "guidance": {
                    "type": "tts",
                    "text": "{RESPONSE_ACCOUNT_NAME}様、担当におつなぎします。",
                },
                "transfer": {"kind": "callcenter", "target": "vip"},
            },
            {
                "priority": 2,
                "response_code": "200",
                "step": "main",
                "transfer": {"kind": "callcenter", "target": "support"},
            },
        ],
    )


async def test_every_decision_is_explained(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/account").respond(200, text=ACCOUNT)
    crm.get(f"{CRM}/contact").respond(200, text=CONTACT)
    crm.get(f"{CRM}/case").respond(200, text=CASE)
    await create_ivr(client, admin, three_steps())
    response = await client.post(
        "/api/v1/ivrs/ani/test", json={"tel": "07075373713"}, headers=admin
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "matched" and result["matched_priority"] == 1
    assert result["guidance"] == {"type": "tts", "text": "CDF 株式会社様、担当におつなぎします。"}
    assert result["transfer"] == {"kind": "callcenter", "target": "vip"}
    assert [s["name"] for s in result["steps"]] == ["main", "contact", "open_case"]
    assert result["steps"][2]["request"]["url"] == CRM + "/case?contact=003B"
    assert result["steps"][2]["response"]["body"] == CASE
    assert result["steps"][2]["extracted"] == {"RESPONSE_PRIORITY": "High"}
    assert result["responses"] == [
        {
            "priority": 1,
            "matched": True,
            "reason": "response code 200 of 'main' is '*'; condition: '{RESPONSE_PRIORITY}' "
            "expanded to 'High', which matches /^High$/",
        },
        {"priority": 2, "matched": None, "reason": "an earlier setting matched"},
    ]
    assert result["extracted"] == {
        "RESPONSE_ACCOUNT_ID": "001A",
        "RESPONSE_ACCOUNT_NAME": "CDF 株式会社",
        "RESPONSE_CONTACT_ID": "003B",
        "RESPONSE_PRIORITY": "High",
    }
    assert result["request"]["url"] == CRM + "/account?tel=07075373713"
    await flush_logs(app)
    calls = (await client.get("/api/v1/calls", headers=admin)).json()
    assert calls["total"] == 0  # a test stores nothing


async def test_a_skipped_step_and_a_condition_that_fails(
    client: httpx.AsyncClient, admin: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/account").respond(200, text=ACCOUNT)
    crm.get(f"{CRM}/contact").respond(200, text=EMPTY)
    case = crm.get(f"{CRM}/case").respond(200, text=CASE)
    await create_ivr(client, admin, three_steps())
    result = (
        await client.post("/api/v1/ivrs/ani/test", json={"tel": "0312345678"}, headers=admin)
    ).json()
    assert not case.called
    assert result["steps"][2]["skipped"] == "'{RESPONSE_CONTACT_ID}' expanded to '', which is empty"
    assert result["responses"][0] == {
        "priority": 1,
        "matched": False,
        "reason": "condition: '{RESPONSE_PRIORITY}' expanded to '', which does not match /^High$/",
    }
    assert result["matched_priority"] == 2
    assert result["transfer"] == {"kind": "callcenter", "target": "support"}


async def test_a_request_error_is_explained(
    client: httpx.AsyncClient, admin: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/account").respond(200, text=ACCOUNT)
    crm.get(f"{CRM}/contact").respond(
        503, json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "x"}]
    )
    await create_ivr(client, admin, three_steps())
    result = (await client.post("/api/v1/ivrs/ani/test", json={"tel": "1"}, headers=admin)).json()
    assert result["outcome"] == "request_error"
    assert result["error"]["kind"] == "http_status" and "503" in result["error"]["message"]
    assert result["steps"][1]["response"]["status"] == 503
    assert result["steps"][2]["skipped"] == "not run: the invocation ended before it"
    assert {r["reason"] for r in result["responses"]} == {"the answer is request_error"}


async def test_send_false_only_expands_the_first_request(
    client: httpx.AsyncClient, admin: dict[str, str], crm: respx.MockRouter
) -> None:
    route = crm.get(url__startswith=CRM).respond(200, text=ACCOUNT)
    await create_ivr(client, admin, three_steps())
    result = (
        await client.post(
            "/api/v1/ivrs/ani/test",
            json={"tel": "03 1234'5678", "send": False},
            headers=admin,
        )
    ).json()
    assert not route.called
    assert result["request"]["url"] == CRM + "/account?tel=03%201234%275678"
    assert result["steps"][0]["response"] is None


async def test_unknown_ivr_and_input_check(
    client: httpx.AsyncClient, admin: dict[str, str], crm: respx.MockRouter
) -> None:
    missing = await client.post("/api/v1/ivrs/nope/test", json={}, headers=admin)
    assert missing.status_code == 404
    await create_ivr(client, admin, simple_ivr(max_digits=4, digits_pattern="/^\\d{4}$/"))
    result = (
        await client.post("/api/v1/ivrs/lookup/test", json={"digits": "12"}, headers=admin)
    ).json()
    assert result["outcome"] == "input_invalid"
    assert result["error"] == {
        "kind": "input_invalid",
        "message": "the digits do not match the input check pattern /^\\d{4}$/",
    }
