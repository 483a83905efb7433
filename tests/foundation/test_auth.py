"""Sign-in, sessions, CSRF, throttling, first-run setup, API authentication."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select, update

from callbridge.auth.setup import issue_setup_token
from callbridge.kit.time import utcnow
from callbridge.models import AuditEntry, User, UserSession
from tests.helpers import bearer, csrf_from, make_token, make_user, sign_in


async def test_sign_in_sets_a_hardened_cookie(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    response = await sign_in(client, next="/tokens")
    assert response.status_code == 303
    assert response.headers["location"] == "/tokens"
    cookie = response.headers["set-cookie"]
    assert "cb_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # the public URL is not https here


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    wrong_password = await sign_in(client, password="not the password")
    unknown_user = await sign_in(client, username="nobody")
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert "Wrong username or password." in wrong_password.text
    assert "Wrong username or password." in unknown_user.text
    assert "cb_session" not in wrong_password.headers.get("set-cookie", "")


async def test_sign_in_is_throttled_after_repeated_failures(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    for _ in range(5):
        assert (await sign_in(client, password="guess")).status_code == 401
    throttled = await sign_in(client)  # even the right password is refused for a while
    assert throttled.status_code == 429
    assert "Too many failed sign-in attempts" in throttled.text


async def test_login_form_without_csrf_token_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    await client.get("/login")
    response = await client.post(
        "/login", data={"username": "admin", "password": "correct horse", "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert "reload the page" in response.text


async def test_every_ui_post_needs_the_csrf_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client)
    for path, data in [
        ("/tokens", {"name": "x", "scope": "pbx"}),
        ("/users/new", {"username": "u", "password": "12345678", "role": "agent"}),
        ("/settings", {"timezone": "UTC"}),
        ("/logout", {}),
    ]:
        response = await client.post(path, data=data)
        assert response.status_code == 403, path


async def test_anonymous_page_redirects_to_login_and_back(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/users?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fusers%3Fx%3D1"
    await make_user(app)
    signed_in = await sign_in(client, next="/users?x=1")
    assert signed_in.headers["location"] == "/users?x=1"


async def test_expired_session_redirects_to_login(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client)
    assert (await client.get("/")).status_code == 200
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(
            update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    response = await client.get("/settings")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fsettings"


async def test_next_never_leaves_the_site(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    response = await sign_in(client, next="//evil.example/")
    assert response.headers["location"] == "/"


async def test_sign_out_ends_the_session(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client)
    page = await client.get("/")
    response = await client.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert (await client.get("/")).status_code == 303
    async with app.state.runtime.sessionmaker() as session:
        assert (await session.scalars(select(UserSession))).all() == []


async def test_agents_cannot_open_admin_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app, username="agent1", role="agent")
    await sign_in(client, username="agent1")
    response = await client.get("/users")
    assert response.status_code == 403
    assert "administrators" in response.text


async def test_first_run_setup_creates_one_admin(app: FastAPI, client: httpx.AsyncClient) -> None:
    async with app.state.runtime.sessionmaker() as session:
        raw = await issue_setup_token(session)
        await session.commit()
    assert raw
    page = await client.get(f"/setup?token={raw}")
    assert page.status_code == 200
    form = {
        "token": raw,
        "username": "boss",
        "password": "long enough",
        "password_confirm": "different",
        "csrf_token": csrf_from(page.text),
    }
    mismatch = await client.post("/setup", data=form)
    assert mismatch.status_code == 422
    assert "The two passwords differ." in mismatch.text
    form["password_confirm"] = "long enough"
    created = await client.post("/setup", data=form)
    assert created.status_code == 303
    assert (await client.get("/")).status_code == 200
    # The link is spent, and no second admin can be made through it.
    again = await client.post("/setup", data={**form, "username": "intruder"})
    assert again.status_code == 403
    async with app.state.runtime.sessionmaker() as session:
        users = (await session.scalars(select(User))).all()
    assert [(u.username, u.role) for u in users] == [("boss", "admin")]


async def test_setup_with_a_wrong_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/setup?token=made-up")
    assert response.status_code == 403
    assert "not valid" in response.text


async def test_api_authentication(app: FastAPI, client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/users")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/v1/users", headers=bearer("nope"))).status_code == 401
    malformed = await client.get("/api/v1/users", headers={"Authorization": "Basic abc"})
    assert malformed.status_code == 401
    pbx = await make_token(app, scope="pbx")
    wrong_scope = await client.get("/api/v1/users", headers=bearer(pbx))
    assert wrong_scope.status_code == 403
    assert "admin" in wrong_scope.json()["detail"]
    admin = await make_token(app, scope="admin")
    assert (await client.get("/api/v1/users", headers=bearer(admin))).status_code == 200


async def test_api_with_an_admin_session_needs_the_csrf_header(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    await sign_in(client)
    assert (await client.get("/api/v1/tokens")).status_code == 200
    refused = await client.post("/api/v1/tokens", json={"name": "x", "scope": "pbx"})
    assert refused.status_code == 403
    csrf = client.cookies.get("cb_csrf")
    allowed = await client.post(
        "/api/v1/tokens", json={"name": "x", "scope": "pbx"}, headers={"X-CSRF-Token": csrf}
    )
    assert allowed.status_code == 201


async def test_sign_ins_are_audited(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client, password="bad password")
    await sign_in(client)
    async with app.state.runtime.sessionmaker() as session:
        actions = [
            e.action for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert "login.failure" in actions and "login.success" in actions
