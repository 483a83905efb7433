"""OAuth account rules: validation, encrypted secrets, connecting (browser and direct
grants), the callback, testing, deletion with revocation. Never commits."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.errors import Conflict, FieldError, FieldErrors, NotFound
from callbridge.kit.crypto import SecretBox, SecretDecryptionError, new_token, sha256_hex
from callbridge.kit.time import utcnow
from callbridge.messages import Message, as_message, define, joined
from callbridge.models import OAuthAccount, OAuthAuthorization
from callbridge.oauth_accounts import protocol, repository
from callbridge.oauth_accounts.protocol import ProviderConfig, ProviderFailure, TokenSet
from callbridge.oauth_accounts.schemas import (
    ApiUsageRead,
    OAuthAccountCreate,
    OAuthAccountRead,
    OAuthAccountUpdate,
    TestReport,
)
from callbridge.outbound import (
    EXTRAS_KEY,
    AccountLimits,
    AccountToken,
    OAuthAuth,
    Outbound,
    OutboundRequest,
    OutboundResult,
    RetryPolicy,
)
from callbridge.runtime import Runtime
from callbridge.system_settings.service import get_system_settings, svaddr

logger = logging.getLogger("callbridge.oauth")

CALLBACK_PATH = "oauth_client/callback"
AUTHORIZATION_LIFETIME = timedelta(minutes=15)
# Used authorisations are kept this long so a replayed callback is recognised as such.
AUTHORIZATION_RETENTION = timedelta(days=1)
SALESFORCE_API_VERSION = "v62.0"

define(
    {
        "not_found.oauth_account": "OAuth account {id} does not exist",
        "name_taken.oauth_account": "an OAuth account named '{name}' already exists",
        "test_not_connected": "not connected yet: click Connect first",
        "test_no_url": "no URL to test: set the base URL of the provider's API",
        "test_answered": "the API answered HTTP {status}",
        "test_answered.signed_in": "signed in as {username}",
        "test_answered.api_usage": "API requests in the last 24 h: {used} of {allowed}",
    }
)

# Changing one of these makes the stored tokens belong to another app, user or host.
_IDENTITY_FIELDS = frozenset(
    {"provider", "grant_type", "login_url", "authorize_url", "token_url", "client_id", "username"}
)


# ---- reading --------------------------------------------------------------------


async def callback_url(session: AsyncSession, runtime: Runtime) -> str:
    """``{public_url}oauth_client/callback``: what admins register at the provider."""
    current = await get_system_settings(session, runtime.settings)
    return svaddr(current.public_url, runtime.settings) + CALLBACK_PATH


def _outbound(runtime: Runtime) -> Outbound | None:
    outbound = runtime.extras.get(EXTRAS_KEY)
    return outbound if isinstance(outbound, Outbound) else None


def to_read(account: OAuthAccount, runtime: Runtime, callback: str) -> OAuthAccountRead:
    usage: ApiUsageRead | None = None
    outbound = _outbound(runtime)
    live = outbound.api_usage(account.id) if outbound is not None else None
    if live is not None:
        usage = ApiUsageRead(used=live.used, allowed=live.allowed, at=live.at)
    elif (
        account.api_usage_used is not None
        and account.api_usage_allowed is not None
        and account.api_usage_at is not None
    ):
        usage = ApiUsageRead(
            used=account.api_usage_used, allowed=account.api_usage_allowed, at=account.api_usage_at
        )
    return OAuthAccountRead(
        id=account.id,
        name=account.name,
        provider=account.provider,
        grant_type=account.grant_type,
        login_url=account.login_url,
        authorize_url=account.authorize_url,
        token_url=account.token_url,
        revoke_url=account.revoke_url,
        base_url=account.base_url,
        client_id=account.client_id,
        client_secret_set=account.client_secret_enc is not None,
        scope=account.scope,
        username=account.username,
        password_set=account.password_enc is not None,
        private_key_set=account.private_key_enc is not None,
        use_pkce=account.use_pkce,
        max_in_flight=account.max_in_flight,
        long_request_limit=account.long_request_limit,
        status=account.status,
        status_detail=account.status_detail,
        instance_url=account_instance_url(account),
        identity_url=account.identity_url,
        connected_at=account.connected_at,
        issued_at=account.issued_at,
        api_usage=usage,
        callback_url=callback,
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


def account_instance_url(account: OAuthAccount) -> str | None:
    """Salesforce: the token's ``instance_url``; generic: that, else the base URL."""
    return account.instance_url or (account.base_url.rstrip("/") if account.base_url else None)


