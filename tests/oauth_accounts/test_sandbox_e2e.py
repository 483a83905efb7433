"""OAuth accounts against the sandbox Salesforce over real sockets: every grant, the
callback's failure modes, token expiry mid-use, invalid_grant, revocation on delete."""

from __future__ import annotations

import asyncio

import pytest

from callbridge.outbound import OAuthAuth, OutboundRequest, get_outbound
from callbridge.sandbox import DEMO_CLIENT_ID, DEMO_USERNAME, SandboxHandle
from tests.oauth_accounts.conftest import (
    Admin,
    callback_path,
    consent,
    query_of,
    rsa_key_and_certificate,
    sandbox_account,
)

pytestmark = pytest.mark.e2e

SOQL = "/services/data/v62.0/query?q=SELECT+Id,Name+FROM+Account+WHERE+Phone='07075373713'"


async def connect_in_browser(admin: Admin, account_id: int) -> str:
    """Connect through the UI route, approve at the sandbox; returns the callback path."""
    page = await admin.client.get(f"/oauth-accounts/{account_id}")
    csrf = admin.client.cookies.get("cb_csrf")
    answer = await admin.client.post(
        f"/oauth-accounts/{account_id}/connect", data={"csrf_token": csrf}
    )
    assert page.status_code == 200 and answer.status_code == 303, answer.text
    return callback_path(consent(answer.headers["location"]))


async def query_cdf(app, account_id: int) -> object:
    outbound = get_outbound(app.state.runtime)
    base = await outbound.instance_url(account_id)
    return await outbound.send(OutboundRequest("GET", f"{base}{SOQL}", auth=OAuthAuth(account_id)))


def token_requests(sandbox: SandboxHandle) -> list[str]:
    return [
        r.form().get("grant_type", "")
        for r in sandbox.requests
        if r.path == "/services/oauth2/token"
    ]


async def test_authorization_code_flow_and_expiry_mid_use(app, admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    location = await connect_in_browser(admin, account["id"])
    landed = await admin.client.get(location)
    assert landed.status_code == 303
    assert landed.headers["location"] == f"/oauth-accounts/{account['id']}?connected=1"
    page = await admin.client.get(landed.headers["location"])
    assert "Connected: callbridge can now call the API" in page.text
    connected = await admin.get_account(account["id"])
    assert connected["status"] == "connected"
    assert connected["instance_url"] == sandbox.instance_url
    assert connected["identity_url"].startswith(sandbox.base_url + "/id/")

    first = await query_cdf(app, account["id"])
    assert first.status == 200 and "CDF 株式会社" in first.text
    # The org's session timeout passes while callbridge is in use.
    sandbox.state.expire_access_tokens()
    results = await asyncio.gather(*(query_cdf(app, account["id"]) for _ in range(10)))
    assert all(r.status == 200 for r in results)
    assert token_requests(sandbox) == ["authorization_code", "refresh_token"]
    assert (await admin.get_account(account["id"]))["status"] == "connected"


async def test_pkce(app, admin, sandbox) -> None:
    sandbox.state.register_connected_app(
        "pkce.app",
        "pkce-secret",
        callback_urls=["http://127.0.0.1:8000/oauth_client/callback"],
        require_pkce=True,
    )
    account = await admin.create_account(
        **sandbox_account(
            sandbox,
            "authorization_code",
            client_id="pkce.app",
            client_secret="pkce-secret",
            use_pkce=True,
        )
    )
    answer = await admin.connect(account["id"])
    authorize_url = answer.json()["authorize_url"]
    assert "code_challenge=" in authorize_url and "code_challenge_method=S256" in authorize_url
    landed = await admin.client.get(callback_path(consent(authorize_url)))
    assert landed.status_code == 303
    verifier = [r.form() for r in sandbox.requests if r.path == "/services/oauth2/token"]
    assert len(verifier[-1]["code_verifier"]) >= 43
    assert (await query_cdf(app, account["id"])).status == 200


async def test_password_grant(app, admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "password"))
    answer = await admin.connect(account["id"])
    assert answer.status_code == 200 and answer.json()["status"] == "connected"
    assert (await query_cdf(app, account["id"])).status == 200
    sandbox.state.expire_access_tokens()
    assert (await query_cdf(app, account["id"])).status == 200
    assert token_requests(sandbox) == ["password", "password"]


async def test_password_grant_wrong_password_needs_the_security_token(admin, sandbox) -> None:
    account = await admin.create_account(
        **sandbox_account(sandbox, "password", password="sandbox-demo-1")
    )
    answer = await admin.connect(account["id"])
    assert answer.status_code == 400
    assert "security token" in answer.json()["detail"]
    assert (await admin.get_account(account["id"]))["status"] == "error"


