"""OAuth 2.0 as Salesforce speaks it: authorize (consent page), token, revoke, identity."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from callbridge.sandbox.state import AuthorizationCode, ConnectedApp, PendingAuthorization
from callbridge.sandbox.wire import JSON_CONTENT_TYPE, NO_STORE, compact_json

if TYPE_CHECKING:
    from callbridge.sandbox.state import AccessToken, SandboxState, SandboxUser

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
PENDING_LIFETIME_SECONDS = 600.0
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-_]{43,128}$")
_REFRESH_SCOPES = frozenset({"refresh_token", "offline_access"})
_SCOPE_LABELS = {
    "api": "Access and manage your data (api)",
    "refresh_token": "Perform requests on your behalf at any time (refresh_token, offline_access)",
    "offline_access": "Perform requests on your behalf at any time (refresh_token, offline_access)",
    "full": "Full access (full)",
    "id": "Access your basic information (id, profile, email, address, phone)",
    "openid": "Access unique user identifiers (openid)",
    "web": "Provide access to your data via the Web (web)",
}


class TokenError(Exception):
    """A token-endpoint failure: ``{"error":…,"error_description":…}`` with status 400."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def oauth_json(body: Any, status: int = 200) -> Response:
    return Response(
        content=compact_json(body),
        status_code=status,
        media_type=JSON_CONTENT_TYPE,
        headers={"Cache-Control": NO_STORE, "Pragma": "no-cache"},
    )


def token_error_response(error: TokenError) -> Response:
    return oauth_json({"error": error.error, "error_description": error.description},
                      error.status)  # fmt: skip


