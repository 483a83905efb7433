"""The OAuth account pages: form errors next to fields, nothing half-saved, Japanese UI,
and the database token source's refresh rules."""

from __future__ import annotations

import httpx

from callbridge.models import OAuthAccount
from callbridge.oauth_accounts.token_source import DatabaseTokenSource
from callbridge.outbound import TokenRefreshError
from tests.helpers import csrf_from, make_user, sign_in
from tests.httpx2_mock import mocked_crm


async def signed_in(app, client: httpx.AsyncClient) -> str:
    await make_user(app)
    await sign_in(client)
    return csrf_from((await client.get("/oauth-accounts/new")).text)


FORM = {
    "name": "Salesforce",
    "provider": "salesforce",
    "grant_type": "authorization_code",
    "login_choice": "custom",
    "login_url": "http://crm.example.com",
    "client_id": "",
    "client_secret": "",
    "scope": "api refresh_token",
}


async def test_form_errors_are_shown_next_to_fields(app, client) -> None:
    csrf = await signed_in(app, client)
    page = await client.post("/oauth-accounts/new", data={**FORM, "csrf_token": csrf})
    assert page.status_code == 422
    assert 'id="e-login_url"' in page.text and "Plain http://" in page.text
    assert 'id="e-client_secret"' in page.text
    listing = await client.get("/oauth-accounts")
    assert "No OAuth account yet." in listing.text


async def test_create_then_edit_keeps_secrets(app, client) -> None:
    csrf = await signed_in(app, client)
    created = await client.post(
        "/oauth-accounts/new",
        data={
            **FORM,
            "login_choice": "sandbox",
            "login_url": "",
            "client_id": "3MVG9.key",
            "client_secret": "s3cret",
            "csrf_token": csrf,
        },
    )
    assert created.status_code == 303, created.text
    location = created.headers["location"]
    page = await client.get(location)
    assert "https://test.salesforce.com" not in page.text or 'value="sandbox" selected' in page.text
    assert "A value is stored; leave empty to keep it." in page.text
    assert "s3cret" not in page.text
    account_path = location.split("?")[0]
    saved = await client.post(
        account_path,
        data={
            **FORM,
            "login_choice": "production",
            "login_url": "",
            "client_id": "3MVG9.key",
            "client_secret": "",
            "name": "Renamed",
            "csrf_token": csrf,
        },
    )
    assert saved.status_code == 303
    answer = await client.get(f"/api/v1/oauth-accounts/{account_path.rsplit('/', 1)[1]}")
    assert answer.json()["name"] == "Renamed"
    assert answer.json()["client_secret_set"] is True
    assert answer.json()["login_url"] == "https://login.salesforce.com"


async def test_failed_edit_changes_nothing(app, client) -> None:
    csrf = await signed_in(app, client)
    created = await client.post(
        "/oauth-accounts/new",
        data={
            **FORM,
            "login_choice": "production",
            "login_url": "",
            "client_id": "key",
            "client_secret": "s",
            "csrf_token": csrf,
        },
    )
    account_path = created.headers["location"].split("?")[0]
    failed = await client.post(
        account_path,
        data={
            **FORM,
            "name": "Changed",
            "grant_type": "password",
            "login_choice": "production",
            "login_url": "",
            "client_id": "key",
            "csrf_token": csrf,
        },
    )
    assert failed.status_code == 422
    assert "security token" in failed.text
    answer = await client.get(f"/api/v1/oauth-accounts/{account_path.rsplit('/', 1)[1]}")
    assert answer.json()["name"] == "Salesforce"
    assert answer.json()["grant_type"] == "authorization_code"


async def test_japanese_pages(app, client) -> None:
    await signed_in(app, client)
    client.cookies.set("cb_lang", "ja")
    page = await client.get("/oauth-accounts/new")
    assert "OAuthアカウントの新規登録" in page.text
    assert "コールバックURL" in page.text or "コールバックURLを登録" in page.text
    listing = await client.get("/oauth-accounts")
    assert "OAuthアカウントはまだありません。" in listing.text


async def test_refresh_uses_a_newer_token_found_in_the_database(app, client) -> None:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        account = OAuthAccount(
            name="acme",
            provider="salesforce",
            grant_type="password",
            login_url="https://acme.my.salesforce.com",
            client_id="key",
            client_secret_enc=runtime.secrets.encrypt("s"),
            username="u",
            password_enc=runtime.secrets.encrypt("p"),
            status="connected",
            access_token_enc=runtime.secrets.encrypt("newer-token"),
            token_version=7,
            instance_url="https://acme.my.salesforce.com",
        )
        session.add(account)
        await session.commit()
        account_id = account.id
    source = DatabaseTokenSource(runtime)
    with mocked_crm() as provider:
        token_route = provider.post("https://acme.my.salesforce.com/services/oauth2/token")
        # Another process already refreshed (version 7): no call to the provider.
        token = await source.refresh(account_id, stale_version=6)
        assert token.access_token == "newer-token" and not token_route.called
        # The provider refuses the grant: the account is marked, the error says so.
        token_route.mock(
            return_value=httpx.Response(
                400, json={"error": "invalid_grant", "error_description": "authentication failure"}
            )
        )
        try:
            await source.refresh(account_id, stale_version=7)
        except TokenRefreshError as error:
            assert error.reauthorize and "security token" in error.message
        else:
            raise AssertionError("the refresh should have failed")
        loaded = await source.load(account_id)
    assert loaded is not None and loaded.status == "needs_reauthorization"
    assert loaded.access_token is None


async def test_request_limits_in_the_form(app, client) -> None:
    csrf = await signed_in(app, client)
    new = await client.get("/oauth-accounts/new")
    assert 'name="max_in_flight" value="1000"' in new.text
    assert 'name="long_request_limit" value="25"' in new.text
    valid = {
        **FORM,
        "login_choice": "production",
        "login_url": "",
        "client_id": "key",
        "client_secret": "s",
    }
    refused = await client.post(
        "/oauth-accounts/new",
        data={**valid, "max_in_flight": "lots", "long_request_limit": "-3", "csrf_token": csrf},
    )
    assert refused.status_code == 422
    assert '<div class="error" id="e-max_in_flight">Enter a whole number.</div>' in refused.text
    assert '<div class="error" id="e-long_request_limit">Must be at least 0.</div>' in refused.text
    assert 'name="max_in_flight" value="lots"' in refused.text
    created = await client.post(
        "/oauth-accounts/new",
        data={**valid, "max_in_flight": "300", "long_request_limit": "5", "csrf_token": csrf},
    )
    assert created.status_code == 303, created.text
    account_path = created.headers["location"].split("?")[0]
    answer = await client.get(f"/api/v1/oauth-accounts/{account_path.rsplit('/', 1)[1]}")
    assert (answer.json()["max_in_flight"], answer.json()["long_request_limit"]) == (300, 5)
    client.cookies.set("cb_lang", "ja")
    page = await client.get(account_path)
    assert "リクエストの上限" in page.text and 'name="max_in_flight" value="300"' in page.text