async def get_account_or_404(session: AsyncSession, account_id: int) -> OAuthAccount:
    account = await repository.get_account(session, account_id)
    if account is None:
        raise NotFound(Message("not_found.oauth_account", id=account_id))
    return account


def endpoints_of(account: OAuthAccount) -> tuple[str | None, str | None, str | None]:
    if account.provider == "salesforce":
        return protocol.salesforce_endpoints(account.login_url or protocol.DEFAULT_LOGIN_URL)
    return account.authorize_url, account.token_url, account.revoke_url


def provider_config(account: OAuthAccount, secrets: SecretBox) -> ProviderConfig:
    authorize, token, revoke = endpoints_of(account)
    return ProviderConfig(
        provider=account.provider,
        grant_type=account.grant_type,
        client_id=account.client_id,
        authorize_url=authorize,
        token_url=token or "",
        revoke_url=revoke,
        login_url=account.login_url,
        client_secret=_decrypt(secrets, account.client_secret_enc),
        scope=account.scope,
        username=account.username,
        password=_decrypt(secrets, account.password_enc),
        private_key=_decrypt(secrets, account.private_key_enc),
        use_pkce=account.use_pkce,
    )


def _decrypt(secrets: SecretBox, value: str | None) -> str | None:
    return secrets.decrypt(value) if value is not None else None


def account_token(account: OAuthAccount, secrets: SecretBox) -> AccountToken:
    """The account as the outbound path sees it."""
    try:
        access = _decrypt(secrets, account.access_token_enc)
    except SecretDecryptionError as exc:
        return AccountToken(
            account_id=account.id,
            name=account.name,
            status="needs_reauthorization",
            status_detail=str(exc),
            instance_url=account_instance_url(account),
            version=account.token_version,
        )
    return AccountToken(
        account_id=account.id,
        name=account.name,
        status=account.status,  # type: ignore[arg-type]
        status_detail=account.status_detail,
        access_token=access,
        token_type=account.token_type,
        instance_url=account_instance_url(account),
        version=account.token_version,
        expires_at=account.expires_at,
        limits=AccountLimits(account.max_in_flight, account.long_request_limit),
    )


# ---- writing --------------------------------------------------------------------


REQUIRED = "This field is required."
REQUIRED_FOR_GENERIC = "Required for a generic OAuth 2 provider."
REQUIRED_FOR_GRANT = "Required for this grant type."
REQUIRED_PASSWORD = (
    "Required for the password grant: for Salesforce, the user's password followed by "
    "their security token."
)
REQUIRED_SECRET = "Required unless PKCE is enabled (a public client has no secret)."


SECRET_FIELDS = ("client_secret", "password", "private_key")


