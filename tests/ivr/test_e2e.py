"""End to end over real sockets: the callbridge server and the sandbox Salesforce on
loopback ports, the OAuth account connected with the password grant, the PBX's
invocations sent as HTTP requests (issue 6 §4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from callbridge.sandbox import (
    demo_account_fields,
    running_sandbox,
)
from callbridge.sandbox.server import SandboxHandle
from tests.helpers import bearer, make_token
from tests.ivr.seeds import seed_000_ivr, seed_003_ivr
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e

TAIL = (
    "お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、"
    "しばらくお待ちください。"
)
SEARCH_Q = "FIND {{{tel}}} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


@pytest.fixture
async def http(live_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.base_url, timeout=10) as client:
        yield client


@pytest.fixture
async def tokens(app: FastAPI) -> dict[str, dict[str, str]]:
    return {
        "admin": bearer(await make_token(app, "admin")),
        "pbx": bearer(await make_token(app, "pbx", name="pbx")),
    }


async def connect_sandbox(
    http: httpx.AsyncClient, admin: dict[str, str], sandbox: SandboxHandle
) -> int:
    created = await http.post(
        "/api/v1/oauth-accounts",
        json=demo_account_fields(sandbox.login_url, "Sandbox Salesforce"),
        headers=admin,
    )
    assert created.status_code == 201, created.text
    account_id = int(created.json()["id"])
    connected = await http.post(f"/api/v1/oauth-accounts/{account_id}/connect", headers=admin)
    assert connected.status_code == 200, connected.text
    assert connected.json()["status"] == "connected"
    return account_id


async def save(http: httpx.AsyncClient, admin: dict[str, str], fields: dict[str, Any]) -> None:
    response = await http.post("/api/v1/ivrs", json=fields, headers=admin)
    assert response.status_code == 201, response.text


async def invoke(
    http: httpx.AsyncClient, pbx: dict[str, str], key: str, tel: str, **fields: Any
) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = await http.post(
        f"/api/v1/ivr/{key}/invoke",
        json={"call_id": f"call-{tel[:20]}", "tel": tel, **fields},
        headers=pbx,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer, elapsed


async def stored_call(
    http: httpx.AsyncClient, admin: dict[str, str], call_id: str
) -> dict[str, Any]:
    """The call once the server's log writer has stored it (it writes after answering)."""
    deadline = time.monotonic() + 10
    while True:  # a readiness wait, not a timing assumption
        response = await http.get(f"/api/v1/calls/{call_id}", headers=admin)
        if response.status_code == 200 and response.json()["executions"]:
            call: dict[str, Any] = response.json()
            return call
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.01)


async def test_seed_000_known_and_unknown_numbers(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], sandbox: SandboxHandle
) -> None:
    account = await connect_sandbox(http, tokens["admin"], sandbox)
    await save(http, tokens["admin"], seed_000_ivr(account))

    answer, _ = await invoke(http, tokens["pbx"], "seed000", "07075373713")
    assert answer == {
        "call_id": "call-07075373713",
        "outcome": "matched",
        "matched_priority": 2,
        "guidance": {"type": "tts", "text": "CDF 株式会社様、" + TAIL},
        "transfer": {"kind": "callcenter", "target": "support"},
        "variables": {"NAME": "CDF 株式会社", "CODE1": "CDF 株式会社"},
    }
    search = sandbox.state.last_request()
    assert search.path == "/services/data/v45.0/search"
    assert search.query_param("q") == SEARCH_Q.format(tel="07075373713")
    assert (search.header("authorization") or "").startswith("Bearer ")

    answer, _ = await invoke(http, tokens["pbx"], "seed000", "0120999999")
    assert answer["outcome"] == "matched" and answer["matched_priority"] == 1
    assert answer["guidance"] == {"type": "tts", "text": TAIL}
    assert answer["transfer"] == {"kind": "callcenter", "target": "support"}
    assert answer["variables"] == {}

    call = await stored_call(http, tokens["admin"], "call-07075373713")
    assert call["variables"]["RESPONSE_NAME"] == "CDF 株式会社"
    [execution] = [e for e in call["executions"] if e["source"] == "ivr"]
    assert execution["response"]["status"] == 200
    assert execution["request"]["headers"]["Authorization"] == "Bearer [redacted]"


async def test_sandbox_down_answers_request_error_within_the_timeout(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
) -> None:
    with running_sandbox() as sandbox:
        account = await connect_sandbox(http, tokens["admin"], sandbox)
    timeout = 0.5
    fields = seed_000_ivr(account, timeout_seconds=timeout)
    fields["on_error"] = {
        "guidance": {"type": "tts", "text": "ただいま混み合っております。"},
        "transfer": {"kind": "callcenter", "target": "support"},
    }
    await save(http, tokens["admin"], fields)
    answer, elapsed = await invoke(http, tokens["pbx"], "seed000", "07075373713")
    assert answer["outcome"] == "request_error"
    assert answer["guidance"] == {"type": "tts", "text": "ただいま混み合っております。"}
    assert answer["transfer"] == {"kind": "callcenter", "target": "support"}
    assert elapsed < timeout + 0.05, elapsed


async def test_sandbox_slower_than_the_timeout_answers_within_the_timeout(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], sandbox: SandboxHandle
) -> None:
    account = await connect_sandbox(http, tokens["admin"], sandbox)
    timeout = 0.5
    await save(http, tokens["admin"], seed_000_ivr(account, timeout_seconds=timeout))
    sandbox.knobs.latency_ms = 3000
    answer, elapsed = await invoke(http, tokens["pbx"], "seed000", "07075373713")
    assert answer["outcome"] == "request_error"
    assert answer["guidance"] is None and answer["transfer"] == {"kind": "end_rule"}
    assert timeout - 0.01 <= elapsed < timeout + 0.05, elapsed


