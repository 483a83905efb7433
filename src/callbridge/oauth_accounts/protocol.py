"""OAuth 2.0 on the wire, through Authlib: authorize URLs with PKCE, token requests for
every grant, refresh, revocation, and provider failures turned into sentences that say
what happened and what to do. No database here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2 as httpx  # Authlib sends with httpx2 when it is installed (it is a dependency)
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.jwk import RSAKey

from callbridge.kit.time import utcnow
from callbridge.outbound import is_loopback_host

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
TOKEN_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
REVOKE_TIMEOUT = httpx.Timeout(5.0, connect=3.0)

FailureKind = Literal["refused", "reauthorize", "unreachable", "invalid_response"]


@dataclass(frozen=True)
class ProviderConfig:
    """An account's protocol settings with its secrets decrypted (never stored as such)."""

    provider: str
    grant_type: str
    client_id: str
    authorize_url: str | None
    token_url: str
    revoke_url: str | None
    login_url: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    use_pkce: bool = False


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    token_type: str = "Bearer"
    instance_url: str | None = None
    identity_url: str | None = None
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    scope: str | None = None


class ProviderFailure(Exception):
    """A token operation failed. ``message`` says what happened and what to do; ``kind``
    ``reauthorize`` is the provider refusing a grant (``invalid_grant``)."""

    def __init__(self, kind: FailureKind, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code


def salesforce_endpoints(login_url: str) -> tuple[str, str, str]:
    base = login_url.rstrip("/")
    return (
        f"{base}/services/oauth2/authorize",
        f"{base}/services/oauth2/token",
        f"{base}/services/oauth2/revoke",
    )


INSECURE_HTTP_MESSAGE = (
    "Plain http:// is only allowed for this machine (127.0.0.1, localhost): use https://, "
    "or set CALLBRIDGE_ALLOW_INSECURE_HTTP=true for a trusted network."
)
NOT_A_URL_MESSAGE = "Must be an absolute https:// URL."


def insecure_url_problem(url: str | None, allow_insecure_http: bool) -> str | None:
    """Why a login, token or instance URL is refused, or None (DESIGN.md §3.5)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return NOT_A_URL_MESSAGE
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return NOT_A_URL_MESSAGE
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        return INSECURE_HTTP_MESSAGE
    return None


def new_code_verifier() -> str:
    from authlib.common.security import generate_token

    return str(generate_token(64))


def _client(config: ProviderConfig, redirect_uri: str | None = None) -> AsyncOAuth2Client:
    auth_method = "client_secret_post" if config.provider == "salesforce" else "client_secret_basic"
    if not config.client_secret:
        auth_method = "none"
    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret or None,
        token_endpoint_auth_method=auth_method,
        revocation_endpoint_auth_method=auth_method,
        scope=config.scope or None,
        redirect_uri=redirect_uri,
        code_challenge_method="S256" if config.use_pkce else None,
        timeout=TOKEN_TIMEOUT,
        follow_redirects=False,
        trust_env=False,
    )


def authorization_url(
    config: ProviderConfig, redirect_uri: str, state: str, code_verifier: str | None
) -> str:
    if config.authorize_url is None:
        raise ProviderFailure("invalid_response", "this account has no authorize URL")
    client = _client(config, redirect_uri)
    url, _state = client.create_authorization_url(
        config.authorize_url, state=state, code_verifier=code_verifier
    )
    return str(url)


def jwt_audience(login_url: str | None) -> str:
    """Salesforce wants the login host as audience; sandboxes' My Domains use test."""
    base = (login_url or DEFAULT_LOGIN_URL).rstrip("/")
    host = (urlsplit(base).hostname or "").lower()
    if host.endswith(".sandbox.my.salesforce.com"):
        return SANDBOX_LOGIN_URL
    if host.endswith(".my.salesforce.com"):
        return DEFAULT_LOGIN_URL
    return base


def jwt_assertion(config: ProviderConfig, now: float | None = None) -> str:
    if not config.private_key or not config.username:
        raise ProviderFailure("refused", "the JWT bearer grant needs a username and a private key")
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": config.client_id,
        "sub": config.username,
        "aud": jwt_audience(config.login_url),
        "iat": issued,
        "exp": issued + 180,
    }
    try:
        key = RSAKey.import_key(config.private_key)
        return jwt.encode({"alg": "RS256"}, claims, key)
    except ValueError as exc:
        raise ProviderFailure(
            "refused",
            "the private key cannot sign the JWT assertion: paste the PEM RSA private key "
            "whose certificate is uploaded to the connected app",
        ) from exc


