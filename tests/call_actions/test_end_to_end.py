"""The acceptance list of the call-action issue, over real sockets with the sandbox."""

from __future__ import annotations

import json

import pytest

from tests.call_actions.conftest import EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, PUBLIC_URL, Live

pytestmark = pytest.mark.e2e


async def test_the_manual_examples_pasted_verbatim(connected: Live) -> None:
    live = connected
    first = await live.rule(EXAMPLE_1)
    second = await live.rule(EXAMPLE_2)
    third = await live.rule(EXAMPLE_3)
    # Pasted line breaks are normalised and said so; every {RESPONSE_…} has a producer.
    assert any("whitespace" in w["message"] for w in second["warnings"])
    assert not [w for w in third["warnings"] if "not produced" in w["message"]]
    assert first["produces"] == ["RESPONSE_CONTACT_ID"]
    contact = next(c for c in live.records("Contact") if c.get("Phone") == "07075373713")

    accepted = await live.event(
        event="queue", call_id="1700000000.42", event_id="q-1", tel="07075373713"
    )
    assert accepted.status_code == 202
    call = await live.call("1700000000.42")
    assert call["variables"]["RESPONSE_CONTACT_ID"] == contact["Id"]
    case_id = call["variables"]["RESPONSE_CASE_ID"]
    case = next(c for c in live.records("Case") if c["Id"] == case_id)
    assert case["ContactId"] == contact["Id"] and case["Origin"] == "Phone"

    query, create = live.sandbox.rest_requests()[-2:]
    assert query.method == "GET" and query.path == "/services/data/v45.0/query"
    assert query.query_param("q") == ("SELECT Id,Name FROM Contact WHERE Phone ='07075373713'")
    assert create.method == "POST" and create.path == "/services/data/v45.0/sobjects/case/"
    assert create.json() == {"Origin": "Phone", "ContactId": contact["Id"]}

    assert (
        await live.event(event="disconnect", call_id="1700000000.42", event_id="d-1")
    ).status_code == 202
    call = await live.call("1700000000.42")
    patch = live.sandbox.rest_requests()[-1]
    assert patch.method == "PATCH"
    assert patch.path == f"/services/data/v45.0/sobjects/case/{case_id}"
    assert patch.json()["Description"] == f"{PUBLIC_URL}monitor_link/1700000000.42"
    assert patch.json()["ContactId"] == contact["Id"]
    assert [x["response"]["status"] for x in call["executions"]] == [200, 201, 204]
    assert all(x["error"] is None for x in call["executions"])
    # The access token never shows: only its scheme.
    sent = query.header("authorization")
    assert sent is not None and sent.startswith("Bearer ")
    shown = json.dumps(call)
    assert sent.split()[1] not in shown
    assert call["executions"][0]["request"]["headers"]["Authorization"] == "Bearer [redacted]"
    case = next(c for c in live.records("Case") if c["Id"] == case_id)
    assert case["Description"] == f"{PUBLIC_URL}monitor_link/1700000000.42"
    assert case["Subject"] == "コールセンターへの着信です "


async def test_duplicate_delivery_creates_one_case(connected: Live) -> None:
    live = connected
    await live.rule(EXAMPLE_1)
    await live.rule(EXAMPLE_2)
    before = len(live.records("Case"))
    for _ in range(3):
        answer = await live.event(
            event="queue", call_id="dup-1", event_id="dup-1-queue", tel="07075373713"
        )
        assert answer.status_code in (200, 202)
    call = await live.call("dup-1")
    assert len(call["events"]) == 1
    assert len(live.records("Case")) == before + 1
    assert len(call["executions"]) == 2


async def test_a_503_on_a_get_is_retried_and_succeeds(connected: Live) -> None:
    live = connected
    await live.rule(EXAMPLE_1)
    await live.rule(EXAMPLE_2)
    live.sandbox.knobs.fail_next(1, "unavailable", path_contains="/query")
    await live.event(event="queue", call_id="retry-1", tel="07075373713")
    call = await live.call("retry-1")
    lookup = call["executions"][0]
    assert lookup["error"] is None and lookup["response"]["status"] == 200
    assert [a["status"] for a in lookup["attempts"]] == [503, 200]
    assert lookup["attempt"] == 2
    assert "RESPONSE_CASE_ID" in call["variables"]


async def test_an_expired_token_is_refreshed_once_mid_call(connected: Live) -> None:
    live = connected
    for example in (EXAMPLE_1, EXAMPLE_2, EXAMPLE_3):
        await live.rule(example)
    await live.event(event="queue", call_id="refresh-1", tel="07075373713")
    await live.call("refresh-1")
    token_requests = len([r for r in live.sandbox.requests if r.path.endswith("/token")])
    live.sandbox.state.expire_access_tokens()
    await live.event(event="disconnect", call_id="refresh-1")
    call = await live.call("refresh-1")
    patch = call["executions"][-1]
    assert patch["error"] is None and patch["response"]["status"] == 204
    assert [a["status"] for a in patch["attempts"]] == [401, 204]
    assert patch["attempts"][1]["after_refresh"] is True
    assert len([r for r in live.sandbox.requests if r.path.endswith("/token")]) == (
        token_requests + 1
    )


HOSTILE_TEL = "0' OR Name LIKE '%' OR Phone = '\\"
HOSTILE_NAME = 'O"Brien\\"}, "Evil": true, "x": "{TEL}\r\nX-Injected: yes'


async def test_hostile_caller_values_cannot_alter_soql_json_or_headers(connected: Live) -> None:
    live = connected
    await live.rule({**EXAMPLE_1, "extract_pattern": ""})
    await live.rule(
        {
            "event": "queue",
            "order": 2,
            "auth_type": "oauth",
            "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobjects/Task/",
            "method": "POST",
            "headers": "Content-Type: application/json\nX-Caller: {TELNAME}",
            "body": '{"Subject":"{TELNAME}","Description":"{TEL}"}',
        }
    )
    await live.event(event="queue", call_id="hostile-1", tel=HOSTILE_TEL, tel_name=HOSTILE_NAME)
    call = await live.call("hostile-1")
    query, create = live.sandbox.rest_requests()[-2:]
    # The SOQL literal still holds the whole value: the query is valid and finds nothing.
    assert query.status == 200
    assert json.loads(call["executions"][0]["response"]["body"])["totalSize"] == 0
    assert query.query_param("q") == (
        "SELECT Id,Name FROM Contact WHERE Phone ='0\\' OR Name LIKE \\'%\\' OR Phone = \\'\\\\'"
    )
    # The JSON body keeps its two fields, with the values intact.
    assert create.json() == {"Subject": HOSTILE_NAME, "Description": HOSTILE_TEL}
    assert create.status == 201
    # No header was added; CR/LF became a space.
    names = [name.lower() for name, _value in create.headers]
    assert "x-injected" not in names
    assert create.header("x-caller") == HOSTILE_NAME.replace("\r\n", "  ")
