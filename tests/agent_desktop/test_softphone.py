"""The Open CTI softphone's sign-in (issue 20 §3): a one-time pairing code on /agent,
traded for a softphone token that only the agent endpoints of the softphone accept."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from callbridge.auth.sessions import SESSION_COOKIE
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import SoftphonePairingCode, UserSession
from tests.helpers import bearer, csrf_from, make_token, make_user, sign_in

REFUSED = (
    "This code is unknown, expired or already used: get a new code on the agent console (/agent)."
)


async def pairing_code(client: httpx.AsyncClient, language: str = "en") -> tuple[str, str]:
    """The agent (signed in on ``client``) clicks "Connect Salesforce softphone": the code
    and the sentence with its expiry, as the fragment shows them."""
    console = await client.get("/agent")
    answer = await client.post(
        "/agent/softphone-code",
        data={"csrf_token": csrf_from(console.text)},
        headers={"HX-Request": "true", "Accept-Language": language},
    )
    assert answer.status_code == 200, answer.text
    code = re.search(r'id="softphone-pairing-code">([^<]+)<', answer.text)
    expiry = re.search(r'id="softphone-code-expiry">([^<]+)<', answer.text)
    assert code and expiry, answer.text
    return code.group(1), expiry.group(1)


async def trade(client: httpx.AsyncClient, code: str) -> httpx.Response:
    # No cookie goes with it, as inside Salesforce's iframe.
    return await client.post(
        "/api/v1/agent/softphone/token", json={"code": code}, headers={"Cookie": ""}
    )


async def test_the_console_shows_a_code_that_works_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app, "sato", role="agent", extension="201")
    await sign_in(client, "sato")
    page = await client.get("/agent")
    assert 'id="softphone-connect">Connect Salesforce softphone</button>' in page.text
    code, expiry = await pairing_code(client)
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{5}-[A-HJ-NP-Z2-9]{5}", code)
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(SoftphonePairingCode))).all()
    # Stored as a hash only, for five minutes.
    assert [s.code_hash for s in stored] == [sha256_hex(code.replace("-", ""))]
    assert stored[0].expires_at - stored[0].created_at == timedelta(minutes=5)
    zone = ZoneInfo(runtime.settings.timezone)
    until = stored[0].expires_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
    assert expiry == f"Enter it in the softphone within 5 minutes (until {until}). It works once."

    # Typed in lower case with a space: still the code.
    traded = await trade(client, code.lower().replace("-", " "))
    assert traded.status_code == 201, traded.text
    body = traded.json()
    assert (body["username"], body["extension"], body["token_type"]) == ("sato", "201", "bearer")
    async with runtime.sessionmaker() as session:
        kinds = (await session.scalars(select(UserSession.kind).order_by(UserSession.id))).all()
        assert (await session.scalars(select(SoftphonePairingCode))).all() == []
    assert kinds == ["browser", "softphone"]

    again = await trade(client, code)
    assert again.status_code == 422
    assert again.json()["detail"] == [
        {
            "loc": ["body", "code"],
            "msg": REFUSED,
            "type": "value_error",
            "code": "softphone_code_refused",
        }
    ]
    missing = await client.post("/api/v1/agent/softphone/token", json={})
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["detail"]] == [["body", "code"]]

    # A new code replaces the unused one; the page shows how many softphones are signed in.
    first, _ = await pairing_code(client)
    second, _ = await pairing_code(client, "ja")
    assert (await trade(client, first)).status_code == 422
    page = await client.get("/agent", headers={"Accept-Language": "ja"})
    assert "Salesforce ソフトフォンを接続" in page.text
    assert "サインイン中のソフトフォン:1" in page.text
    assert (await trade(client, second)).status_code == 201


async def test_the_code_page_in_japanese(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app, "sato", role="agent", extension="201")
    await sign_in(client, "sato")
    _code, expiry = await pairing_code(client, "ja")
    assert expiry.startswith("5 分以内(") and expiry.endswith(
        "まで)にソフトフォンに入力してください。使えるのは 1 回だけです。"
    )


async def test_an_expired_code_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app, "sato", role="agent", extension="201")
    await sign_in(client, "sato")
    code, _ = await pairing_code(client)
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(
            update(SoftphonePairingCode).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    refused = await trade(client, code)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"] == REFUSED


async def test_wrong_codes_are_throttled(app: FastAPI, client: httpx.AsyncClient) -> None:
    settings = app.state.runtime.settings
    limit = settings.login_max_failures * 4
    for _ in range(limit):
        assert (await trade(client, "AAAAA-AAAAA")).status_code == 422
    throttled = await trade(client, "AAAAA-AAAAA")
    assert throttled.status_code == 429
    assert throttled.json()["detail"] == (
        f"Too many wrong codes from this address: wait {settings.login_lockout_minutes} "
        "minutes and try again."
    )


async def test_the_token_is_refused_everywhere_but_the_softphone_endpoints(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app, "sato", role="admin", extension="201")
    await sign_in(client, "sato")
    token = (await trade(client, (await pairing_code(client))[0])).json()["token"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as fresh:
        # Not an API token, even of an administrator.
        api = await fresh.get("/api/v1/users", headers=bearer(token))
        assert (api.status_code, api.json()["detail"]) == (401, "invalid API token")
        # Not a session cookie: not for the API, the UI, or the console's stream.
        cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
        assert (await fresh.get("/api/v1/users", headers=cookie)).status_code == 401
        ui = await fresh.get("/users", headers=cookie)
        assert ui.status_code == 303 and ui.headers["location"].startswith("/login")
        assert (await fresh.get("/agent", headers=cookie)).status_code == 303
        assert (await fresh.get("/api/v1/agent/events", headers=cookie)).status_code == 401
        # And a browser session is no softphone token.
        browser = client.cookies[SESSION_COOKIE]
        stream = await fresh.get("/api/v1/agent/events", headers=bearer(browser))
        assert stream.status_code == 401
        assert stream.json()["detail"] == (
            "the softphone's token is unknown, expired or revoked: pair the softphone again"
        )
        notes = await fresh.post(
            "/api/v1/agent/calls/x/notes", json={"notes": "n"}, headers=bearer(browser)
        )
        assert notes.status_code == 401
        # The softphone's token is enough for its notes (no CSRF token, no cookie): a call
        # that did not pop on this agent's console is 404, not 401/403.
        mine = await fresh.post(
            "/api/v1/agent/calls/x/notes", json={"notes": "n"}, headers=bearer(token)
        )
        assert mine.status_code == 404, mine.text


async def test_revocation(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Sign-out on the softphone, the administrator's revoke (API and user page), the
    agent's own button on /agent, deactivation: the token stops working each time.
    Signing out of the console leaves the softphone signed in."""
    sato = await make_user(app, "sato", role="agent", extension="201")
    await make_user(app, "admin")
    admin_token = bearer(await make_token(app, scope="admin"))
    await sign_in(client, "sato")

    async def token() -> str:
        return str((await trade(client, (await pairing_code(client))[0])).json()["token"])

    async def works(raw: str) -> bool:
        answer = await client.post(
            "/api/v1/agent/calls/x/notes", json={}, headers={**bearer(raw), "Cookie": ""}
        )
        assert answer.status_code in (401, 404), answer.text
        return answer.status_code == 404

    signed_out = await token()
    gone = await client.delete(
        "/api/v1/agent/softphone/token", headers={**bearer(signed_out), "Cookie": ""}
    )
    assert gone.status_code == 204
    assert not await works(signed_out)

    by_api = await token()
    revoked = await client.delete(
        f"/api/v1/users/{sato}/softphone-tokens", headers={**admin_token, "Cookie": ""}
    )
    assert revoked.json() == {"revoked": 1}
    assert not await works(by_api)
    assert (await client.get("/agent")).status_code == 200  # the console stays signed in

    by_agent = await token()
    page = await client.get("/agent")
    disconnected = await client.post(
        "/agent/softphone-disconnect",
        data={"csrf_token": csrf_from(page.text)},
        headers={"HX-Request": "true"},
    )
    assert disconnected.status_code == 200
    assert "Softphones signed in" not in disconnected.text
    assert not await works(by_agent)

    kept = await token()
    page = await client.get("/agent")
    await client.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert await works(kept)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as admin:
        await sign_in(admin, "admin")
        edit = await admin.get(f"/users/{sato}/edit")
        assert "Softphones signed in: 1" in edit.text
        done = await admin.post(
            f"/users/{sato}/softphone-tokens/revoke", data={"csrf_token": csrf_from(edit.text)}
        )
        assert done.status_code == 303
        shown = await admin.get(done.headers["location"], headers={"Accept-Language": "ja"})
        assert "サインアウトしたソフトフォン:1" in shown.text
        assert "サインイン中のソフトフォン:0" in shown.text
        assert not await works(kept)

    await sign_in(client, "sato")
    deactivated = await token()
    patched = await client.patch(
        f"/api/v1/users/{sato}", json={"is_active": False}, headers={**admin_token, "Cookie": ""}
    )
    assert patched.status_code == 200
    assert not await works(deactivated)
