"""Pops over SSE (DESIGN §12.1, §12.2): from the PBX's event to the rung agent's
console, with the Salesforce lookup against the sandbox org."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import delete, update

from callbridge.agent_desktop import router
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import UserSession
from callbridge.settings import Settings
from tests.agent_desktop.conftest import Live, console, make_agent, make_profile, ring


def _contact_id(live: Live, last_name: str) -> str:
    return str(next(c["Id"] for c in live.records("Contact") if c["LastName"] == last_name))


async def test_only_the_rung_agent_gets_the_pop_with_the_match(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    await make_profile(live)
    sato = await make_agent(live, live_settings, "sato", "201")
    kato = await make_agent(live, live_settings, "kato", "202")
    async with console(live.base_url, sato) as first, console(live.base_url, kato) as second:
        await ring(live, "c-1", "03-1234-5678", "201", tel_name="スズキ", queue="sales")
        pop = await first.next()
        assert pop.event == "pop"
        contact_id = _contact_id(live, "鈴木")
        url = f"{live.sandbox.base_url}/lightning/r/Contact/{contact_id}/view"
        assert pop.data["call_id"] == "c-1" and pop.data["event"] == "incoming"
        assert pop.data["tel"] == "03-1234-5678" and pop.data["tel_name"] == "スズキ"
        assert pop.data["queue"] == "sales" and pop.data["called"] == "0501234567"
        assert pop.data["matches"] == [
            {"object": "Contact", "id": contact_id, "name": "鈴木 一郎", "url": url}
        ]
        assert pop.data["url"] == url and pop.data["lookup_error"] is None
        # kato's first message is kato's own call: sato's pop never reached him.
        await ring(live, "c-2", "0120-999-999", "202")
        other = await second.next()
        assert other.data["call_id"] == "c-2"


async def test_no_match_opens_the_new_record_form_with_the_number(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    await make_profile(live, strip_prefixes=["+81"])
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "c-1", "+81120999999", "201")
        pop = await stream.next()
    expected = f"{live.sandbox.base_url}/lightning/o/Contact/new?defaultFieldValues=" + quote(
        "Phone=0120999999", safe=""
    )
    assert pop.data["tel"] == "0120999999"
    assert pop.data["matches"] == []
    assert pop.data["new_record_url"] == expected and pop.data["url"] == expected
    assert "defaultFieldValues=Phone%3D0120999999" in expected


async def test_several_matches_are_choices_without_a_url(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    await make_profile(live)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "c-1", "07075373713", "201")
        pop = await stream.next()
    assert sorted(m["name"] for m in pop.data["matches"]) == ["佐藤 花子", "田中 健一"]
    assert {m["object"] for m in pop.data["matches"]} == {"Contact"}
    assert pop.data["url"] is None


async def test_a_failing_crm_still_gives_a_card(connected: Live, live_settings: Settings) -> None:
    live = connected
    await make_profile(live)
    sato = await make_agent(live, live_settings, "sato", "201", language="ja")
    live.sandbox.knobs.fail_next(1, "server_error", path_contains="/search")
    async with console(live.base_url, sato) as stream:
        await ring(live, "c-1", "03-1234-5678", "201")
        pop = await stream.next()
    assert pop.data["tel"] == "03-1234-5678" and pop.data["matches"] == []
    # In the agent's language (their setting), Salesforce's own words verbatim.
    # (the sandbox's ErrorId differs from run to run).
    assert pop.data["lookup_error"].startswith(
        "Salesforce のエラー: UNKNOWN_EXCEPTION: An unexpected error occurred. "
        "Please include this ErrorId if you contact support: "
    )
    assert pop.data["url"] is None


async def test_anonymous_callers_show_the_label_and_disconnect_ends(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    await make_profile(live, anonymous_label="非通知の着信")
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "c-1", "anonymous", "201")
        pop = await stream.next()
        assert pop.data["tel"] is None and pop.data["tel_name"] == "非通知の着信"
        assert pop.data["anonymous"] is True and pop.data["url"] is None
        await ring(live, "c-1", "anonymous", "201", event="disconnect")
        end = await stream.next()
    assert end.event == "end" and end.data == {"call_id": "c-1", "event": "disconnect"}
    assert end.id > pop.id


async def test_a_reconnecting_console_gets_what_it_missed(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    await make_profile(live)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await ring(live, "c-1", "0120-999-991", "201")
        seen = await stream.next()
    await ring(live, "c-2", "0120-999-992", "201")
    await ring(live, "c-3", "0120-999-993", "201")
    async with console(live.base_url, sato, last_event_id=seen.id) as stream:
        missed = [await stream.next(), await stream.next()]
    assert [m.data["call_id"] for m in missed] == ["c-2", "c-3"]


async def test_the_stream_needs_the_agents_own_session(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    sato = await make_agent(live, live_settings, "sato", "201")
    await make_agent(live, live_settings, "kato", "202")
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        anonymous = await http.get("/api/v1/agent/events")
        assert anonymous.status_code == 401
        others = await http.get("/api/v1/agent/events?extension=202", headers=sato)
        assert others.status_code == 403
        assert others.json()["detail"] == (
            "this is another agent's stream: agents receive only their own pops"
        )


async def test_an_idle_stream_sends_heartbeats(
    connected: Live, live_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = connected
    monkeypatch.setattr(router, "HEARTBEAT_SECONDS", 0.01)
    sato = await make_agent(live, live_settings, "sato", "201")
    async with console(live.base_url, sato) as stream:
        await make_profile(live)
        await ring(live, "c-1", "0120-999-991", "201")
        pop = await stream.next()
    assert pop.data["call_id"] == "c-1"
    assert "heartbeat" in stream.comments


def _session_of(cookie: dict[str, str]) -> str:
    """The stored hash of the session in a Cookie header."""
    return sha256_hex(cookie["Cookie"].split("=", 1)[1])


async def test_the_stream_ends_with_its_session(
    connected: Live, live_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = connected
    sato = await make_agent(live, live_settings, "sato", "201")
    token_hash = _session_of(sato)
    engine = create_engine(live_settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(
                update(UserSession)
                .where(UserSession.token_hash == token_hash)
                .values(expires_at=utcnow() + timedelta(seconds=1))
            )
            await session.commit()
        async with console(live.base_url, sato) as stream:
            ended = await stream.next(timeout=10)
            assert (ended.event, ended.data) == ("signed_out", {})
            with pytest.raises(AssertionError, match="the stream ended"):
                await stream.next(timeout=10)
        async with httpx.AsyncClient(base_url=live.base_url) as http:
            assert (await http.get("/api/v1/agent/events", headers=sato)).status_code == 401

        # Signed out elsewhere while connected: the stream ends at its next heartbeat.
        monkeypatch.setattr(router, "HEARTBEAT_SECONDS", 0.05)
        kato = await make_agent(live, live_settings, "kato", "202")
        async with console(live.base_url, kato) as stream:
            async with create_sessionmaker(engine)() as session:
                await session.execute(
                    delete(UserSession).where(UserSession.token_hash == _session_of(kato))
                )
                await session.commit()
            ended = await stream.next(timeout=10)
            assert ended.event == "signed_out"
    finally:
        await engine.dispose()


async def test_a_deleted_account_is_what_the_card_says(
    connected: Live, live_settings: Settings
) -> None:
    """Deleting the lookup's OAuth account is allowed (as for rules and history links):
    the card says so, in each agent's language."""
    live = connected
    await make_profile(live)
    deleted = await live.api("DELETE", f"/api/v1/oauth-accounts/{live.account_id}")
    assert deleted.status_code == 204
    sato = await make_agent(live, live_settings, "sato", "201", language="ja")
    kato = await make_agent(live, live_settings, "kato", "202", language="en")
    async with console(live.base_url, sato) as ja, console(live.base_url, kato) as en:
        await ring(live, "c-1", "0312345678", "201")
        await ring(live, "c-2", "0312345678", "202")
        japanese, english = await ja.next(), await en.next()
    assert japanese.data["lookup_error"] == (
        f"検索の OAuth アカウント({live.account_id})は削除されました。"
        "この設定に別のアカウントを選んでください。"
    )
    assert english.data["lookup_error"] == (
        f"The lookup's OAuth account ({live.account_id}) was deleted: choose another "
        "account for this profile."
    )
    assert japanese.data["url"] is None and japanese.data["tel"] == "0312345678"
