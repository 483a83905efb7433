"""The softphone's token on the stream and the card's notes (issue 20 §3), over sockets:
pops with Last-Event-ID resume, 401/403 as for the console, and the stream ending with
``signed_out`` when the token expires or is revoked."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from callbridge.agent_desktop import router
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import UserSession
from callbridge.settings import Settings
from tests.agent_desktop.conftest import Live, console, make_agent, make_profile, ring

CSRF = "test-csrf-value"


async def softphone_token(live: Live, cookie: dict[str, str]) -> str:
    """The agent clicks "Connect Salesforce softphone" on /agent, and the softphone trades
    the code (without any cookie) for its token."""
    headers = {"Cookie": f"{cookie['Cookie']}; cb_csrf={CSRF}", "HX-Request": "true"}
    page = await live.http.post("/agent/softphone-code", data={"csrf_token": CSRF}, headers=headers)
    assert page.status_code == 200, page.text
    code = re.search(r'id="softphone-pairing-code">([^<]+)<', page.text)
    assert code, page.text
    traded = await live.http.post("/api/v1/agent/softphone/token", json={"code": code.group(1)})
    assert traded.status_code == 201, traded.text
    return str(traded.json()["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_softphone_streams_its_agents_pops_and_saves_notes(
    connected: Live, live_settings: Settings
) -> None:
    live = connected
    await make_profile(live)
    sato = await make_agent(live, live_settings, "sato", "201")
    await make_agent(live, live_settings, "kato", "202")
    token = await softphone_token(live, sato)
    async with console(live.base_url, _bearer(token)) as stream:
        await ring(live, "s-1", "0120-999-991", "202")  # kato's call: not on sato's stream
        await ring(live, "s-2", "0120-999-992", "201")
        first = await stream.next()
    assert (first.event, first.data["call_id"]) == ("pop", "s-2")
    await ring(live, "s-3", "0120-999-993", "201")
    async with console(live.base_url, _bearer(token), last_event_id=first.id) as stream:
        missed = await stream.next()
    assert missed.data["call_id"] == "s-3"

    # Notes from the softphone: its token, no cookie, no CSRF token.
    saved = await live.http.post(
        "/api/v1/agent/calls/s-2/notes", json={"notes": "Salesforce から"}, headers=_bearer(token)
    )
    assert saved.status_code == 200, saved.text
    call = (await live.api("GET", "/api/v1/calls/s-2")).json()
    assert call["variables"]["NOTES"] == "Salesforce から"
    others = await live.http.post(
        "/api/v1/agent/calls/s-1/notes", json={"notes": "x"}, headers=_bearer(token)
    )
    assert others.status_code == 404

    anonymous = await live.http.get("/api/v1/agent/events")
    assert anonymous.status_code == 401
    wrong = await live.http.get("/api/v1/agent/events", headers=_bearer("not-a-token"))
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == (
        "the softphone's token is unknown, expired or revoked: pair the softphone again"
    )
    others_stream = await live.http.get(
        "/api/v1/agent/events?extension=202", headers=_bearer(token)
    )
    assert others_stream.status_code == 403
    assert others_stream.json()["detail"] == (
        "this is another agent's stream: agents receive only their own pops"
    )


async def test_the_stream_ends_when_the_token_expires_or_is_revoked(
    connected: Live, live_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = connected
    sato = await make_agent(live, live_settings, "sato", "201")
    token = await softphone_token(live, sato)
    engine = create_engine(live_settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            await session.execute(
                update(UserSession)
                .where(UserSession.token_hash == sha256_hex(token))
                .values(expires_at=utcnow() + timedelta(seconds=1))
            )
            await session.commit()
        async with console(live.base_url, _bearer(token)) as stream:
            ended = await stream.next(timeout=10)
            assert (ended.event, ended.data) == ("signed_out", {})
            with pytest.raises(AssertionError, match="the stream ended"):
                await stream.next(timeout=10)
        assert (
            await live.http.get("/api/v1/agent/events", headers=_bearer(token))
        ).status_code == 401
    finally:
        await engine.dispose()

    # Signed out on the softphone while another of its streams is open: it ends at the
    # next heartbeat; so does a stream whose token the administrator revokes.
    monkeypatch.setattr(router, "HEARTBEAT_SECONDS", 0.05)
    users = (await live.api("GET", "/api/v1/users")).json()["items"]
    user_id = next(u["id"] for u in users if u["username"] == "sato")
    for revoke in ("sign-out", "admin"):
        token = await softphone_token(live, sato)
        async with console(live.base_url, _bearer(token)) as stream:
            if revoke == "sign-out":
                gone = await live.http.delete(
                    "/api/v1/agent/softphone/token", headers=_bearer(token)
                )
                assert gone.status_code == 204
            else:
                revoked = await live.api("DELETE", f"/api/v1/users/{user_id}/softphone-tokens")
                assert revoked.json() == {"revoked": 1}
            ended = await stream.next(timeout=10)
            assert ended.event == "signed_out"
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        # The console's own session was never touched.
        assert (await http.get("/agent", headers=sato)).status_code == 200
