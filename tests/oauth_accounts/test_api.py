"""The OAuth account API: fields, write-only secrets, validation, direct connect, delete."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.helpers import bearer, make_token
from tests.httpx2_mock import mocked_crm

LOGIN = "https://acme.my.salesforce.com"
TOKEN_URL = f"{LOGIN}/services/oauth2/token"
REVOKE_URL = f"{LOGIN}/services/oauth2/revoke"


@pytest.fixture
async def admin(app) -> dict[str, str]:
    return bearer(await make_token(app, "admin"))


@pytest.fixture
def provider() -> respx.MockRouter:
    with mocked_crm() as router:
        yield router


PASSWORD_ACCOUNT = {
    "name": "Salesforce (password)",
    "provider": "salesforce",
    "grant_type": "password",
    "login_url": LOGIN,
    "client_id": "3MVG9.consumer.key",
    "client_secret": "consumer-secret-1",
    "username": "ops@acme.example",
    "password": "Passw0rdSECURITYTOKEN",
}


def token_answer(**extra: object) -> httpx.Response:
    body = {
        "access_token": "00Dx0000000BV7z!AR8AQ.access",
        "instance_url": "https://acme.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00Dx0000000BV7zEAG/005x00000012Q9PAAU",
        "token_type": "Bearer",
        "issued_at": "1278448832702",
        **extra,
    }
    return httpx.Response(200, json=body)


async def create(client: httpx.AsyncClient, admin: dict[str, str], **fields: object) -> dict:
    response = await client.post(
        "/api/v1/oauth-accounts", json={**PASSWORD_ACCOUNT, **fields}, headers=admin
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_list_with_write_only_secrets(client, admin) -> None:
    created = await create(client, admin)
    assert created["status"] == "not_connected"
    assert created["client_secret_set"] is True and created["password_set"] is True
    assert created["private_key_set"] is False
    assert created["callback_url"] == "http://127.0.0.1:8000/oauth_client/callback"
    text = json.dumps(created)
    assert "consumer-secret-1" not in text and "Passw0rd" not in text
    listed = (await client.get("/api/v1/oauth-accounts", headers=admin)).json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "Salesforce (password)"
    one = (await client.get(f"/api/v1/oauth-accounts/{created['id']}", headers=admin)).json()
    assert one == listed["items"][0]


async def test_secrets_are_stored_encrypted(app, client, admin) -> None:
    from sqlalchemy import select

    from callbridge.models import OAuthAccount

    created = await create(client, admin)
    async with app.state.runtime.sessionmaker() as session:
        row = await session.scalar(select(OAuthAccount).where(OAuthAccount.id == created["id"]))
    assert row.client_secret_enc and "consumer-secret-1" not in row.client_secret_enc
    assert app.state.runtime.secrets.decrypt(row.client_secret_enc) == "consumer-secret-1"


async def test_salesforce_login_url_defaults_to_production(client, admin) -> None:
    created = await create(
        client, admin, grant_type="authorization_code", login_url=None, username=None, password=None
    )
    assert created["login_url"] == "https://login.salesforce.com"


@pytest.mark.parametrize(
    ("fields", "loc", "fragment"),
    [
        ({"login_url": "http://login.example.com"}, "login_url", "Plain http://"),
        ({"password": None}, "password", "security token"),
        ({"grant_type": "jwt_bearer", "private_key": "not a key"}, "private_key", "PEM"),
        (
            {"grant_type": "client_credentials", "client_secret": None},
            "client_secret",
            "Required for this grant type",
        ),
        ({"provider": "generic", "login_url": None}, "token_url", "generic"),
        ({"login_url": "login.salesforce.com"}, "login_url", "absolute URL"),
    ],
)
async def test_invalid_accounts_are_refused_per_field(
    client, admin, fields: dict, loc: str, fragment: str
) -> None:
    response = await client.post(
        "/api/v1/oauth-accounts", json={**PASSWORD_ACCOUNT, **fields}, headers=admin
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    matching = [d for d in detail if d["loc"][-1] == loc]
    assert matching, detail
    assert fragment in matching[0]["msg"]
    assert (await client.get("/api/v1/oauth-accounts", headers=admin)).json()["total"] == 0


async def test_loopback_http_is_allowed(client, admin) -> None:
    created = await create(client, admin, login_url="http://127.0.0.1:8081")
    assert created["login_url"] == "http://127.0.0.1:8081"


async def test_duplicate_name_conflicts(client, admin) -> None:
    await create(client, admin)
    response = await client.post("/api/v1/oauth-accounts", json=PASSWORD_ACCOUNT, headers=admin)
    assert response.status_code == 409


async def test_connect_password_grant(client, admin, provider) -> None:
    route = provider.post(TOKEN_URL).mock(return_value=token_answer())
    created = await create(client, admin)
    response = await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    assert response.status_code == 200, response.text
    account = response.json()
    assert account["status"] == "connected"
    assert account["instance_url"] == "https://acme.my.salesforce.com"
    assert "access" not in json.dumps({k: v for k, v in account.items() if k != "status"})
    sent = dict(httpx.QueryParams(route.calls.last.request.content.decode()))
    assert sent["grant_type"] == "password"
    assert sent["username"] == "ops@acme.example"
    assert sent["password"] == "Passw0rdSECURITYTOKEN"
    assert sent["client_id"] == "3MVG9.consumer.key"


async def test_wrong_client_secret_says_what_to_do(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(
        return_value=httpx.Response(
            400, json={"error": "invalid_client", "error_description": "invalid client credentials"}
        )
    )
    created = await create(client, admin)
    response = await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    assert response.status_code == 400
    body = response.json()
    assert "invalid_client" in body["detail"] and "consumer secret" in body["detail"]
    assert body["account"]["status"] == "error"
    stored = (await client.get(f"/api/v1/oauth-accounts/{created['id']}", headers=admin)).json()
    assert stored["status"] == "error" and "consumer secret" in stored["status_detail"]
    assert stored["instance_url"] is None


async def test_unreachable_login_url(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(side_effect=httpx.ConnectError("Name or service not known"))
    created = await create(client, admin)
    response = await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    assert response.status_code == 502
    assert "could not reach the token URL" in response.json()["detail"]
    assert "check the login URL" in response.json()["detail"]


async def test_not_an_oauth_server(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(return_value=httpx.Response(200, text="<html>login</html>"))
    created = await create(client, admin)
    response = await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    assert response.status_code == 502
    assert "did not answer with an OAuth token" in response.json()["detail"]


async def test_token_signature_is_checked(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(return_value=token_answer(signature="AAAA"))
    created = await create(client, admin)
    response = await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    assert response.status_code == 502
    assert "signature" in response.json()["detail"]


async def test_insecure_instance_url_is_refused(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(return_value=token_answer(instance_url="http://evil.example"))
    created = await create(client, admin)
    response = await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    assert response.status_code == 502
    assert "http://evil.example" in response.json()["detail"]


async def test_changing_the_client_id_disconnects(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(return_value=token_answer())
    created = await create(client, admin)
    await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    renamed = await client.patch(
        f"/api/v1/oauth-accounts/{created['id']}",
        json={"name": "Renamed", "scope": "api"},
        headers=admin,
    )
    assert renamed.json()["status"] == "connected"
    changed = await client.patch(
        f"/api/v1/oauth-accounts/{created['id']}", json={"client_id": "another.app"}, headers=admin
    )
    assert changed.json()["status"] == "not_connected"
    assert "connect it again" in changed.json()["status_detail"]


async def test_patch_secrets_keep_or_clear(client, admin) -> None:
    created = await create(client, admin)
    url = f"/api/v1/oauth-accounts/{created['id']}"
    kept = await client.patch(url, json={"client_secret": None}, headers=admin)
    assert kept.json()["client_secret_set"] is True
    refused = await client.patch(url, json={"password": ""}, headers=admin)
    assert refused.status_code == 422  # the password grant needs it
    cleared = await client.patch(
        url,
        json={"grant_type": "authorization_code", "password": "", "username": None},
        headers=admin,
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["password_set"] is False


async def test_delete_revokes_at_the_provider(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(return_value=token_answer(refresh_token="5Aep.refresh"))
    revoke = provider.post(REVOKE_URL).mock(return_value=httpx.Response(200))
    created = await create(client, admin)
    await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    response = await client.delete(f"/api/v1/oauth-accounts/{created['id']}", headers=admin)
    assert response.status_code == 204
    assert response.headers["Callbridge-Revocation"].startswith("revoked")
    sent = dict(httpx.QueryParams(revoke.calls.last.request.content.decode()))
    assert sent["token"] == "5Aep.refresh"
    assert (
        await client.get(f"/api/v1/oauth-accounts/{created['id']}", headers=admin)
    ).status_code == 404


async def test_delete_reports_a_failed_revocation(client, admin, provider) -> None:
    provider.post(TOKEN_URL).mock(return_value=token_answer())
    provider.post(REVOKE_URL).mock(side_effect=httpx.ConnectError("down"))
    created = await create(client, admin)
    await client.post(f"/api/v1/oauth-accounts/{created['id']}/connect", headers=admin)
    response = await client.delete(f"/api/v1/oauth-accounts/{created['id']}", headers=admin)
    assert response.status_code == 204
    assert response.headers["Callbridge-Revocation"].startswith("failed")
    assert "by hand" in response.headers["Callbridge-Revocation"]


async def test_scopes_and_auth(app, client) -> None:
    assert (await client.get("/api/v1/oauth-accounts")).status_code == 401
    pbx = bearer(await make_token(app, "pbx", name="pbx"))
    assert (await client.get("/api/v1/oauth-accounts", headers=pbx)).status_code == 403


async def test_request_limits_default_edit_and_reach_the_outbound_path(app, client, admin) -> None:
    from callbridge.oauth_accounts.token_source import DatabaseTokenSource
    from callbridge.outbound import AccountLimits

    created = await create(client, admin)
    assert (created["max_in_flight"], created["long_request_limit"]) == (1000, 25)
    url = f"/api/v1/oauth-accounts/{created['id']}"
    changed = await client.patch(
        url, json={"max_in_flight": 200, "long_request_limit": 0}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["max_in_flight"], changed.json()["long_request_limit"]) == (200, 0)
    token = await DatabaseTokenSource(app.state.runtime).load(created["id"])
    assert token is not None and token.limits == AccountLimits(200, 0)


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"max_in_flight": 0}, "max_in_flight", "Input should be greater than or equal to 1"),
        (
            {"long_request_limit": -1},
            "long_request_limit",
            "Input should be greater than or equal to 0",
        ),
        (
            {"max_in_flight": "many"},
            "max_in_flight",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
async def test_bad_request_limits_are_refused(client, admin, fields, loc, message) -> None:
    created = await create(client, admin)
    url = f"/api/v1/oauth-accounts/{created['id']}"
    refused = await client.patch(url, json=fields, headers=admin)
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert (problem["loc"][-1], problem["msg"]) == (loc, message)
    refused = await client.post(
        "/api/v1/oauth-accounts", json={**PASSWORD_ACCOUNT, "name": "x", **fields}, headers=admin
    )
    assert refused.status_code == 422
    assert (await client.get(url, headers=admin)).json()["max_in_flight"] == 1000
