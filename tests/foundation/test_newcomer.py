"""Defects a new administrator met in the first hour (each test failed before its fix):
a typed My Domain URL was dropped, one header mistake gave two messages, no favicon, no
copy button for a new token."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from callbridge.models import OAuthAccount
from tests.helpers import bearer, csrf_from, errors_by_field, make_token, make_user, sign_in


async def _signed_in(app: FastAPI, client: httpx.AsyncClient, page: str) -> str:
    await make_user(app)
    await sign_in(client)
    client.cookies.set("cb_lang", "ja")
    return csrf_from((await client.get(page)).text)


async def test_a_typed_login_url_is_used_without_choosing_custom(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    csrf = await _signed_in(app, client, "/oauth-accounts/new")
    created = await client.post(
        "/oauth-accounts/new",
        data={
            "name": "sandbox",
            "provider": "salesforce",
            "grant_type": "authorization_code",
            "login_choice": "production",  # left as it was: the newcomer only typed the URL
            "login_url": "http://127.0.0.1:8090",
            "client_id": "demo",
            "client_secret": "secret",
            "scope": "api refresh_token",
            "csrf_token": csrf,
        },
    )
    assert created.status_code == 303, created.text
    async with app.state.runtime.sessionmaker() as session:
        account = await session.scalar(select(OAuthAccount))
    assert account is not None and account.login_url == "http://127.0.0.1:8090"
    page = await client.get(created.headers["location"])
    assert '<option value="custom" selected>' in page.text
    assert 'value="http://127.0.0.1:8090"' in page.text


async def test_a_typed_login_url_is_kept_when_the_form_has_errors(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    csrf = await _signed_in(app, client, "/oauth-accounts/new")
    page = await client.post(
        "/oauth-accounts/new",
        data={
            "name": "",
            "provider": "salesforce",
            "grant_type": "authorization_code",
            "login_choice": "sandbox",
            "login_url": "https://acme.my.salesforce.com",
            "client_id": "demo",
            "client_secret": "secret",
            "csrf_token": csrf,
        },
    )
    assert page.status_code == 422
    assert '<option value="custom" selected>' in page.text
    assert 'value="https://acme.my.salesforce.com"' in page.text


async def test_a_header_line_without_colon_is_one_message(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = bearer(await make_token(app))
    answer = await client.post(
        "/api/v1/call-actions",
        json={
            "event": "queue",
            "url": "https://crm.example.com/cases",
            "method": "POST",
            "headers": "Content-Type application/json",
            "body": '{"Subject": "{TEL}"}',
        },
        headers=admin,
    )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert [(d["loc"], d["msg"], d["position"]) for d in detail] == [
        (["body", "headers"], "A header line must look like 'Name: value'.", 0)
    ]
    ivr = await client.post(
        "/api/v1/ivrs",
        json={
            "key": "k",
            "url": "https://crm.example.com/lookup",
            "method": "POST",
            "headers": "Content-Type application/json",
            "body": '{"tel": "{TEL}"}',
        },
        headers=admin,
    )
    assert ivr.status_code == 422
    assert [item["msg"] for item in ivr.json()["detail"]] == [
        "A header line must look like 'Name: value'."
    ]


async def test_favicon(app: FastAPI, client: httpx.AsyncClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
    linked = await client.get("/static/favicon.svg")
    assert linked.status_code == 200
    login = await client.get("/login")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in login.text


async def test_new_token_has_a_copy_button(app: FastAPI, client: httpx.AsyncClient) -> None:
    csrf = await _signed_in(app, client, "/tokens")
    page = await client.post("/tokens", data={"name": "PBX", "scope": "pbx", "csrf_token": csrf})
    assert page.status_code == 201, page.text
    assert 'data-copy="new-token-value"' in page.text
    assert ">コピー</button>" in page.text


RULE_FORM = {
    "event": "queue",
    "order": "",
    "enabled": "1",
    "auth_type": "none",
    "url": "https://crm.example.com/cases?name={TELNAM}",
    "method": "POST",
    "timeout_seconds": "120",
    "headers": "Content-Type application/json",
    "body": '{"Subject": "{TEL}"}',
    "extract_pattern": '/"id":"(?P<ID>[^"]*"/',
}


async def test_a_rule_form_reports_every_error_at_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    csrf = await _signed_in(app, client, "/call-actions/new")
    client.cookies.set("cb_lang", "en")
    page = await client.post("/call-actions/new", data={**RULE_FORM, "csrf_token": csrf})
    assert page.status_code == 422
    errors = errors_by_field(page.text)
    assert sorted(errors) == ["extract_pattern", "headers", "timeout_seconds", "url"]
    assert errors["timeout_seconds"] == ["Must be at most 60."]
    assert errors["headers"] == ["A header line must look like &#39;Name: value&#39;."]
    assert any("{TELNAME}" in message for message in errors["url"])
    # Nothing was saved.
    listing = await client.get("/api/v1/call-actions", headers=bearer(await make_token(app)))
    assert listing.json()["total"] == 0

    # Editing a saved rule: the same, every error at once.
    admin = bearer(await make_token(app, name="admin-2"))
    rule = await client.post(
        "/api/v1/call-actions",
        json={"event": "queue", "url": "https://crm.example.com/cases", "method": "POST"},
        headers=admin,
    )
    assert rule.status_code == 201, rule.text
    edit = await client.post(
        f"/call-actions/{rule.json()['id']}", data={**RULE_FORM, "csrf_token": csrf}
    )
    assert edit.status_code == 422
    assert sorted(errors_by_field(edit.text)) == [
        "extract_pattern",
        "headers",
        "timeout_seconds",
        "url",
    ]