def _validate(
    account: OAuthAccount, runtime: Runtime, has: dict[str, bool], *, secrets_later: bool = False
) -> list[str]:
    """Everything the stored account needs for its provider and grant, all at once.
    With ``secrets_later`` (an imported account: documents hold no secrets) a missing
    secret is no error: the names of the missing ones are returned instead."""
    errors: list[FieldError] = []
    allow = runtime.settings.allow_insecure_http
    urls = (
        ("login_url",)
        if account.provider == "salesforce"
        else ("authorize_url", "token_url", "revoke_url", "base_url")
    )
    if account.provider == "generic":
        required = ["token_url"]
        if account.grant_type == "authorization_code":
            required.append("authorize_url")
        errors += [FieldError(n, REQUIRED_FOR_GENERIC) for n in required if not getattr(account, n)]
    for name in urls:
        problem = protocol.insecure_url_problem(getattr(account, name), allow)
        if problem:
            errors.append(FieldError(name, problem))
    if not account.client_id:
        errors.append(FieldError("client_id", REQUIRED))
    grant = account.grant_type
    if grant in ("client_credentials", "password") and not has["client_secret"]:
        errors.append(FieldError("client_secret", REQUIRED_FOR_GRANT))
    if grant in ("password", "jwt_bearer") and not account.username:
        errors.append(FieldError("username", REQUIRED_FOR_GRANT))
    if grant == "password" and not has["password"]:
        errors.append(FieldError("password", REQUIRED_PASSWORD))
    if grant == "jwt_bearer" and not has["private_key"]:
        errors.append(FieldError("private_key", REQUIRED_FOR_GRANT))
    if grant == "authorization_code" and not has["client_secret"] and not account.use_pkce:
        errors.append(FieldError("client_secret", REQUIRED_SECRET))
    missing: list[str] = []
    if secrets_later:
        missing = list(dict.fromkeys(e.loc[0] for e in errors if e.loc[0] in SECRET_FIELDS))
        errors = [e for e in errors if e.loc[0] not in SECRET_FIELDS]
    if errors:
        raise FieldErrors(errors) if len(errors) > 1 else errors[0]
    return missing


def _check_private_key(value: str | None) -> None:
    if value:
        problem = protocol.private_key_problem(value)
        if problem:
            raise FieldError("private_key", problem)


SECRETS_TO_ENTER = "Created without {names}: enter it on the account's page before connecting."


async def create_account(
    session: AsyncSession,
    runtime: Runtime,
    data: OAuthAccountCreate,
    actor: str,
    *,
    secrets_later: bool = False,
) -> OAuthAccount:
    """``secrets_later``: a missing secret is entered afterwards (configuration import)."""
    if await repository.get_account_by_name(session, data.name) is not None:
        raise Conflict(Message("name_taken.oauth_account", name=data.name), field="name")
    _check_private_key(data.private_key)
    account = _new_account(data, runtime.secrets)
    missing = _validate(account, runtime, _secrets_present(account), secrets_later=secrets_later)
    if missing:
        account.status_detail = SECRETS_TO_ENTER.format(names=", ".join(missing))
    session.add(account)
    await session.flush()
    record_audit(
        session,
        actor,
        "oauth_account.create",
        account.name,
        provider=account.provider,
        grant_type=account.grant_type,
    )
    return account


def _new_account(data: OAuthAccountCreate, secrets: SecretBox) -> OAuthAccount:
    return OAuthAccount(
        name=data.name,
        provider=data.provider,
        grant_type=data.grant_type,
        login_url=_clean_url(data.login_url) if data.provider == "salesforce" else None,
        authorize_url=data.authorize_url or None,
        token_url=data.token_url or None,
        revoke_url=data.revoke_url or None,
        base_url=_clean_url(data.base_url),
        client_id=data.client_id,
        client_secret_enc=secrets.encrypt(data.client_secret) if data.client_secret else None,
        scope=data.scope,
        username=data.username or None,
        password_enc=secrets.encrypt(data.password) if data.password else None,
        private_key_enc=secrets.encrypt(data.private_key.strip()) if data.private_key else None,
        use_pkce=data.use_pkce,
        max_in_flight=data.max_in_flight,
        long_request_limit=data.long_request_limit,
        status="not_connected",
        status_detail="",
        token_type="Bearer",
        token_version=0,
    )


def _clean_url(value: str | None) -> str | None:
    return value.rstrip("/") if value else None


def _secrets_present(account: OAuthAccount) -> dict[str, bool]:
    return {
        "client_secret": account.client_secret_enc is not None,
        "password": account.password_enc is not None,
        "private_key": account.private_key_enc is not None,
    }