BAD_KEY_MESSAGE = (
    "Not a usable RSA private key: paste the whole unencrypted PEM text, from "
    "-----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----."
)
PUBLIC_KEY_MESSAGE = "This is a public key or a certificate: paste the private key."


def private_key_problem(pem: str) -> str | None:
    """Why a pasted private key cannot be used for the JWT bearer grant, or None."""
    try:
        RSAKey.import_key(pem.strip())
    except ValueError:
        return BAD_KEY_MESSAGE
    if "PRIVATE KEY" not in pem:
        return PUBLIC_KEY_MESSAGE
    return None


async def exchange_code(
    config: ProviderConfig, code: str, redirect_uri: str, code_verifier: str | None
) -> TokenSet:
    kwargs: dict[str, Any] = {"code": code}
    if code_verifier:
        kwargs["code_verifier"] = code_verifier
    return await _token_request(config, "authorization_code", redirect_uri, **kwargs)


async def request_token(config: ProviderConfig) -> TokenSet:
    """A token for the grants that need no browser (client_credentials, password, JWT)."""
    if config.grant_type == "client_credentials":
        return await _token_request(config, "client_credentials")
    if config.grant_type == "password":
        return await _token_request(
            config, "password", username=config.username or "", password=config.password or ""
        )
    if config.grant_type == "jwt_bearer":
        return await _token_request(config, JWT_BEARER, assertion=jwt_assertion(config))
    raise ProviderFailure(
        "refused", "the authorization-code grant needs the browser: use Connect on the account page"
    )


async def refresh(config: ProviderConfig, refresh_token: str | None) -> TokenSet:
    """A new access token: the refresh token when there is one, else the grant again."""
    if config.grant_type == "authorization_code":
        if not refresh_token:
            raise ProviderFailure(
                "reauthorize",
                "the provider gave no refresh token (add the refresh_token scope to the "
                "connected app and the account), so the account must be connected again",
                "no_refresh_token",
            )
        return await _token_request(config, "refresh_token", refresh_token=refresh_token)
    return await request_token(config)


async def revoke(config: ProviderConfig, token: str) -> None:
    """Revoke a token at the provider; raises ``ProviderFailure`` when that failed."""
    if not config.revoke_url:
        raise ProviderFailure("invalid_response", "the provider has no revocation URL configured")
    client = _client(config)
    try:
        async with client:
            response = await client.revoke_token(
                config.revoke_url, token=token, timeout=REVOKE_TIMEOUT
            )
    except httpx.HTTPError as exc:
        raise ProviderFailure(
            "unreachable", f"could not reach {config.revoke_url}: {type(exc).__name__}"
        ) from exc
    if response.status_code >= 400:
        code, description = _error_fields(response)
        raise ProviderFailure(
            "refused",
            f"the provider answered HTTP {response.status_code}"
            + (f" ({code}: {description})" if code else ""),
            code,
        )


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        data = response.json()
    except ValueError:
        return None, None
    if isinstance(data, dict):
        error = data.get("error")
        return (str(error) if error else None), data.get("error_description")
    return None, None


