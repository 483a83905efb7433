"""OAuth endpoints as SALESFORCE.md describes them: grants, errors, consent, PKCE, revoke."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from callbridge.sandbox import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    SandboxState,
)
from tests.helpers import FakeClock

from .conftest import BASE_URL, SigningKey, password_form

CALLBACK = "https://callbridge.example.jp/oauth_client/callback"
TOKEN = "/services/oauth2/token"


def register_web_app(state: SandboxState, **options: object) -> None:
    state.register_connected_app("web-app", "web-secret", callback_urls=[CALLBACK], **options)


def expected_signature(secret: str, identity: str, issued_at: str) -> str:
    digest = hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def authorize(
    client: httpx.AsyncClient, *, client_id: str = "web-app", **params: str
) -> httpx.Response:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK}
    query.update(params)
    return await client.get("/services/oauth2/authorize", params=query)


def request_id(page: httpx.Response) -> str:
    match = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


async def approve(
    client: httpx.AsyncClient, page: httpx.Response, password: str = DEMO_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/services/oauth2/authorize",
        data={
            "request_id": request_id(page),
            "action": "allow",
            "username": DEMO_USERNAME,
            "password": password,
        },
    )


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def code_for(client: httpx.AsyncClient, **params: str) -> str:
    page = await authorize(client, **params)
    return callback_params(await approve(client, page))["code"]


def exchange_form(code: str, **extra: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "web-app",
        "client_secret": "web-secret",
        "redirect_uri": CALLBACK,
    }
    form.update(extra)
    return form


# --- password grant and the response shape ------------------------------------------------


async def test_password_grant_answers_salesforce_fields_in_order(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    response = await client.post(TOKEN, data=password_form())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert " " not in response.text
    body = response.json()
    assert list(body) == [
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    ]
    assert body["access_token"].startswith(state.org_id[:15] + "!")
    assert body["instance_url"] == BASE_URL
    user = state.user(DEMO_USERNAME)
    assert user is not None
    assert body["id"] == f"{BASE_URL}/id/{state.org_id}/{user.user_id}"
    assert body["token_type"] == "Bearer"
    assert body["issued_at"] == str(int(clock.now * 1000))
    assert body["signature"] == expected_signature(
        DEMO_CLIENT_SECRET, body["id"], body["issued_at"]
    )


async def test_password_grant_needs_the_security_token(client: httpx.AsyncClient) -> None:
    form = password_form() | {"password": DEMO_PASSWORD}
    response = await client.post(TOKEN, data=form)

    assert response.status_code == 400
    assert response.text == (
        '{"error":"invalid_grant","error_description":"authentication failure"}'
    )


async def test_client_credentials_may_come_as_http_basic(client: httpx.AsyncClient) -> None:
    form = password_form()
    del form["client_id"], form["client_secret"]
    response = await client.post(TOKEN, data=form, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))

    assert response.status_code == 200
    assert "access_token" in response.json()


@pytest.mark.parametrize(
    ("changes", "error", "description"),
    [
        ({"client_id": "nobody"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "wrong"}, "invalid_client", "invalid client credentials"),
        ({"grant_type": "magic"}, "unsupported_grant_type", "grant type not supported"),
        ({"grant_type": ""}, "unsupported_grant_type", "grant type not supported"),
    ],
)
async def test_token_errors(
    client: httpx.AsyncClient, changes: dict[str, str], error: str, description: str
) -> None:
    response = await client.post(TOKEN, data=password_form() | changes)

    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


async def test_wrong_secret_over_basic_is_invalid_client(client: httpx.AsyncClient) -> None:
    form = password_form()
    del form["client_id"], form["client_secret"]
    response = await client.post(TOKEN, data=form, auth=(DEMO_CLIENT_ID, "wrong"))

    assert response.json()["error"] == "invalid_client"


async def test_client_credentials_grant(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        },
    )

    body = response.json()
    assert list(body) == [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert body["scope"] == "api"
    assert "refresh_token" not in body and "expires_in" not in body


async def test_client_credentials_without_a_run_as_user(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    response = await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": "web-app",
            "client_secret": "web-secret",
        },
    )

    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "no client credentials user enabled",
    }


# --- authorization code through the consent page ------------------------------------------


async def test_consent_page_allow_redirects_with_code_and_state(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state, name="callbridge")
    page = await authorize(client, state="xyz-123", scope="api refresh_token")

    assert page.status_code == 200
    assert "callbridge" in page.text
    assert 'id="oaapprove"' in page.text and 'id="oadeny"' in page.text
    params = callback_params(await approve(client, page))
    assert params["state"] == "xyz-123"
    assert params["code"].startswith("aPrx") and params["code"].endswith("==")


async def test_consent_page_deny_redirects_with_access_denied(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    page = await authorize(client, state="s1")
    response = await client.post(
        "/services/oauth2/authorize", data={"request_id": request_id(page), "action": "deny"}
    )

    assert callback_params(response) == {
        "error": "access_denied",
        "error_description": "end-user denied authorization",
        "state": "s1",
    }


async def test_consent_page_with_a_wrong_password_asks_again(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    page = await authorize(client)
    response = await approve(client, page, password="nope")

    assert response.status_code == 200
    assert "Please check your username and password" in response.text


async def test_authorize_with_unknown_client_or_callback_shows_an_error_page(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    unknown = await authorize(client, client_id="nobody")
    mismatch = await authorize(client, redirect_uri="https://evil.example/cb")

    assert unknown.status_code == 400
    assert "error=invalid_client_id&amp;error_description=client%20identifier%20invalid" in (
        unknown.text
    )
    assert mismatch.status_code == 400
    assert "redirect_uri_mismatch" in mismatch.text


async def test_authorization_code_exchange(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    register_web_app(state)
    code = await code_for(client, scope="api refresh_token")

    response = await client.post(TOKEN, data=exchange_form(code))

    body = response.json()
    assert list(body) == [
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert body["scope"] == "api refresh_token"
    assert body["refresh_token"].startswith("5Aep861")
    assert body["signature"] == expected_signature("web-secret", body["id"], body["issued_at"])
    assert "expires_in" not in body


async def test_without_refresh_scope_there_is_no_refresh_token(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    code = await code_for(client, scope="api")

    body = (await client.post(TOKEN, data=exchange_form(code))).json()

    assert "refresh_token" not in body
    assert body["scope"] == "api"


async def test_codes_are_single_use(client: httpx.AsyncClient, state: SandboxState) -> None:
    register_web_app(state)
    code = await code_for(client)
    assert (await client.post(TOKEN, data=exchange_form(code))).status_code == 200

    again = await client.post(TOKEN, data=exchange_form(code))

    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "expired authorization code",
    }


async def test_codes_expire(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    register_web_app(state)
    code = await code_for(client)
    clock.advance(state.knobs.code_lifetime_seconds + 1)

    response = await client.post(TOKEN, data=exchange_form(code))

    assert response.json()["error_description"] == "expired authorization code"


async def test_code_exchange_checks_the_redirect_uri_and_the_secret(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    code = await code_for(client)

    other_uri = await client.post(TOKEN, data=exchange_form(code, redirect_uri=CALLBACK + "x"))
    no_secret = exchange_form(code)
    del no_secret["client_secret"]
    missing_secret = await client.post(TOKEN, data=no_secret)

    assert other_uri.json() == {
        "error": "redirect_uri_mismatch",
        "error_description": "redirect_uri must match configuration",
    }
    assert missing_secret.json()["error"] == "invalid_client"


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_pkce_s256(client: httpx.AsyncClient, state: SandboxState) -> None:
    register_web_app(state, require_pkce=True)
    verifier = "v" * 20 + "-_" + "0123456789abcdefghijklmnopqrstuvwxyz"
    code = await code_for(
        client, code_challenge=challenge_of(verifier), code_challenge_method="S256"
    )

    response = await client.post(TOKEN, data=exchange_form(code, code_verifier=verifier))

    assert response.status_code == 200


async def test_pkce_errors(client: httpx.AsyncClient, state: SandboxState) -> None:
    register_web_app(state)
    verifier = "a" * 50
    code = await code_for(client, code_challenge=challenge_of(verifier))

    wrong = await client.post(TOKEN, data=exchange_form(code, code_verifier="b" * 50))
    missing = await client.post(TOKEN, data=exchange_form(code))
    tilde = await client.post(TOKEN, data=exchange_form(code, code_verifier="a" * 49 + "~"))

    assert wrong.json() == {
        "error": "invalid_request",
        "error_description": "invalid code verifier",
    }
    assert missing.json() == {
        "error": "invalid_grant",
        "error_description": "invalid code verifier",
    }
    assert tilde.json()["error"] == "invalid_grant"
    # The failed attempts did not use the code up.
    assert (await client.post(TOKEN, data=exchange_form(code, code_verifier=verifier))).is_success


async def test_pkce_required_by_the_app(client: httpx.AsyncClient, state: SandboxState) -> None:
    register_web_app(state, require_pkce=True)
    response = await authorize(client, state="s")

    assert callback_params(response)["error_description"] == "missing required code challenge"


async def test_demo_app_accepts_any_loopback_port_for_its_callback(
    client: httpx.AsyncClient,
) -> None:
    page = await authorize(
        client,
        client_id=DEMO_CLIENT_ID,
        redirect_uri="http://127.0.0.1:43210/oauth_client/callback",
    )

    assert page.status_code == 200


# --- refresh, rotation, revoke, expiry ----------------------------------------------------


async def tokens_via_code(client: httpx.AsyncClient) -> dict[str, str]:
    code = await code_for(client, scope="api refresh_token")
    body: dict[str, str] = (await client.post(TOKEN, data=exchange_form(code))).json()
    return body


def refresh_form(refresh_token: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "web-app",
        "client_secret": "web-secret",
    }


async def test_refresh_grant_has_no_new_refresh_token(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    tokens = await tokens_via_code(client)

    body = (await client.post(TOKEN, data=refresh_form(tokens["refresh_token"]))).json()

    assert list(body) == [
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert body["access_token"] != tokens["access_token"]


async def test_unknown_refresh_token(client: httpx.AsyncClient, state: SandboxState) -> None:
    register_web_app(state)
    response = await client.post(TOKEN, data=refresh_form("5Aep861nothing"))

    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


async def test_refresh_token_rotation_kills_the_old_one_and_reuse_revokes_all(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state, rotate_refresh_tokens=True)
    first = await tokens_via_code(client)
    second = (await client.post(TOKEN, data=refresh_form(first["refresh_token"]))).json()
    assert second["refresh_token"] != first["refresh_token"]

    reused = await client.post(TOKEN, data=refresh_form(first["refresh_token"]))
    after = await client.post(TOKEN, data=refresh_form(second["refresh_token"]))

    assert reused.json()["error"] == "invalid_grant"
    assert after.json()["error"] == "invalid_grant"
    assert state.valid_access_token(second["access_token"]) is None


async def test_revoke_refresh_token_revokes_its_access_tokens(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    register_web_app(state)
    tokens = await tokens_via_code(client)
    refreshed = (await client.post(TOKEN, data=refresh_form(tokens["refresh_token"]))).json()

    response = await client.post("/services/oauth2/revoke", data={"token": tokens["refresh_token"]})

    assert response.status_code == 200
    assert state.valid_access_token(tokens["access_token"]) is None
    assert state.valid_access_token(refreshed["access_token"]) is None
    query = await client.get(
        "/services/data/v45.0/limits",
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
    )
    assert query.status_code == 401


async def test_revoke_errors(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/services/oauth2/revoke", data={"token": "nope"})
    missing = await client.post("/services/oauth2/revoke", data={})

    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_token"
    assert missing.status_code == 400 and missing.json()["error"] == "unsupported_token_type"


async def test_access_tokens_expire_after_the_session_timeout(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    state.knobs.session_timeout_seconds = 60
    access = (await client.post(TOKEN, data=password_form())).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    assert (await client.get("/services/data/v45.0/limits", headers=headers)).status_code == 200

    clock.advance(61)
    response = await client.get("/services/data/v45.0/limits", headers=headers)

    assert response.status_code == 401
    assert (
        response.text
        == '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'
    )


async def test_identity_url_answers_for_its_token(client: httpx.AsyncClient) -> None:
    body = (await client.post(TOKEN, data=password_form())).json()
    identity = await client.get(
        body["id"], headers={"Authorization": f"Bearer {body['access_token']}"}
    )

    assert identity.status_code == 200
    assert identity.json()["username"] == DEMO_USERNAME
    assert (await client.get(body["id"])).status_code == 403


# --- JWT bearer -------------------------------------------------------------------------


def jwt_form(assertion: str) -> dict[str, str]:
    return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


def claims(clock: FakeClock, **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "iss": "jwt-app",
        "sub": DEMO_USERNAME,
        "aud": "https://login.salesforce.com",
        "exp": int(clock.now) + 180,
    }
    base.update(changes)
    return base


async def test_jwt_bearer_grant(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock, signing_key: SigningKey
) -> None:
    state.register_connected_app("jwt-app", "s", certificate_pem=signing_key.certificate_pem)

    response = await client.post(TOKEN, data=jwt_form(signing_key.assertion(claims(clock))))

    body = response.json()
    assert list(body) == ["access_token", "scope", "instance_url", "id", "token_type"]
    assert body["instance_url"] == BASE_URL


async def test_jwt_bearer_accepts_the_sandbox_itself_as_audience(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock, signing_key: SigningKey
) -> None:
    state.register_connected_app("jwt-app", "s", certificate_pem=signing_key.certificate_pem)
    assertion = signing_key.assertion(claims(clock, aud=BASE_URL))

    assert (await client.post(TOKEN, data=jwt_form(assertion))).status_code == 200


@pytest.mark.parametrize(
    ("changes", "error", "description"),
    [
        ({"aud": "https://evil.example"}, "invalid_grant", "audience is invalid"),
        ({"iss": "nobody"}, "invalid_client_id", "client identifier invalid"),
        ({"exp": 1}, "invalid_grant", "invalid assertion"),
        ({"sub": "ghost@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
async def test_jwt_bearer_errors(
    client: httpx.AsyncClient,
    state: SandboxState,
    clock: FakeClock,
    signing_key: SigningKey,
    changes: dict[str, object],
    error: str,
    description: str,
) -> None:
    state.register_connected_app("jwt-app", "s", certificate_pem=signing_key.certificate_pem)

    response = await client.post(
        TOKEN, data=jwt_form(signing_key.assertion(claims(clock, **changes)))
    )

    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


async def test_jwt_signed_by_another_key_is_an_invalid_assertion(
    client: httpx.AsyncClient,
    state: SandboxState,
    clock: FakeClock,
    signing_key: SigningKey,
    other_signing_key: SigningKey,
) -> None:
    state.register_connected_app("jwt-app", "s", certificate_pem=signing_key.certificate_pem)

    forged = await client.post(TOKEN, data=jwt_form(other_signing_key.assertion(claims(clock))))
    garbage = await client.post(TOKEN, data=jwt_form("not.a.jwt"))

    assert forged.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}
    assert garbage.json()["error_description"] == "invalid assertion"


async def test_jwt_user_must_be_preauthorized_when_the_app_says_so(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock, signing_key: SigningKey
) -> None:
    state.register_connected_app(
        "jwt-app",
        "s",
        certificate_pem=signing_key.certificate_pem,
        preauthorized_usernames=["someone@else"],
    )

    response = await client.post(TOKEN, data=jwt_form(signing_key.assertion(claims(clock))))

    assert response.json()["error_description"] == "user hasn't approved this consumer"