async def update_account(
    session: AsyncSession,
    runtime: Runtime,
    account: OAuthAccount,
    data: OAuthAccountUpdate,
    actor: str,
) -> OAuthAccount:
    changes = data.model_dump(exclude_unset=True)
    if changes.get("name") and changes["name"].casefold() != account.name.casefold():
        other = await repository.get_account_by_name(session, changes["name"])
        if other is not None and other.id != account.id:
            raise Conflict(Message("name_taken.oauth_account", name=changes["name"]), field="name")
    _check_private_key(changes.get("private_key"))
    secrets = runtime.secrets
    identity_changed = False
    for name, value in changes.items():
        if name in ("client_secret", "password", "private_key"):
            if value is None:
                continue  # left out: kept
            column = f"{name}_enc"
            stored = secrets.encrypt(value.strip() if name == "private_key" else value)
            setattr(account, column, stored if value else None)
            continue
        if value is None and name in (
            "name",
            "provider",
            "grant_type",
            "client_id",
            "scope",
            "use_pkce",
            "max_in_flight",
            "long_request_limit",
        ):
            continue
        if name in ("login_url", "base_url"):
            value = _clean_url(value)
        if name in ("authorize_url", "token_url", "revoke_url", "username"):
            value = value or None
        if name in _IDENTITY_FIELDS and getattr(account, name) != value:
            identity_changed = True
        setattr(account, name, value)
    if account.provider == "salesforce":
        account.login_url = account.login_url or protocol.DEFAULT_LOGIN_URL
    _validate(account, runtime, _secrets_present(account))
    if identity_changed and account.status != "not_connected":
        _clear_tokens(account, "the account's settings changed: connect it again")
        account.status = "not_connected"
    await session.flush()
    _forget(runtime, account.id)
    record_audit(
        session, actor, "oauth_account.update", account.name, fields=sorted(data.model_fields_set)
    )
    return account


def _forget(runtime: Runtime, account_id: int) -> None:
    outbound = _outbound(runtime)
    if outbound is not None:
        outbound.forget_account(account_id)


def _clear_tokens(account: OAuthAccount, detail: str) -> None:
    account.access_token_enc = None
    account.refresh_token_enc = None
    account.expires_at = None
    account.token_version += 1
    account.status_detail = detail


def store_tokens(account: OAuthAccount, tokens: TokenSet, runtime: Runtime) -> None:
    """Keep a new token set (encrypted) and mark the account connected.
    Raises ``ProviderFailure`` when the instance URL is not acceptable."""
    instance = tokens.instance_url or account.instance_url
    problem = protocol.insecure_url_problem(instance, runtime.settings.allow_insecure_http)
    if problem:
        raise ProviderFailure(
            "invalid_response", f"the provider's instance URL {instance} {problem}"
        )
    secrets = runtime.secrets
    account.access_token_enc = secrets.encrypt(tokens.access_token)
    if tokens.refresh_token:
        account.refresh_token_enc = secrets.encrypt(tokens.refresh_token)
    account.token_type = tokens.token_type
    account.instance_url = instance
    account.identity_url = tokens.identity_url or account.identity_url
    account.issued_at = tokens.issued_at
    account.expires_at = tokens.expires_at
    account.token_version += 1
    account.status = "connected"
    account.status_detail = ""


def mark_reauthorization(account: OAuthAccount, message: str) -> None:
    account.access_token_enc = None
    account.expires_at = None
    account.status = "needs_reauthorization"
    account.status_detail = message
    account.token_version += 1


# ---- connecting -----------------------------------------------------------------


@dataclass(frozen=True)
class ConnectOutcome:
    ok: bool
    message: str
    failure: ProviderFailure | None = None


async def start_authorization(
    session: AsyncSession,
    runtime: Runtime,
    account: OAuthAccount,
    *,
    user_id: int | None,
    session_cookie: str | None,
) -> str:
    """The provider's authorize URL for the admin's browser; ``state`` is bound to the
    admin's session (or, for API tokens, to any signed-in admin)."""
    if account.grant_type != "authorization_code":
        raise FieldError("grant_type", "only the authorization_code grant uses the browser")
    now = utcnow()
    await repository.delete_stale_authorizations(session, now - AUTHORIZATION_RETENTION)
    state = new_token(32)
    verifier = protocol.new_code_verifier() if account.use_pkce else None
    redirect_uri = await callback_url(session, runtime)
    config = provider_config(account, runtime.secrets)
    url = protocol.authorization_url(config, redirect_uri, state, verifier)
    session.add(
        OAuthAuthorization(
            state_hash=sha256_hex(state),
            account_id=account.id,
            session_hash=sha256_hex(session_cookie) if session_cookie else None,
            user_id=user_id,
            redirect_uri=redirect_uri,
            code_verifier_enc=runtime.secrets.encrypt(verifier) if verifier else None,
            created_at=now,
            expires_at=now + AUTHORIZATION_LIFETIME,
        )
    )
    await session.flush()
    return url