async def test_seed_003_three_steps_route_an_open_high_priority_case_elsewhere(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], sandbox: SandboxHandle
) -> None:
    account = await connect_sandbox(http, tokens["admin"], sandbox)
    await save(http, tokens["admin"], seed_003_ivr(account))

    answer, _ = await invoke(http, tokens["pbx"], "ani", "07075373713")
    assert answer["matched_priority"] == 2  # an open case, but not High priority
    assert answer["guidance"] == {
        "type": "tts",
        "text": "CDF 株式会社様、お電話ありがとうございます。",
    }
    assert answer["transfer"] == {"kind": "callcenter", "target": "support"}
    assert answer["variables"]["PRIORITY"] == "Medium"
    paths = [r.query_param("q") for r in sandbox.rest_requests()[-3:]]
    assert paths[0] == "SELECT Id, Name FROM Account WHERE Phone = '07075373713' LIMIT 1"
    assert paths[1] == "SELECT Id, Name FROM Contact WHERE Phone = '07075373713' LIMIT 1"
    contact_id = answer["variables"]["CONTACT_ID"]
    assert paths[2] == (
        "SELECT Id, CaseNumber, Priority FROM Case WHERE ContactId = "
        f"'{contact_id}' AND IsClosed = false ORDER BY CreatedDate DESC LIMIT 1"
    )

    case_id = answer["variables"]["CASE_ID"]
    escalated = httpx.patch(
        sandbox.url(f"/services/data/v62.0/sobjects/Case/{case_id}"),
        json={"Priority": "High"},
        headers={"Authorization": f"Bearer {sandbox.token()}"},
    )
    assert escalated.status_code == 204
    answer, _ = await invoke(http, tokens["pbx"], "ani", "07075373713")
    assert answer["matched_priority"] == 1
    assert answer["transfer"] == {"kind": "callcenter", "target": "vip"}
    number = answer["variables"]["CASE_NUMBER"]
    assert answer["guidance"] == {
        "type": "tts",
        "text": f"CDF 株式会社様、ケース番号{number}について担当者におつなぎします。",
    }

    before = len(sandbox.rest_requests())
    answer, _ = await invoke(http, tokens["pbx"], "ani", "0120999999")
    assert answer["matched_priority"] == 3
    assert answer["transfer"] == {"kind": "callcenter", "target": "reception"}
    # No contact found: the case step's condition skipped it.
    assert len(sandbox.rest_requests()) - before == 2


HOSTILE_TELS = [
    "07075373713} IN ALL FIELDS RETURNING User(Id, Username) FIND {x",
    "0\\} OR {*",
    "' OR Name != '",
    "07075373713' OR Phone != '",
    "%' OR Phone LIKE '%",
    '"}\r\nX-Injected: 1',
]


def _term_end(q: str) -> int:
    """Where the SOSL search term opened by ``FIND {`` ends: the first brace that no
    backslash escapes (even inside a quoted phrase, the stricter reading)."""
    i = len("FIND {")
    while i < len(q):
        if q[i] == "\\":
            i += 2
            continue
        if q[i] == "}":
            return i
        i += 1
    return -1


@pytest.mark.parametrize("tel", HOSTILE_TELS)
async def test_hostile_numbers_cannot_alter_the_query(
    http: httpx.AsyncClient,
    tokens: dict[str, dict[str, str]],
    sandbox: SandboxHandle,
    tel: str,
) -> None:
    account = await connect_sandbox(http, tokens["admin"], sandbox)
    await save(http, tokens["admin"], seed_000_ivr(account))
    await save(http, tokens["admin"], seed_003_ivr(account))

    answer, _ = await invoke(http, tokens["pbx"], "seed000", tel)
    q = sandbox.state.last_request().query_param("q") or ""
    suffix = "} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"
    assert q.startswith("FIND {") and q.endswith(suffix)
    # The search term ends exactly where the template's own brace is.
    assert _term_end(q) == len(q) - len(suffix), q
    # The whole number stayed one search term: nothing found.
    assert answer["matched_priority"] == 1, answer

    answer, _ = await invoke(http, tokens["pbx"], "ani", tel)
    assert answer["matched_priority"] == 3, answer  # no account, no contact matched
    assert "CDF" not in str(answer)


async def test_hostile_digits_never_reach_the_crm(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], sandbox: SandboxHandle
) -> None:
    account = await connect_sandbox(http, tokens["admin"], sandbox)
    fields = seed_003_ivr(account, key="member")
    fields.update(
        max_digits=10,
        url="{OAUTH_INSTANCE_URL}/services/data/v62.0/query?q=SELECT Id, Name FROM Account "
        "WHERE AccountNumber = '{DIGITS}' LIMIT 1",
        steps=[],
    )
    fields["responses"] = [r for r in fields["responses"] if r["priority"] != 1]
    await save(http, tokens["admin"], fields)
    before = len(sandbox.rest_requests())
    answer, _ = await invoke(http, tokens["pbx"], "member", "07075373713", digits="1' OR '1'='1")
    assert answer["outcome"] == "input_invalid"
    assert len(sandbox.rest_requests()) == before
    answer, _ = await invoke(http, tokens["pbx"], "member", "07075373713", digits="12#*")
    assert answer["matched_priority"] == 3
    q = sandbox.state.last_request().query_param("q")
    assert q == "SELECT Id, Name FROM Account WHERE AccountNumber = '12#*' LIMIT 1"