def base_url(request: Request) -> str:
    """Where this sandbox is reached: it is the login host and the instance at once."""
    configured: str | None = getattr(request.app.state, "public_url", None)
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def signature(app: ConnectedApp, identity: str, issued_at: str) -> str:
    """Salesforce's ``signature``: base64 HMAC-SHA256 of id + issued_at, keyed by the secret."""
    digest = hmac.new(
        app.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def callback_allowed(app: ConnectedApp, redirect_uri: str) -> bool:
    if redirect_uri in app.callback_urls:
        return True
    if not app.loopback_any_port:
        return False
    wanted = urlsplit(redirect_uri)
    if wanted.hostname not in _LOOPBACK_HOSTS:
        return False
    for url in app.callback_urls:
        known = urlsplit(url)
        if (known.scheme, known.path, known.query) == (wanted.scheme, wanted.path, wanted.query):
            return True
    return False


def _with_params(url: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return url + ("&" if "?" in url else "?") + query


# --- client authentication ----------------------------------------------------------------


@dataclass
class TokenRequest:
    params: dict[str, str]
    basic_id: str | None
    basic_secret: str | None

    def get(self, name: str) -> str | None:
        return self.params.get(name)


async def read_token_request(request: Request) -> TokenRequest:
    params = {k: v[0] for k, v in parse_qs(request.url.query, keep_blank_values=True).items()}
    body = (await request.body()).decode("utf-8", errors="replace")
    params.update({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
    basic_id = basic_secret = None
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if sep:
            basic_id, basic_secret = unquote(user), unquote(password)
    return TokenRequest(params, basic_id, basic_secret)


def authenticate_client(
    state: SandboxState, token_request: TokenRequest, *, secret_required: bool
) -> ConnectedApp:
    client_id = token_request.basic_id or token_request.get("client_id")
    app = state.connected_apps.get(client_id or "")
    if app is None:
        raise TokenError("invalid_client_id", "client identifier invalid")
    secret = (
        token_request.basic_secret
        if token_request.basic_secret is not None
        else token_request.get("client_secret")
    )
    if secret is None or secret == "":
        if secret_required:
            raise TokenError("invalid_client", "invalid client credentials")
        return app
    if not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
        raise TokenError("invalid_client", "invalid client credentials")
    return app


def _app_requires_secret(state: SandboxState, token_request: TokenRequest) -> bool:
    """The web-server and refresh flows want the secret when the app says so (the default)."""
    client_id = token_request.basic_id or token_request.get("client_id") or ""
    known = state.connected_apps.get(client_id)
    return known is None or known.require_secret


# --- grants -------------------------------------------------------------------------------


def _granted_scope(app: ConnectedApp, requested: str | None) -> str:
    if not requested or not requested.strip():
        return " ".join(app.scopes)
    return " ".join(dict.fromkeys(requested.split()))


def _wants_refresh(scope: str) -> bool:
    return bool(_REFRESH_SCOPES & set(scope.split()))


def _identity(state: SandboxState, base: str, user: SandboxUser) -> str:
    return state.identity_url(base, user)


def _full_response(
    state: SandboxState,
    app: ConnectedApp,
    user: SandboxUser,
    base: str,
    access: AccessToken,
    *,
    refresh_token: str | None = None,
    with_scope: bool = True,
) -> dict[str, Any]:
    identity = _identity(state, base, user)
    issued_at = str(int(access.issued_at * 1000))
    body: dict[str, Any] = {"access_token": access.token}
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    body["signature"] = signature(app, identity, issued_at)
    if with_scope:
        body["scope"] = access.scope
    body.update(
        {"instance_url": base, "id": identity, "token_type": "Bearer", "issued_at": issued_at}
    )
    return body


def _user_or_fail(state: SandboxState, username: str, description: str) -> SandboxUser:
    user = state.user(username)
    if user is None or not user.active:
        raise TokenError("invalid_grant", description)
    return user


def grant_authorization_code(
    state: SandboxState, token_request: TokenRequest, base: str
) -> dict[str, Any]:
    value = token_request.get("code") or ""
    with state.lock:
        code = state.codes.get(value)
        app = authenticate_client(
            state, token_request, secret_required=_app_requires_secret(state, token_request)
        )
        if code is None or code.client_id != app.client_id:
            raise TokenError("invalid_grant", "invalid authorization code")
        if code.used or state.now() - code.issued_at > state.knobs.code_lifetime_seconds:
            raise TokenError("invalid_grant", "expired authorization code")
        if token_request.get("redirect_uri") != code.redirect_uri:
            raise TokenError("redirect_uri_mismatch", "redirect_uri must match configuration")
        if code.code_challenge is not None:
            verifier = token_request.get("code_verifier")
            if not verifier or not _VERIFIER_RE.match(verifier):
                raise TokenError("invalid_grant", "invalid code verifier")
            digest = hashlib.sha256(verifier.encode("ascii")).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if not hmac.compare_digest(expected, code.code_challenge):
                raise TokenError("invalid_request", "invalid code verifier")
        code.used = True
        user = _user_or_fail(state, code.username, "authentication failure")
        refresh = None
        if _wants_refresh(code.scope):
            refresh = state.issue_refresh_token(app.client_id, user.username, code.scope)
        access = state.issue_access_token(
            app.client_id, user.username, code.scope, refresh.token if refresh else None
        )
    return _full_response(
        state, app, user, base, access, refresh_token=refresh.token if refresh else None
    )


def grant_refresh_token(
    state: SandboxState, token_request: TokenRequest, base: str
) -> dict[str, Any]:
    app = authenticate_client(
        state, token_request, secret_required=_app_requires_secret(state, token_request)
    )
    with state.lock:
        refresh = state.refresh_tokens.get(token_request.get("refresh_token") or "")
        if refresh is None or refresh.client_id != app.client_id:
            raise TokenError("invalid_grant", "expired access/refresh token")
        if refresh.revoked:
            if app.rotate_refresh_tokens:
                state.revoke_refresh_family(refresh.family)  # reuse of a rotated token
            raise TokenError("invalid_grant", "expired access/refresh token")
        ttl = app.refresh_token_ttl_seconds
        if ttl is not None and state.now() - refresh.issued_at > ttl:
            raise TokenError("invalid_grant", "expired access/refresh token")
        user = _user_or_fail(state, refresh.username, "expired access/refresh token")
        rotated = None
        if app.rotate_refresh_tokens:
            refresh.revoked = True
            rotated = state.issue_refresh_token(
                app.client_id, user.username, refresh.scope, refresh.family
            )
        access = state.issue_access_token(
            app.client_id, user.username, refresh.scope, (rotated or refresh).token
        )
    return _full_response(
        state, app, user, base, access, refresh_token=rotated.token if rotated else None
    )


def _scope_without_refresh(app: ConnectedApp) -> str:
    return " ".join(s for s in app.scopes if s not in _REFRESH_SCOPES) or "api"


def grant_password(state: SandboxState, token_request: TokenRequest, base: str) -> dict[str, Any]:
    app = authenticate_client(state, token_request, secret_required=True)
    if not app.allow_password_grant:
        raise TokenError("unsupported_grant_type", "grant type not supported")
    user = state.user(token_request.get("username") or "")
    password = token_request.get("password") or ""
    expected = (user.password + user.security_token) if user else ""
    if (
        user is None
        or not user.active
        or not hmac.compare_digest(password.encode(), expected.encode())
    ):
        raise TokenError("invalid_grant", "authentication failure")
    access = state.issue_access_token(app.client_id, user.username, _scope_without_refresh(app))
    full = _full_response(state, app, user, base, access, with_scope=False)
    return {
        "access_token": full["access_token"],
        "instance_url": full["instance_url"],
        "id": full["id"],
        "token_type": full["token_type"],
        "issued_at": full["issued_at"],
        "signature": full["signature"],
    }


def grant_client_credentials(
    state: SandboxState, token_request: TokenRequest, base: str
) -> dict[str, Any]:
    app = authenticate_client(state, token_request, secret_required=True)
    if not app.client_credentials_username:
        raise TokenError("invalid_grant", "no client credentials user enabled")
    user = _user_or_fail(state, app.client_credentials_username, "authentication failure")
    access = state.issue_access_token(app.client_id, user.username, _scope_without_refresh(app))
    return _full_response(state, app, user, base, access)


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _public_key(pem: str) -> rsa.RSAPublicKey | None:
    data = pem.encode()
    try:
        key: Any = (
            x509.load_pem_x509_certificate(data).public_key()
            if b"CERTIFICATE" in data
            else serialization.load_pem_public_key(data)
        )
    except ValueError:
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


def grant_jwt_bearer(state: SandboxState, token_request: TokenRequest, base: str) -> dict[str, Any]:
    invalid = TokenError("invalid_grant", "invalid assertion")
    assertion = token_request.get("assertion") or ""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise invalid
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
        signature_bytes = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except (ValueError, binascii.Error):
        raise invalid from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise invalid
    app = state.connected_apps.get(str(claims.get("iss", "")))
    if app is None:
        raise TokenError("invalid_client_id", "client identifier invalid")
    if header.get("alg") != "RS256" or not app.certificate_pem:
        raise invalid
    key = _public_key(app.certificate_pem)
    if key is None:
        raise invalid
    try:
        key.verify(
            signature_bytes,
            f"{parts[0]}.{parts[1]}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise invalid from None
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    accepted = {*LOGIN_AUDIENCES, base, base + "/"}
    if not any(isinstance(a, str) and a in accepted for a in audiences):
        raise TokenError("invalid_grant", "audience is invalid")
    expires = claims.get("exp")
    if not isinstance(expires, (int, float)) or expires <= state.now():
        raise invalid
    user = state.user(str(claims.get("sub", "")))
    approved = app.preauthorized_usernames
    if (
        user is None
        or not user.active
        or (approved is not None and user.username.lower() not in {u.lower() for u in approved})
    ):
        raise TokenError("invalid_grant", "user hasn't approved this consumer")
    access = state.issue_access_token(app.client_id, user.username, _scope_without_refresh(app))
    return {
        "access_token": access.token,
        "scope": access.scope,
        "instance_url": base,
        "id": _identity(state, base, user),
        "token_type": "Bearer",
    }


_GRANTS = {
    "authorization_code": grant_authorization_code,
    "refresh_token": grant_refresh_token,
    "password": grant_password,
    "client_credentials": grant_client_credentials,
    JWT_BEARER: grant_jwt_bearer,
}


async def token_endpoint(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    token_request = await read_token_request(request)
    grant = _GRANTS.get(token_request.get("grant_type") or "")
    try:
        if grant is None:
            raise TokenError("unsupported_grant_type", "grant type not supported")
        return oauth_json(grant(state, token_request, base_url(request)))
    except TokenError as error:
        return token_error_response(error)


async def revoke_endpoint(request: Request) -> Response:
    """Revoking an access token ends that session; a refresh token takes its sessions along."""
    state: SandboxState = request.app.state.sandbox
    token_request = await read_token_request(request)
    value = token_request.get("token")
    if not value:
        return token_error_response(
            TokenError("unsupported_token_type", "Token type not supported")
        )
    with state.lock:
        access = state.access_tokens.get(value)
        refresh = state.refresh_tokens.get(value)
        if access is not None and not access.revoked:
            access.revoked = True
            state.dirty = True
        elif refresh is not None and not refresh.revoked:
            state.revoke_refresh_family(refresh.family)
        else:
            return token_error_response(TokenError("invalid_token", "Token was invalid"))
    return Response(status_code=200, headers={"Cache-Control": NO_STORE})


# --- identity -----------------------------------------------------------------------------


def _session_user(request: Request) -> SandboxUser | None:
    state: SandboxState = request.app.state.sandbox
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    token_value = value.strip() if scheme.lower() in ("bearer", "oauth") else ""
    token_value = token_value or request.query_params.get("oauth_token", "")
    token = state.valid_access_token(token_value) if token_value else None
    return state.user(token.username) if token else None


def _forbidden() -> Response:
    return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")


async def userinfo_endpoint(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    user = _session_user(request)
    if user is None:
        return _forbidden()
    base = base_url(request)
    name = " ".join(p for p in (user.last_name, user.first_name) if p)
    return oauth_json(
        {
            "sub": _identity(state, base, user),
            "user_id": user.user_id,
            "organization_id": state.org_id,
            "preferred_username": user.username,
            "nickname": user.username.split("@")[0],
            "name": name,
            "email": user.email,
            "email_verified": True,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "zoneinfo": "Asia/Tokyo",
            "locale": state.locale,
            "user_type": "STANDARD",
            "active": user.active,
        }
    )


async def identity_endpoint(request: Request) -> Response:
    state: SandboxState = request.app.state.sandbox
    user = _session_user(request)
    if user is None:
        return _forbidden()
    wanted = state.user_by_id(request.path_params["user_id"])
    if wanted is None or request.path_params["org_id"][:15] != state.org_id[:15]:
        return Response("Bad_Id", status_code=404, media_type="text/plain")
    base = base_url(request)
    rest = f"{base}/services/data/v{{version}}/"
    return oauth_json(
        {
            "id": _identity(state, base, wanted),
            "asserted_user": wanted.username == user.username,
            "user_id": wanted.user_id,
            "organization_id": state.org_id,
            "username": wanted.username,
            "nick_name": wanted.username.split("@")[0],
            "display_name": " ".join(p for p in (wanted.last_name, wanted.first_name) if p),
            "email": wanted.email,
            "email_verified": True,
            "first_name": wanted.first_name,
            "last_name": wanted.last_name,
            "timezone": "Asia/Tokyo",
            "active": wanted.active,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": state.locale,
            "utcOffset": 32400000,
            "urls": {
                "rest": rest,
                "sobjects": rest + "sobjects/",
                "search": rest + "search/",
                "query": rest + "query/",
                "recent": rest + "recent/",
                "profile": f"{base}/{wanted.user_id}",
                "custom_domain": base,
            },
        }
    )


# --- authorize and the consent page -------------------------------------------------------


def _error_page(error: str, description: str) -> HTMLResponse:
    text = urlencode({"error": error, "error_description": description}).replace("+", "%20")
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>OAuth Error'
        '</title></head><body><h1>OAuth Error</h1><p id="error">'
        f"{html.escape(text)}</p></body></html>",
        status_code=400,
    )


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302)


_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f3f3f3;margin:0}"
    "main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:.5rem;"
    "box-shadow:0 1px 4px #0002}h1{font-size:1.4rem;margin-top:0}label{display:block;"
    "margin:.75rem 0}input{width:100%;box-sizing:border-box;padding:.4rem}"
    ".actions{display:flex;gap:.75rem;margin-top:1.25rem}button{flex:1;padding:.6rem;"
    "font-size:1rem;cursor:pointer}#oaapprove{background:#0176d3;color:#fff;border:0}"
    ".error{color:#b00020}.note{color:#666;font-size:.8rem;margin-top:1.5rem}"
)


def consent_page(
    state: SandboxState,
    app: ConnectedApp,
    pending: PendingAuthorization,
    username: str,
    error: str | None = None,
) -> HTMLResponse:
    from callbridge.sandbox.demo import DEMO_PASSWORD, DEMO_USERNAME

    password = DEMO_PASSWORD if username.lower() == DEMO_USERNAME else ""
    scopes = "".join(
        f"<li>{html.escape(_SCOPE_LABELS.get(s, s))}</li>"
        for s in dict.fromkeys(
            "refresh_token" if s == "offline_access" else s for s in pending.scope.split()
        )
    )
    problem = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Allow Access? | Sandbox Salesforce</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><main><h1>Allow Access?</h1>{problem}"
        f"<p><strong>{html.escape(app.name)}</strong> is asking to:</p><ul>{scopes}</ul>"
        '<form method="post" action="/services/oauth2/authorize">'
        f'<input type="hidden" name="request_id" value="{html.escape(pending.request_id)}">'
        '<label>Username <input id="username" name="username" autocomplete="username" '
        f'value="{html.escape(username)}"></label>'
        '<label>Password <input id="password" name="password" type="password" '
        f'autocomplete="current-password" value="{html.escape(password)}"></label>'
        '<div class="actions"><button id="oaapprove" type="submit" name="action" '
        'value="allow">Allow</button><button id="oadeny" type="submit" name="action" '
        'value="deny">Deny</button></div></form>'
        '<p class="note">callbridge sandbox Salesforce — a local stand-in, not Salesforce.</p>'
        "</main></body></html>"
    )
    return HTMLResponse(page)


async def authorize_page(request: Request) -> Response:
    from callbridge.sandbox.demo import DEMO_USERNAME

    state: SandboxState = request.app.state.sandbox
    params = request.query_params
    app = state.connected_apps.get(params.get("client_id", ""))
    if app is None:
        return _error_page("invalid_client_id", "client identifier invalid")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri or not callback_allowed(app, redirect_uri):
        return _error_page("redirect_uri_mismatch", "redirect_uri must match configuration")
    client_state = params.get("state")

    def fail(error: str, description: str) -> Response:
        return _redirect(
            _with_params(
                redirect_uri,
                {"error": error, "error_description": description, "state": client_state},
            )
        )

    if params.get("response_type") != "code":
        return fail("unsupported_response_type", "response type not supported")
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method")
    if method and method != "S256":
        return fail("invalid_request", "invalid code challenge method")
    if app.require_pkce and not challenge:
        return fail("invalid_request", "missing required code challenge")
    allowed = set(app.scopes) | {"id", "openid", "profile", "email", "address", "phone"}
    if _REFRESH_SCOPES & allowed:
        allowed |= _REFRESH_SCOPES
    requested = params.get("scope")
    if requested and not set(requested.split()) <= allowed:
        return fail("invalid_scope", "the requested scope is not allowed")
    pending = PendingAuthorization(
        request_id=secrets.token_urlsafe(24),
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        scope=_granted_scope(app, requested),
        state=client_state,
        code_challenge=challenge,
        created_at=state.now(),
    )
    with state.lock:
        state.pending[pending.request_id] = pending
    return consent_page(state, app, pending, params.get("login_hint") or DEMO_USERNAME)


async def authorize_decision(request: Request) -> Response:
    """The consent form's answer: Deny redirects with access_denied, Allow with a code."""
    state: SandboxState = request.app.state.sandbox
    form = {
        k: v[0]
        for k, v in parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True).items()
    }
    with state.lock:
        pending = state.pending.get(form.get("request_id", ""))
        if pending is None or state.now() - pending.created_at > PENDING_LIFETIME_SECONDS:
            return _error_page("invalid_request", "authorization request expired or unknown")
        app = state.connected_apps.get(pending.client_id)
        if app is None:
            return _error_page("invalid_client_id", "client identifier invalid")
        if form.get("action") != "allow":
            del state.pending[pending.request_id]
            return _redirect(
                _with_params(
                    pending.redirect_uri,
                    {
                        "error": "access_denied",
                        "error_description": "end-user denied authorization",
                        "state": pending.state,
                    },
                )
            )
        username = form.get("username", "")
        user = state.user(username)
        if (
            user is None
            or not user.active
            or not hmac.compare_digest(form.get("password", "").encode(), user.password.encode())
        ):
            return consent_page(
                state,
                app,
                pending,
                username,
                "Please check your username and password. If you still can't log in, contact "
                "your Salesforce administrator.",
            )
        del state.pending[pending.request_id]
        code = AuthorizationCode(
            code="aPrx" + secrets.token_urlsafe(48).replace("-", "").replace("_", "") + "==",
            client_id=app.client_id,
            username=user.username,
            redirect_uri=pending.redirect_uri,
            scope=pending.scope,
            code_challenge=pending.code_challenge,
            issued_at=state.now(),
        )
        state.codes[code.code] = code
    return _redirect(
        _with_params(pending.redirect_uri, {"code": code.code, "state": pending.state})
    )