CallbackProblem = Literal[
    "missing_state",
    "unknown_state",
    "replayed",
    "expired",
    "other_session",
    "denied",
    "provider_error",
    "missing_code",
    "exchange_failed",
    "account_missing",
]


@dataclass(frozen=True)
class CallbackOutcome:
    ok: bool
    problem: CallbackProblem | None = None
    detail: str = ""
    account: OAuthAccount | None = None


async def complete_authorization(
    session: AsyncSession,
    runtime: Runtime,
    params: dict[str, str],
    *,
    session_cookie: str | None,
) -> CallbackOutcome:
    """Handle ``GET /oauth_client/callback``. Nothing about the account changes unless
    the code is exchanged successfully; the authorisation is used up either way."""
    state = params.get("state", "")
    if not state:
        return CallbackOutcome(False, "missing_state")
    pending = await repository.get_authorization(session, sha256_hex(state))
    if pending is None:
        return CallbackOutcome(False, "unknown_state")
    account = await repository.get_account(session, pending.account_id)
    if account is None:
        return CallbackOutcome(False, "account_missing")
    if pending.used_at is not None:
        return CallbackOutcome(False, "replayed", account=account)
    if pending.session_hash is not None and (
        session_cookie is None or sha256_hex(session_cookie) != pending.session_hash
    ):
        return CallbackOutcome(False, "other_session", account=account)
    now = utcnow()
    pending.used_at = now
    if pending.expires_at <= now:
        return CallbackOutcome(False, "expired", account=account)
    error = params.get("error")
    if error:
        description = params.get("error_description", "")
        problem: CallbackProblem = "denied" if error == "access_denied" else "provider_error"
        return CallbackOutcome(False, problem, f"{error}: {description}".strip(": "), account)
    code = params.get("code")
    if not code:
        return CallbackOutcome(False, "missing_code", account=account)
    verifier = _decrypt(runtime.secrets, pending.code_verifier_enc)
    config = provider_config(account, runtime.secrets)
    try:
        tokens = await protocol.exchange_code(config, code, pending.redirect_uri, verifier)
        store_tokens(account, tokens, runtime)
    except ProviderFailure as failure:
        return CallbackOutcome(False, "exchange_failed", failure.message, account)
    account.connected_at = now
    _forget(runtime, account.id)
    record_audit(
        session,
        f"user:{pending.user_id}" if pending.user_id else "oauth",
        "oauth_account.connect",
        account.name,
        grant_type=account.grant_type,
    )
    return CallbackOutcome(True, account=account)


async def connect_direct(
    session: AsyncSession, runtime: Runtime, account: OAuthAccount, actor: str
) -> ConnectOutcome:
    """Request a token now (client_credentials, password, jwt_bearer). On failure the
    account keeps its tokens and shows status ``error`` with the provider's message."""
    config = provider_config(account, runtime.secrets)
    try:
        tokens = await protocol.request_token(config)
        store_tokens(account, tokens, runtime)
    except ProviderFailure as failure:
        account.status = "error"
        account.status_detail = failure.message
        await session.flush()
        _forget(runtime, account.id)
        record_audit(
            session,
            actor,
            "oauth_account.connect_failed",
            account.name,
            reason=failure.code or failure.kind,
        )
        return ConnectOutcome(False, failure.message, failure)
    account.connected_at = utcnow()
    await session.flush()
    _forget(runtime, account.id)
    record_audit(
        session, actor, "oauth_account.connect", account.name, grant_type=account.grant_type
    )
    return ConnectOutcome(True, "connected")


# ---- testing and deleting -------------------------------------------------------


