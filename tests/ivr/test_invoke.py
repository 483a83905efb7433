"""``POST /api/v1/ivr/{key}/invoke`` against a mocked CRM: the answer contract, input
checks, error behaviours, the deadline, and what is stored on the call afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from fastapi import FastAPI

from callbridge.ivr import writer as ivr_writer
from callbridge.ivr.runtime import get_ivr_runtime
from tests.ivr.conftest import CRM, add_account, create_ivr, flush_logs, simple_ivr

FOUND = '{"found":true,"name":"CDF 株式会社","id":"0012v00002uhRmWAAU"}'


async def invoke(
    client: httpx.AsyncClient, pbx: dict[str, str], key: str = "lookup", **fields: Any
) -> httpx.Response:
    body = {"call_id": "1700000000.42", "tel": "07075373713", **fields}
    return await client.post(f"/api/v1/ivr/{key}/invoke", json=body, headers=pbx)


async def test_matched_answer_has_the_contract_shape(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    route = crm.get(f"{CRM}/lookup").respond(
        200, text=FOUND, headers={"content-type": "application/json"}
    )
    await create_ivr(client, admin, simple_ivr())
    response = await invoke(client, pbx)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "call_id": "1700000000.42",
        "outcome": "matched",
        "matched_priority": 2,
        "guidance": {"type": "tts", "text": "CDF 株式会社様、お電話ありがとうございます。"},
        "transfer": {"kind": "callcenter", "target": "support"},
        "variables": {"CODE1": "CDF 株式会社", "NAME": "CDF 株式会社"},
    }
    assert route.calls.last.request.url.params["tel"] == "07075373713"


async def test_higher_priority_wins(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text='{"found":false}')
    await create_ivr(client, admin, simple_ivr())
    answer = (await invoke(client, pbx)).json()
    assert answer["outcome"] == "matched" and answer["matched_priority"] == 1
    assert answer["guidance"] == {"type": "tts", "text": "お電話ありがとうございます。"}
    assert answer["transfer"] == {"kind": "callcenter", "target": "general"}
    assert answer["variables"] == {}


async def test_a_form_body_works_like_json(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    route = crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    await create_ivr(
        client,
        admin,
        simple_ivr(url=CRM + "/lookup?tel={TEL}&lang={LANG}", pbx_variables=["LANG"]),
    )
    response = await client.post(
        "/api/v1/ivr/lookup/invoke",
        data={"call_id": "c-1", "tel": "0312345678", "variables[LANG]": "ja"},
        headers=pbx,
    )
    assert response.status_code == 200, response.text
    assert response.json()["call_id"] == "c-1"
    assert dict(route.calls.last.request.url.params) == {"tel": "0312345678", "lang": "ja"}


async def test_unknown_key_is_404_with_a_clear_body(
    client: httpx.AsyncClient, pbx: dict[str, str]
) -> None:
    response = await invoke(client, pbx, key="nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "IVR 'nope' does not exist"}


async def test_missing_call_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str]
) -> None:
    await create_ivr(client, admin, simple_ivr())
    response = await client.post("/api/v1/ivr/lookup/invoke", json={"tel": "1"}, headers=pbx)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "call_id"] and error["type"] == "missing"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"call_id": "c", "variables": {"TEL": "1"}}, ["body", "variables"]),
        ({"call_id": "c", "variables": {"RESPONSE_NAME": "x"}}, ["body", "variables"]),
        ({"call_id": "c", "variables": {"lower": "x"}}, ["body", "variables"]),
        ({"call_id": ""}, ["body", "call_id"]),
    ],
)
async def test_bad_fields_are_422(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    body: dict[str, Any],
    loc: list[str],
) -> None:
    await create_ivr(client, admin, simple_ivr())
    response = await client.post("/api/v1/ivr/lookup/invoke", json=body, headers=pbx)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


async def test_unsupported_body_and_auth(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str]
) -> None:
    await create_ivr(client, admin, simple_ivr())
    plain = await client.post("/api/v1/ivr/lookup/invoke", content="call_id=1", headers=pbx)
    assert plain.status_code == 415
    assert (
        await client.post("/api/v1/ivr/lookup/invoke", json={"call_id": "1"})
    ).status_code == 401
    forbidden = await client.post("/api/v1/ivr/lookup/invoke", json={"call_id": "1"}, headers=admin)
    assert forbidden.status_code == 403


INPUT_IVR = {
    "max_digits": 4,
    "digits_pattern": "/^[0-9]{4}$/",
    "url": CRM + "/members/{DIGITS}",
    "on_input_invalid": {
        "guidance": {"type": "tts", "text": "入力された番号が正しくありません。"},
        "transfer": {"kind": "ivr", "target": "member-retry"},
    },
}


@pytest.mark.parametrize("digits", ["12345", "12a4", "123", "1' OR '1'='1", "１２３４"])
async def test_invalid_digits_answer_input_invalid_without_a_request(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
    digits: str,
) -> None:
    route = crm.get(url__startswith=f"{CRM}/members/").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr(**INPUT_IVR))
    answer = (await invoke(client, pbx, digits=digits)).json()
    assert answer == {
        "call_id": "1700000000.42",
        "outcome": "input_invalid",
        "matched_priority": None,
        "guidance": {"type": "tts", "text": "入力された番号が正しくありません。"},
        "transfer": {"kind": "ivr", "target": "member-retry"},
        "variables": {},
    }
    assert not route.called
    await flush_logs(app)
    call = (await client.get("/api/v1/calls/1700000000.42", headers=admin)).json()
    [execution] = call["executions"]
    assert execution["source"] == "ivr" and execution["error"]["kind"] == "input_invalid"


async def test_valid_digits_go_into_the_request(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    route = crm.get(f"{CRM}/members/0042").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr(**INPUT_IVR))
    answer = (await invoke(client, pbx, digits="0042")).json()
    assert answer["outcome"] == "matched" and route.called


async def test_digits_to_an_ivr_without_input_are_invalid(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    await create_ivr(client, admin, simple_ivr())
    answer = (await invoke(client, pbx, digits="1")).json()
    assert answer["outcome"] == "input_invalid"
    assert answer["guidance"] is None and answer["transfer"] == {"kind": "end_rule"}


ON_ERROR = {
    "guidance": {"type": "audio", "file": "busy.wav"},
    "transfer": {"kind": "callcenter", "target": "fallback"},
}


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, json=[{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}]),
        httpx.Response(500, text="oops"),
        httpx.ConnectError("refused"),
        httpx.Response(
            401, json=[{"message": "Session expired", "errorCode": "INVALID_SESSION_ID"}]
        ),
        httpx.Response(
            403,
            json=[
                {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
            ],
        ),
    ],
    ids=["503", "500", "connect", "401", "limit"],
)
async def test_request_errors_answer_the_configured_behaviour(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
    failure: Any,
) -> None:
    route = crm.get(f"{CRM}/lookup")
    if isinstance(failure, Exception):
        route.side_effect = failure
    else:
        route.return_value = failure
    fields = simple_ivr(on_error=ON_ERROR)
    fields["responses"].append(
        {"priority": 9, "response_code": "*", "transfer": {"kind": "hangup"}}
    )
    await create_ivr(client, admin, fields)
    answer = (await invoke(client, pbx)).json()
    assert answer == {
        "call_id": "1700000000.42",
        "outcome": "request_error",
        "matched_priority": None,
        "guidance": {"type": "audio", "file": "busy.wav"},
        "transfer": {"kind": "callcenter", "target": "fallback"},
        "variables": {},
    }
    assert route.call_count == 1  # IVR requests are never retried


async def test_a_4xx_goes_through_the_response_settings(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/lookup").respond(404, json=[{"errorCode": "NOT_FOUND", "message": "x"}])
    fields = simple_ivr(
        on_no_match={"guidance": {"type": "tts", "text": "{TEL}"}, "transfer": {"kind": "hangup"}}
    )
    await create_ivr(client, admin, fields)
    answer = (await invoke(client, pbx)).json()
    assert answer["outcome"] == "no_match"
    assert answer["guidance"] == {"type": "tts", "text": "07075373713"}
    assert answer["transfer"] == {"kind": "hangup"}

    fields["responses"].append(
        {"priority": 3, "response_code": "4xx", "transfer": {"kind": "extension", "target": "200"}}
    )
    await client.patch(
        "/api/v1/ivrs/lookup", json={"responses": fields["responses"]}, headers=admin
    )
    answer = (await invoke(client, pbx)).json()
    assert answer["outcome"] == "matched" and answer["matched_priority"] == 3
    assert answer["transfer"] == {"kind": "extension", "target": "200"}


async def test_no_match_without_behaviour_follows_the_end_rule(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text="<html>maintenance</html>")
    await create_ivr(client, admin, simple_ivr())
    answer = (await invoke(client, pbx)).json()
    assert answer == {
        "call_id": "1700000000.42",
        "outcome": "no_match",
        "matched_priority": None,
        "guidance": None,
        "transfer": {"kind": "end_rule"},
        "variables": {},
    }


async def test_a_crm_slower_than_the_timeout_is_a_request_error_within_the_timeout(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    crm.get(f"{CRM}/lookup").mock(side_effect=hang)
    timeout = 0.3
    await create_ivr(client, admin, simple_ivr(timeout_seconds=timeout, on_error=ON_ERROR))
    started = time.perf_counter()
    answer = (await invoke(client, pbx)).json()
    elapsed = time.perf_counter() - started
    assert answer["outcome"] == "request_error"
    assert answer["transfer"] == {"kind": "callcenter", "target": "fallback"}
    assert timeout - 0.01 <= elapsed < timeout + 0.05, elapsed


async def test_steps_share_the_one_deadline(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    crm.get(f"{CRM}/second").mock(side_effect=hang)
    fields = simple_ivr(
        timeout_seconds=0.3, steps=[{"name": "second", "url": CRM + "/second?x={RESPONSE_ID}"}]
    )
    fields["extract_pattern"] = '/"id":"(?P<ID>[^"]+)"/'
    await create_ivr(client, admin, fields)
    # The first invocation also checks the token and compiles the IVR; time the second.
    assert (await invoke(client, pbx)).json()["outcome"] == "request_error"
    started = time.perf_counter()
    answer = (await invoke(client, pbx)).json()
    assert answer["outcome"] == "request_error"
    assert time.perf_counter() - started < 0.35


async def test_extracted_variables_are_stored_on_the_call_and_logged(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    fields = simple_ivr(extract_pattern='/"id":"(?P<ACCOUNT_ID>[^"]+)"/')
    await create_ivr(client, admin, fields)
    await invoke(client, pbx)
    await flush_logs(app)
    call = (await client.get("/api/v1/calls/1700000000.42", headers=admin)).json()
    assert call["tel"] == "07075373713"
    assert call["variables"]["RESPONSE_ACCOUNT_ID"] == "0012v00002uhRmWAAU"
    assert call["variables"]["RESPONSE_NAME"] == "CDF 株式会社"
    [execution] = call["executions"]
    assert execution["source"] == "ivr"
    assert execution["request"]["url"] == CRM + "/lookup?tel=07075373713"
    assert execution["response"]["status"] == 200 and "CDF" in execution["response"]["body"]
    assert execution["extracted"] == {
        "RESPONSE_ACCOUNT_ID": "0012v00002uhRmWAAU",
        "RESPONSE_NAME": "CDF 株式会社",
    }
    assert execution["error"] is None


async def test_the_answer_does_not_wait_for_the_log_write(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr())
    gate = asyncio.Event()
    written: list[str] = []
    writer = get_ivr_runtime(app.state.runtime).writer
    original = writer.bulk
    assert original is not None

    async def slow_store(items: Sequence[ivr_writer.PendingInvocation]) -> None:
        await gate.wait()
        await original(items)
        written.extend(item.call_id for item in items)

    monkeypatch.setattr(writer, "bulk", slow_store)
    answer = (await invoke(client, pbx)).json()
    assert answer["outcome"] == "matched" and written == []
    gate.set()
    await flush_logs(app)
    assert written == ["1700000000.42"]


async def test_an_earlier_rules_variable_is_read_from_the_call(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
) -> None:
    from callbridge.calls import store

    runtime = app.state.runtime
    call_pk = await store.ensure_call(runtime, "1700000000.42", tel="07075373713")
    await store.set_variables(runtime, call_pk, {"RESPONSE_CONTACT_ID": "003AAA"}, source="rule:1")
    route = crm.get(f"{CRM}/cases").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr(url=CRM + "/cases?contact={RESPONSE_CONTACT_ID}"))
    answer = (await invoke(client, pbx)).json()
    assert answer["outcome"] == "matched"
    assert route.calls.last.request.url.params["contact"] == "003AAA"


async def test_a_saved_change_is_used_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], pbx: dict[str, str], crm: respx.MockRouter
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr())
    assert (await invoke(client, pbx)).json()["transfer"]["target"] == "support"
    fields = simple_ivr()
    fields["responses"][1]["transfer"]["target"] = "sales"
    await client.patch(
        "/api/v1/ivrs/lookup", json={"responses": fields["responses"]}, headers=admin
    )
    assert (await invoke(client, pbx)).json()["transfer"]["target"] == "sales"


async def test_an_account_needing_reauthorisation_answers_at_once_without_sending(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
) -> None:
    route = crm.get(url__startswith=CRM).respond(200, text=FOUND)
    account = await add_account(
        app, status="needs_reauthorization", access_token=None, detail="invalid_grant"
    )
    fields = simple_ivr(
        auth_type="oauth",
        oauth_account_id=account,
        url="{OAUTH_INSTANCE_URL}/lookup?tel={TEL}",
        timeout_seconds=5,
        on_error=ON_ERROR,
    )
    await create_ivr(client, admin, fields)
    started = time.perf_counter()
    answer = (await invoke(client, pbx)).json()
    assert time.perf_counter() - started < 0.5
    assert answer["outcome"] == "request_error"
    assert answer["guidance"] == {"type": "audio", "file": "busy.wav"}
    assert not route.called
    await flush_logs(app)
    call = (await client.get("/api/v1/calls/1700000000.42", headers=admin)).json()
    [execution] = call["executions"]
    assert execution["error"]["kind"] == "auth"
    assert "needs to be reconnected" in execution["error"]["message"]


async def test_oauth_requests_carry_the_token_and_the_instance_url(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
) -> None:
    route = crm.get(f"{CRM}/services/data/v62.0/query").respond(200, text=FOUND)
    account = await add_account(app)
    fields = simple_ivr(
        auth_type="oauth",
        oauth_account_id=account,
        url="{OAUTH_INSTANCE_URL}/services/data/v62.0/query?q=SELECT Id FROM Account "
        "WHERE Phone = '{TEL}'",
    )
    await create_ivr(client, admin, fields)
    hostile = "x' OR Name LIKE '%"
    answer = (await invoke(client, pbx, tel=hostile)).json()
    assert answer["outcome"] == "matched"
    sent = route.calls.last.request
    assert sent.headers["authorization"] == "Bearer access-token-1"
    query = parse_qs(urlsplit(str(sent.url)).query)["q"][0]
    assert query == "SELECT Id FROM Account WHERE Phone = 'x\\' OR Name LIKE \\'%'"


async def test_concurrent_invocations_check_the_token_and_the_ivr_once(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twenty invocations arriving together with a token and an IVR this process has not
    seen yet: one token lookup and one IVR load, the others wait for them."""
    from callbridge.calls import pbx_auth
    from callbridge.ivr import repository

    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr())
    counts = {"token": 0, "revision": 0}
    token_for, revision_of = pbx_auth.token_for, repository.revision_of

    async def counting_token_for(*args: Any) -> Any:
        counts["token"] += 1
        return await token_for(*args)

    async def counting_revision_of(*args: Any) -> Any:
        counts["revision"] += 1
        return await revision_of(*args)

    monkeypatch.setattr(pbx_auth, "token_for", counting_token_for)
    monkeypatch.setattr(repository, "revision_of", counting_revision_of)
    answers = await asyncio.gather(
        *(invoke(client, pbx, call_id=f"1700000000.{n}") for n in range(20))
    )
    assert [answer.json()["outcome"] for answer in answers] == ["matched"] * 20
    assert counts == {"token": 1, "revision": 1}