async def test_client_credentials_grant(app, admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "client_credentials"))
    answer = await admin.connect(account["id"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "connected"
    assert (await query_cdf(app, account["id"])).status == 200


async def test_jwt_bearer_grant(app, admin, sandbox) -> None:
    private_key, certificate = rsa_key_and_certificate()
    sandbox.state.register_connected_app(
        "jwt.app",
        "jwt-secret",
        certificate_pem=certificate,
        preauthorized_usernames=[DEMO_USERNAME],
    )
    account = await admin.create_account(
        **sandbox_account(
            sandbox,
            "jwt_bearer",
            client_id="jwt.app",
            client_secret=None,
            username=DEMO_USERNAME,
            private_key=private_key,
        )
    )
    assert account["private_key_set"] is True
    answer = await admin.connect(account["id"])
    assert answer.status_code == 200, answer.text
    assert (await query_cdf(app, account["id"])).status == 200
    sandbox.state.expire_access_tokens()
    assert (await query_cdf(app, account["id"])).status == 200


async def test_test_button_reports_identity_and_usage(admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "client_credentials"))
    await admin.connect(account["id"])
    report = await admin.test(account["id"])
    assert report["ok"] is True
    assert report["username"] == DEMO_USERNAME
    assert report["api_usage"]["allowed"] == 15000
    assert "signed in as demo@callbridge.sandbox" in report["message"]


async def test_invalid_grant_marks_the_account_and_stops_refreshing(app, admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    await admin.client.get(await connect_in_browser(admin, account["id"]))
    # The admin withdraws the app's access in Salesforce: every token dies.
    for refresh in list(sandbox.state.refresh_tokens.values()):
        sandbox.state.revoke_refresh_family(refresh.family)
    sandbox.state.expire_access_tokens()
    results = await asyncio.gather(*(query_cdf(app, account["id"]) for _ in range(5)))
    assert all(r.error is not None and r.error.kind == "auth" for r in results)
    later = await query_cdf(app, account["id"])
    assert later.error is not None and later.error.code == "needs_reauthorization"
    assert token_requests(sandbox) == ["authorization_code", "refresh_token"]
    stored = await admin.get_account(account["id"])
    assert stored["status"] == "needs_reauthorization"
    assert "invalid_grant" in stored["status_detail"]
    # Every admin page now says so.
    dashboard = await admin.client.get("/")
    assert "OAuth account needs to be reconnected: Sandbox authorization_code" in dashboard.text
    # Reconnecting clears it.
    await admin.client.get(await connect_in_browser(admin, account["id"]))
    assert (await query_cdf(app, account["id"])).status == 200
    assert "needs to be reconnected" not in (await admin.client.get("/")).text


async def test_delete_revokes_at_the_sandbox(app, admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    await admin.client.get(await connect_in_browser(admin, account["id"]))
    token = (await get_outbound(app.state.runtime).oauth_credentials(account["id"])).access_token
    response = await admin.client.delete(
        f"/api/v1/oauth-accounts/{account['id']}", headers=admin.headers
    )
    assert response.status_code == 204
    assert response.headers["Callbridge-Revocation"].startswith("revoked")
    assert sandbox.state.valid_access_token(token) is None


# ---- the callback's failure modes ------------------------------------------------------


async def test_denied_consent(admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    authorize_url = (await admin.connect(account["id"])).json()["authorize_url"]
    page = await admin.client.get(callback_path(consent(authorize_url, action="deny")))
    assert page.status_code == 400
    assert "Access was denied at the provider." in page.text
    assert "choose Allow" in page.text
    assert (await admin.get_account(account["id"]))["status"] == "not_connected"


async def test_replayed_callback(admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    location = await connect_in_browser(admin, account["id"])
    assert (await admin.client.get(location)).status_code == 303
    replay = await admin.client.get(location)
    assert replay.status_code == 400
    assert "already used" in replay.text
    assert token_requests(sandbox) == ["authorization_code"]


async def test_state_mismatch(admin, sandbox) -> None:
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    location = await connect_in_browser(admin, account["id"])
    code = query_of(location)["code"]
    page = await admin.client.get(f"/oauth_client/callback?code={code}&state=forged")
    assert page.status_code == 400
    assert "state mismatch" in page.text
    assert (await admin.get_account(account["id"]))["status"] == "not_connected"
    assert token_requests(sandbox) == []


async def test_callback_in_another_session(app, admin, sandbox) -> None:
    import httpx

    from tests.helpers import make_user, sign_in

    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    location = await connect_in_browser(admin, account["id"])
    await make_user(app, "other-admin")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        await sign_in(other, "other-admin")
        page = await other.get(location)
    assert page.status_code == 400
    assert "another browser session" in page.text
    assert (await admin.get_account(account["id"]))["status"] == "not_connected"


async def test_expired_code(admin, sandbox) -> None:
    sandbox.knobs.code_lifetime_seconds = 0.0
    account = await admin.create_account(**sandbox_account(sandbox, "authorization_code"))
    page = await admin.client.get(await connect_in_browser(admin, account["id"]))
    assert page.status_code == 400
    assert "could not be exchanged" in page.text
    assert "expired authorization code" in page.text
    assert "click Connect again" in page.text
    assert (await admin.get_account(account["id"]))["status"] == "not_connected"


async def test_wrong_client_secret_in_the_browser_flow(admin, sandbox) -> None:
    account = await admin.create_account(
        **sandbox_account(sandbox, "authorization_code", client_secret="wrong-secret")
    )
    page = await admin.client.get(await connect_in_browser(admin, account["id"]))
    assert page.status_code == 400
    assert "invalid_client" in page.text and "consumer secret" in page.text
    stored = await admin.get_account(account["id"])
    assert stored["status"] == "not_connected" and stored["instance_url"] is None


async def test_unreachable_login_url(admin) -> None:
    from tests.servers import free_port

    account = await admin.create_account(
        name="nowhere",
        provider="salesforce",
        grant_type="client_credentials",
        login_url=f"http://127.0.0.1:{free_port()}",
        client_id=DEMO_CLIENT_ID,
        client_secret="x",
    )
    answer = await admin.connect(account["id"])
    assert answer.status_code == 502
    assert "could not reach the token URL" in answer.json()["detail"]