async def test_account(
    session: AsyncSession, runtime: Runtime, account: OAuthAccount
) -> TestReport:
    """Call the provider with the account's token (refreshing it on 401, through the
    outbound path) and say what was found."""
    callback = await callback_url(session, runtime)
    outbound = _outbound(runtime)
    if account.status == "not_connected" or outbound is None:
        return TestReport.of(Message("test_not_connected"), ok=False, status=account.status)
    instance = account_instance_url(account)
    if account.provider == "salesforce":
        target = f"{instance}/services/data/{SALESFORCE_API_VERSION}/limits/" if instance else None
    else:
        target = account.base_url
    if not target:
        return TestReport.of(Message("test_no_url"), ok=False, status=account.status)
    result = await _get(outbound, account.id, target)
    username = organization = None
    if result.ok and account.provider == "salesforce" and account.identity_url:
        identity = await _get(outbound, account.id, account.identity_url)
        data = _json_object(identity.text) if identity.ok else {}
        username = data.get("username")
        organization = data.get("organization_id")
    # The outbound path may have refreshed the token (another session): read it fresh.
    async with runtime.sessionmaker() as fresh:
        current = await repository.get_account(fresh, account.id)
    read = to_read(current or account, runtime, callback)
    if result.error is not None:
        return TestReport.of(
            as_message(result.error.said),
            ok=False,
            status=read.status,
            instance_url=read.instance_url,
            http_status=result.status,
            api_usage=read.api_usage,
        )
    parts = [Message("test_answered", status=str(result.status))]
    if isinstance(username, str):
        parts.append(Message("test_answered.signed_in", username=username))
    if read.api_usage is not None:
        usage = read.api_usage
        parts.append(Message("test_answered.api_usage", used=usage.used, allowed=usage.allowed))
    return TestReport.of(
        joined(*parts),
        ok=True,
        status=read.status,
        instance_url=read.instance_url,
        http_status=result.status,
        username=username if isinstance(username, str) else None,
        organization_id=organization if isinstance(organization, str) else None,
        api_usage=read.api_usage,
    )


async def _get(outbound: Outbound, account_id: int, url: str) -> OutboundResult:
    return await outbound.send(
        OutboundRequest(
            "GET",
            url,
            headers=[("Accept", "application/json")],
            timeout=15,
            auth=OAuthAuth(account_id),
            retry=RetryPolicy.NONE,
        )
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class RevocationReport:
    attempted: bool
    ok: bool
    message: str


REVOKED_LATER = "tokens are revoked once the change is committed"


async def delete_account(
    session: AsyncSession,
    runtime: Runtime,
    account: OAuthAccount,
    actor: str,
    *,
    revoke_now: bool = True,
) -> RevocationReport:
    """Delete the account after revoking its tokens at the provider (best effort).
    Without ``revoke_now`` the caller revokes them with ``revoke_tokens`` once its
    transaction is committed (a rolled-back deletion keeps working tokens)."""
    report = (
        await revoke_tokens(account, runtime)
        if revoke_now
        else RevocationReport(False, True, REVOKED_LATER)
    )
    await session.delete(account)
    await session.flush()
    _forget(runtime, account.id)
    record_audit(session, actor, "oauth_account.delete", account.name, revocation=report.message)
    return report


async def revoke_tokens(account: OAuthAccount, runtime: Runtime) -> RevocationReport:
    try:
        token = _decrypt(runtime.secrets, account.refresh_token_enc) or _decrypt(
            runtime.secrets, account.access_token_enc
        )
    except SecretDecryptionError:
        return RevocationReport(True, False, "the stored token could not be decrypted")
    if not token:
        return RevocationReport(False, True, "no token to revoke")
    config = provider_config(account, runtime.secrets)
    if not config.revoke_url:
        return RevocationReport(
            False, False, "no revocation URL: revoke the app's access at the provider by hand"
        )
    try:
        await protocol.revoke(config, token)
    except ProviderFailure as failure:
        logger.warning(
            "revoking the tokens of OAuth account %s failed: %s", account.name, failure.message
        )
        return RevocationReport(
            True,
            False,
            f"revoking at the provider failed ({failure.message}); revoke the "
            "app's access at the provider by hand",
        )
    return RevocationReport(True, True, "tokens revoked at the provider")