async def _token_request(
    config: ProviderConfig, grant_type: str, redirect_uri: str | None = None, **kwargs: Any
) -> TokenSet:
    client = _client(config, redirect_uri)
    try:
        async with client:
            token = await client.fetch_token(config.token_url, grant_type=grant_type, **kwargs)
    except OAuthError as exc:
        raise _refusal(config, grant_type, str(exc.error), exc.description) from exc
    except httpx.TimeoutException as exc:
        raise ProviderFailure(
            "unreachable",
            f"the token URL {config.token_url} did not answer in time: check the login URL "
            "and that this server can reach it",
        ) from exc
    except httpx.HTTPStatusError as exc:
        raise ProviderFailure(
            "unreachable",
            f"the token URL {config.token_url} answered HTTP {exc.response.status_code}: the "
            "provider may be down, or the login URL is wrong; try again later",
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderFailure(
            "unreachable",
            f"could not reach the token URL {config.token_url} ({type(exc).__name__}): check "
            "the login URL and this server's network access",
        ) from exc
    except ValueError as exc:
        raise ProviderFailure(
            "invalid_response",
            f"the token URL {config.token_url} did not answer with an OAuth token: is the "
            "login URL right?",
        ) from exc
    return _token_set(config, dict(token))


def _token_set(config: ProviderConfig, data: dict[str, Any]) -> TokenSet:
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderFailure("invalid_response", "the provider answered without an access token")
    _check_signature(config, data)
    issued_at: datetime | None = None
    raw_issued = data.get("issued_at")
    if isinstance(raw_issued, str) and raw_issued.isdigit():
        issued_at = datetime.fromtimestamp(int(raw_issued) / 1000, UTC)
    expires_at: datetime | None = None
    expires_in = data.get("expires_in")
    if isinstance(expires_in, int | float) and expires_in > 0:
        expires_at = (issued_at or utcnow()) + timedelta(seconds=float(expires_in))
    instance = data.get("instance_url")
    identity = data.get("id")
    refresh_token = data.get("refresh_token")
    return TokenSet(
        access_token=access,
        refresh_token=refresh_token if isinstance(refresh_token, str) else None,
        token_type=str(data.get("token_type") or "Bearer").capitalize()
        if str(data.get("token_type") or "Bearer").lower() == "bearer"
        else str(data.get("token_type")),
        instance_url=instance.rstrip("/") if isinstance(instance, str) and instance else None,
        identity_url=identity if isinstance(identity, str) else None,
        issued_at=issued_at or utcnow(),
        expires_at=expires_at,
        scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
    )


def _check_signature(config: ProviderConfig, data: dict[str, Any]) -> None:
    """Salesforce signs ``id + issued_at`` with the client secret: a mismatch means the
    answer did not come from the org that holds this connected app."""
    signature = data.get("signature")
    identity = data.get("id")
    issued_at = data.get("issued_at")
    if not (
        config.provider == "salesforce"
        and config.client_secret
        and isinstance(signature, str)
        and isinstance(identity, str)
        and isinstance(issued_at, str)
    ):
        return
    digest = hmac.new(
        config.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
        raise ProviderFailure(
            "invalid_response",
            "the token answer's signature does not match this account's client secret: check "
            "that the consumer secret belongs to the same connected app as the consumer key",
        )


_HINTS = {
    "invalid_client_id": "The consumer key (client ID) is not known at {where}: copy it again "
    "from the connected app, and check the login URL (production, sandbox or My Domain).",
    "invalid_client": "The consumer secret (client secret) is wrong: copy it again from the "
    "connected app and save the account.",
    "unauthorized_client": "The connected app does not allow this grant type: enable it in the "
    "app's OAuth settings.",
    "unsupported_grant_type": "The provider does not accept the {grant} grant for this app: "
    "enable it in the connected app's OAuth policies, or pick another grant type.",
    "redirect_uri_mismatch": "The callback URL registered in the connected app differs from "
    "the one shown on the account page: register that exact URL.",
    "invalid_scope": "A requested scope is not allowed for the app: check the account's "
    "scope against the connected app's selected OAuth scopes.",
    "invalid_request": "The provider rejected the request (PKCE verifier or a parameter): "
    "click Connect again; if it persists, check the account's PKCE setting.",
}


def _refusal(
    config: ProviderConfig, grant_type: str, error: str, description: str | None
) -> ProviderFailure:
    said = f"{error}: {description}" if description else error
    where = config.login_url or config.token_url
    if error == "invalid_grant":
        desc = (description or "").lower()
        if grant_type == "authorization_code":
            hint = "The authorization code expired or was already used: click Connect again."
        elif grant_type == "password":
            hint = (
                "The username or password was refused. Salesforce expects the user's password "
                "followed by their security token; after a password change the token changes "
                "too. Update the account's password, then connect again."
            )
        elif grant_type == JWT_BEARER:
            hint = (
                "The JWT assertion was refused: the user must be pre-authorised for the "
                "connected app (admin-approved users) and the certificate in the app must "
                "match the private key."
            )
        elif "approved" in desc or "consent" in desc:
            hint = "The user withdrew consent for the app: an administrator must connect again."
        else:
            hint = (
                "The provider no longer accepts this account's grant (revoked, expired or the "
                "user was deactivated): an administrator must connect it again."
            )
        return ProviderFailure(
            "reauthorize", f"The provider refused the grant ({said}). {hint}", error
        )
    grant = {JWT_BEARER: "JWT bearer"}.get(grant_type, grant_type.replace("_", " "))
    hint = _HINTS.get(error, "Check the account's settings against the connected app.")
    hint = hint.format(where=where, grant=grant)
    return ProviderFailure("refused", f"The provider refused the request ({said}). {hint}", error)
