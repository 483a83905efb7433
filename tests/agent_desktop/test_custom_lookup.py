"""Custom lookups (DESIGN §12.2, seed 002 カスタム連携) end to end: callbridge and a CRM on
loopback sockets; the PBX's events pop on the agent's console, the server accesses reach
the CRM through the outbound path and appear on the call's timeline."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callbridge.auth.csrf import CSRF_COOKIE, CSRF_HEADER
from callbridge.settings import Settings
from tests.agent_desktop.conftest import Live, console, make_agent, ring
from tests.agent_desktop.crm import SESSION, Crm, custom_lookup


async def make_custom_profile(live: Live, lookup: dict[str, Any], **fields: Any) -> dict[str, Any]:
    response = await live.api(
        "POST", "/api/v1/screen-pops", json={"name": "CRM", "lookup": lookup, **fields}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_the_card_has_the_search_values_and_opens_the_incoming_access(
    live: Live, live_settings: Settings, crm: Crm
) -> None:
    lookup = custom_lookup(
        crm,
        incoming={
            "method": "browser_get",
            "url": f"{crm.base_url}/customer/{{EXT_ID}}?from={{TEL}}&at={{DATE-YYYY}}",
        },
        click={
            "method": "browser_post",
            "url": f"{crm.base_url}/memo",
            "body": "customer={EXT_ID}&name={NAME}&call={ID}",
        },
    )
    profile = await make_custom_profile(live, lookup, strip_prefixes=["+81"])
    assert profile["lookup"]["basic_password_set"] is True
    assert "basic_password" not in profile["lookup"]
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "x-1", "+81312345678", "201", agent_id="A-7")
        pop = await stream.next()
    assert pop.event == "pop"
    data = pop.data
    assert data["tel"] == "0312345678"
    assert (data["company"], data["name"], data["ext_id"]) == ("山田商事", "山田 太郎", "C-1001")
    assert data["url"].startswith(f"{crm.base_url}/customer/C-1001?from=0312345678&at=20")
    assert data["lookup_error"] is None and data["lookup_pending"] is False
    assert data["click"] == {
        "url": None,
        "form": {
            "action": f"{crm.base_url}/memo",
            "fields": [["customer", "C-1001"], ["name", "山田 太郎"], ["call", "x-1"]],
        },
        "server": False,
    }
    # What the CRM received: the login with Basic credentials and the agent's {AID}/{EXT},
    # then the search with the session the login answered.
    login, search = crm.received
    assert login["method"] == "POST" and json.loads(login["body"]) == {
        "agent": "A-7",
        "ext": "201",
    }
    assert search["query"] == {"tel": "0312345678", "session": SESSION}
    # Both are on the call's timeline; the session id is masked there.
    call = await live.call("x-1")
    executions = [e for e in call["executions"] if e["source"] == "screen_pop"]
    assert [e["label"] for e in executions] == ["CRM: auth", "CRM: search"]
    recorded = json.dumps(executions, ensure_ascii=False)
    assert SESSION not in recorded and "pa55word" not in recorded
    assert executions[1]["extracted"] == {
        "COMPANY": "山田商事",
        "NAME": "山田 太郎",
        "EXT_ID": "C-1001",
    }


async def test_the_session_is_reused_while_it_lasts(
    live: Live, live_settings: Settings, crm: Crm
) -> None:
    await make_custom_profile(live, custom_lookup(crm))
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "x-1", "0312345678", "201")
        await stream.next()
        await ring(live, "x-2", "0312345678", "201")
        second = await stream.next()
    assert second.data["name"] == "山田 太郎"
    assert crm.paths() == ["/login", "/customers", "/customers"]


async def test_answer_disconnect_and_click_server_accesses(
    live: Live, live_settings: Settings, crm: Crm
) -> None:
    lookup = custom_lookup(
        crm,
        answer={
            "method": "server_post",
            "url": f"{crm.base_url}/log",
            "headers": "Content-Type: application/json",
            "body": '{"event": "answer", "customer": "{EXT_ID}", "call": "{ID}"}',
        },
        disconnect={
            "method": "server_get",
            "url": f"{crm.base_url}/log?event=disconnect&customer={{EXT_ID}}",
            "answered_only": True,
        },
        click={"method": "server_get", "url": f"{crm.base_url}/log?event=click&name={{NAME}}"},
    )
    await make_custom_profile(live, lookup)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "x-1", "0312345678", "201")
        pop = await stream.next()
        assert pop.data["click"] == {"url": None, "form": None, "server": True}
        await ring(live, "x-1", "0312345678", "201", event="answer")
        await ring(live, "x-1", "0312345678", "201", event="disconnect")
        end = await stream.next()
    assert end.event == "end"
    logged = [r for r in crm.received if r["path"] == "/log"]
    assert json.loads(logged[0]["body"]) == {"event": "answer", "customer": "C-1001", "call": "x-1"}
    assert logged[1]["query"] == {"event": "disconnect", "customer": "C-1001"}
    # The click: the agent's console asks callbridge to send it (the page's CSRF token).
    headers = {"Cookie": f"{sato['Cookie']}; {CSRF_COOKIE}=t0ken", CSRF_HEADER: "t0ken"}
    no_csrf = await live.http.post("/api/v1/agent/calls/x-1/click", headers=sato)
    assert no_csrf.status_code == 403
    clicked = await live.http.post("/api/v1/agent/calls/x-1/click", headers=headers)
    assert clicked.status_code == 200, clicked.text
    assert clicked.json() == {"call_id": "x-1", "status": 201, "error": None}
    other = await live.http.post("/api/v1/agent/calls/nope/click", headers=headers)
    assert other.status_code == 404
    assert crm.received[-1]["query"] == {"event": "click", "name": "山田 太郎"}
    call = await live.call("x-1")
    labels = [(e["label"], e["event"]) for e in call["executions"] if e["source"] == "screen_pop"]
    assert labels == [
        ("CRM: auth", "incoming"),
        ("CRM: search", "incoming"),
        ("CRM: answer", "answer"),
        ("CRM: disconnect", "disconnect"),
        ("CRM: click", "click"),
    ]


async def test_disconnect_only_when_answered(live: Live, live_settings: Settings, crm: Crm) -> None:
    lookup = custom_lookup(
        crm,
        disconnect={
            "method": "browser_get",
            "url": f"{crm.base_url}/log?event=missed&tel={{TEL}}",
            "answered_only": True,
        },
    )
    del lookup["accesses"]["auth"], lookup["accesses"]["search"]
    lookup["auth_type"] = "none"
    del lookup["basic_username"], lookup["basic_password"]
    await make_custom_profile(live, lookup)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "x-1", "0312345678", "201")
        await stream.next()
        await ring(live, "x-1", "0312345678", "201", event="disconnect")
        unanswered = await stream.next()
        await ring(live, "x-2", "0312345678", "201")
        await stream.next()
        await ring(live, "x-2", "0312345678", "201", event="answer")
        await ring(live, "x-2", "0312345678", "201", event="disconnect")
        answered = await stream.next()
    assert unanswered.data == {"call_id": "x-1", "event": "disconnect"}
    assert answered.data == {
        "call_id": "x-2",
        "event": "disconnect",
        "url": f"{crm.base_url}/log?event=missed&tel=0312345678",
        "form": None,
    }


async def test_a_slow_lookup_sends_the_card_first_then_an_update(
    live: Live, live_settings: Settings, crm: Crm
) -> None:
    lookup = custom_lookup(
        crm, incoming={"method": "browser_get", "url": f"{crm.base_url}/customer/{{EXT_ID}}"}
    )
    lookup["accesses"]["search"]["url"] = f"{crm.base_url}/slow?tel={{TEL}}"
    lookup["card_wait_seconds"] = 0
    await make_custom_profile(live, lookup)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await live.event(call_id="x-1", event="incoming", tel="0312345678", extension="201")
        card = await stream.next()
        assert card.event == "pop" and card.data["lookup_pending"] is True
        assert card.data["tel"] == "0312345678" and card.data["url"] is None
        crm.release.set()
        update = await stream.next()
    assert update.event == "update" and update.id > card.id
    assert update.data["lookup_pending"] is False
    assert (update.data["name"], update.data["ext_id"]) == ("遅 延", "C-2")
    assert update.data["url"] == f"{crm.base_url}/customer/C-2"


@pytest.mark.parametrize("answer", ["garbage", "timeout"])
async def test_a_crm_answering_garbage_or_too_late_still_gives_a_card(
    live: Live, live_settings: Settings, crm: Crm, answer: str
) -> None:
    lookup = custom_lookup(
        crm,
        incoming={"method": "browser_get", "url": "https://www.google.com/search?q={TEL}"},
    )
    path = "garbage" if answer == "garbage" else "slow"
    lookup["accesses"]["search"]["url"] = f"{crm.base_url}/{path}?tel={{TEL}}"
    lookup["timeout_seconds"] = 0.3
    await make_custom_profile(live, lookup)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "x-1", "0312345678", "201")
        pop = await stream.next()
    crm.release.set()
    data = pop.data
    assert data["tel"] == "0312345678" and data["name"] is None
    assert data["lookup_error"].startswith("search: ")
    if answer == "garbage":
        assert data["lookup_error"] == (
            "search: The response is not JSON, so JSONPath cannot run: "
            "Expecting value: line 1 column 1 (char 0)"
        )
    else:
        assert data["lookup_error"] == "search: no complete answer within 0.3 s"
    # The card still opens the incoming access.
    assert data["url"] == "https://www.google.com/search?q=0312345678"


async def test_the_lookup_error_is_in_each_agents_language(
    live: Live, live_settings: Settings, crm: Crm
) -> None:
    """The card's lookup error is a catalogue message, rendered by the stream in the
    reading agent's language (their setting); the CRM's own words stay verbatim."""
    lookup = custom_lookup(crm)
    lookup["accesses"]["search"]["url"] = f"{crm.base_url}/garbage?tel={{TEL}}"
    await make_custom_profile(live, lookup)
    sato = await make_agent(live, live_settings, "sato", "201", language="ja")
    kato = await make_agent(live, live_settings, "kato", "202", language="en")
    async with console(live.base_url, sato) as ja, console(live.base_url, kato) as en:
        await ring(live, "x-1", "0312345678", "201")
        await ring(live, "x-2", "0312345678", "202")
        japanese, english = await ja.next(), await en.next()
    assert japanese.data["lookup_error"] == (
        "検索アクセス: レスポンスが JSON ではないため JSONPath を実行できません: "
        "Expecting value: line 1 column 1 (char 0)"
    )
    assert english.data["lookup_error"] == (
        "search: The response is not JSON, so JSONPath cannot run: "
        "Expecting value: line 1 column 1 (char 0)"
    )
    # The stored message is the stream's business: the SSE data has the text only.
    assert "lookup_error_msg" not in japanese.data
    # A reconnecting console gets the stored card again, in its language.
    async with console(live.base_url, sato, last_event_id=japanese.id - 1) as again:
        resent = await again.next()
    assert resent.id == japanese.id and resent.data["lookup_error"] == japanese.data["lookup_error"]
