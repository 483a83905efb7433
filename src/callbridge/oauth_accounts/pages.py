"""OAuth account pages (list, create, edit, connect, test, delete) and the provider's
callback ``/oauth_client/callback``: built on the same service as the JSON API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.rendering import (
    Banner,
    add_template_dir,
    form_errors,
    form_values,
    gettext_for,
    render,
)
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.auth.sessions import SESSION_COOKIE
from callbridge.db.session import SessionDep
from callbridge.errors import Conflict, FieldError, FieldErrors
from callbridge.models import OAuthAccount, User
from callbridge.oauth_accounts import protocol, repository, service
from callbridge.oauth_accounts.schemas import OAuthAccountCreate, OAuthAccountUpdate, TestReport
from callbridge.outbound import DEFAULT_LIMITS
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).resolve().parent / "templates"


add_template_dir(TEMPLATES)

NAV_KEY = "oauth_accounts"
LOGIN_CHOICES = {
    "production": protocol.DEFAULT_LOGIN_URL,
    "sandbox": protocol.SANDBOX_LOGIN_URL,
}
_FIELDS = (
    "name",
    "provider",
    "grant_type",
    "login_url",
    "authorize_url",
    "token_url",
    "revoke_url",
    "base_url",
    "client_id",
    "scope",
    "username",
)
_LIMITS = ("max_in_flight", "long_request_limit")
_SECRETS = ("client_secret", "password", "private_key")


async def reauthorization_banner(
    request: Request, session: AsyncSession, user: User, _: Callable[[str], str]
) -> list[Banner]:
    """Shown on every admin page while an account needs an admin to reconnect it."""
    names = await repository.names_needing_reauthorization(session)
    if not names:
        return []
    return [
        Banner(
            "error",
            _(
                "OAuth account needs to be reconnected: {names}. Requests that use it fail "
                "until an administrator clicks Connect."
            ).format(names=", ".join(names)),
            "/oauth-accounts",
            _("Open OAuth accounts"),
        )
    ]


def _login_choice(login_url: str | None) -> str:
    for key, url in LOGIN_CHOICES.items():
        if login_url == url:
            return key
    return "custom"


def _chosen_login(values: dict[str, str]) -> str:
    """The login choice of a submitted form: a typed My Domain URL means "custom" (a
    newcomer types it and leaves the choice at Production; the URL is never dropped)."""
    if values.get("login_url", "").strip():
        return "custom"
    return values.get("login_choice", "production")


def _form(account: OAuthAccount | None, values: dict[str, str] | None = None) -> dict[str, Any]:
    if values is not None:
        form: dict[str, Any] = {name: values.get(name, "") for name in _FIELDS}
        form["login_choice"] = _chosen_login(values)
        form["use_pkce"] = values.get("use_pkce") == "1"
        form.update({name: values.get(name, "") for name in _LIMITS})
    elif account is not None:
        form = {name: getattr(account, name) or "" for name in _FIELDS}
        form["login_choice"] = _login_choice(account.login_url)
        form["use_pkce"] = account.use_pkce
        form.update({name: str(getattr(account, name)) for name in _LIMITS})
    else:
        form = {name: "" for name in _FIELDS}
        form.update(
            provider="salesforce",
            grant_type="authorization_code",
            login_choice="production",
            scope="api refresh_token",
            use_pkce=False,
            max_in_flight=str(DEFAULT_LIMITS.max_in_flight),
            long_request_limit=str(DEFAULT_LIMITS.long_request_limit),
        )
    if form["login_choice"] != "custom":
        form["login_url"] = ""
    return form


def _submitted(values: dict[str, str], *, creating: bool) -> dict[str, Any]:
    """Form values as API fields: empty secrets mean "keep" when editing."""
    data: dict[str, Any] = {name: values.get(name, "").strip() for name in _FIELDS}
    if data["provider"] == "salesforce":
        choice = _chosen_login(values)
        data["login_url"] = LOGIN_CHOICES.get(choice) or data["login_url"] or None
    for name in ("login_url", "authorize_url", "token_url", "revoke_url", "base_url", "username"):
        data[name] = data[name] or None
    data["use_pkce"] = values.get("use_pkce") == "1"
    for name in _LIMITS:
        if name in values:  # a number, checked by the schema like the API's
            data[name] = values[name].strip()
    for name in _SECRETS:
        value = values.get(name, "")
        if values.get(f"clear_{name}") == "1":
            data[name] = ""
        elif value.strip():
            data[name] = value
        elif creating:
            data[name] = None
    return data


def _field_errors(exc: Exception, _: Callable[[str], str]) -> dict[str, str]:
    if isinstance(exc, ValidationError):
        return {name: _(message) for name, message in form_errors(exc, _).items()}
    if isinstance(exc, FieldErrors):
        return {e.loc[-1]: _(e.message) for e in exc.errors}
    if isinstance(exc, FieldError):
        return {exc.loc[-1]: _(exc.message)}
    if isinstance(exc, Conflict):
        return {"name": _("An OAuth account with this name already exists.")}
    raise exc


async def _render_form(
    request: Request,
    session: SessionDep,
    user: User,
    account: OAuthAccount | None,
    *,
    form: dict[str, Any],
    errors: dict[str, str] | None = None,
    flash: str | None = None,
    problem: str | None = None,
    report: TestReport | None = None,
    status_code: int = 200,
) -> Response:
    runtime = get_runtime(request)
    _ = gettext_for(request, user)
    callback = await service.callback_url(session, runtime)
    read = service.to_read(account, runtime, callback) if account is not None else None
    return await render(
        request,
        "oauth_accounts/form.html",
        {
            "title": account.name if account else _("New OAuth account"),
            "account": read,
            "form": form,
            "errors": errors or {},
            "flash": flash,
            "problem": problem,
            "report": report,
            "callback_url": callback,
            "secrets_set": {
                "client_secret": bool(read and read.client_secret_set),
                "password": bool(read and read.password_set),
                "private_key": bool(read and read.private_key_set),
            },
        },
        user=user,
        session=session,
        active=NAV_KEY,
        status_code=status_code,
    )


@router.get("/oauth-accounts")
async def list_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    runtime = get_runtime(request)
    rows, _total = await repository.list_accounts(session, 500, 0)
    callback = await service.callback_url(session, runtime)
    _ = gettext_for(request, user)
    flash = None
    if request.query_params.get("deleted"):
        flash = _("The OAuth account was deleted.")
    return await render(
        request,
        "oauth_accounts/list.html",
        {
            "accounts": [service.to_read(a, runtime, callback) for a in rows],
            "flash": flash,
            "notice": request.query_params.get("revocation"),
            "callback_url": callback,
        },
        user=user,
        session=session,
        active=NAV_KEY,
    )


@router.get("/oauth-accounts/new")
async def new_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return await _render_form(request, session, user, None, form=_form(None))


@router.post("/oauth-accounts/new", dependencies=[CsrfChecked])
async def create(request: Request, session: SessionDep, user: AdminUser) -> Response:
    values = await form_values(request)
    _ = gettext_for(request, user)
    try:
        data = OAuthAccountCreate.model_validate(_submitted(values, creating=True))
        account = await service.create_account(
            session, get_runtime(request), data, f"user:{user.username}"
        )
    except (ValidationError, FieldError, FieldErrors, Conflict) as exc:
        # The service validates before adding anything: there is nothing to undo.
        return await _render_form(
            request,
            session,
            user,
            None,
            form=_form(None, values),
            errors=_field_errors(exc, _),
            status_code=422,
        )
    return RedirectResponse(f"/oauth-accounts/{account.id}?saved=1", status_code=303)


@router.get("/oauth-accounts/{account_id}")
async def detail_page(
    request: Request, session: SessionDep, user: AdminUser, account_id: int
) -> Response:
    account = await service.get_account_or_404(session, account_id)
    _ = gettext_for(request, user)
    flash = None
    if request.query_params.get("saved"):
        flash = _("Saved.")
    elif request.query_params.get("connected"):
        flash = _("Connected: callbridge can now call the API with this account.")
    return await _render_form(request, session, user, account, form=_form(account), flash=flash)


@router.post("/oauth-accounts/{account_id}", dependencies=[CsrfChecked])
async def update(
    request: Request, session: SessionDep, user: AdminUser, account_id: int
) -> Response:
    account = await service.get_account_or_404(session, account_id)
    values = await form_values(request)
    _ = gettext_for(request, user)
    try:
        data = OAuthAccountUpdate.model_validate(_submitted(values, creating=False))
        await service.update_account(
            session, get_runtime(request), account, data, f"user:{user.username}"
        )
    except (ValidationError, FieldError, FieldErrors, Conflict) as exc:
        # Drop the refused changes (nothing was flushed): the account stays as stored.
        await session.refresh(account)
        return await _render_form(
            request,
            session,
            user,
            account,
            form=_form(account, values),
            errors=_field_errors(exc, _),
            status_code=422,
        )
    return RedirectResponse(f"/oauth-accounts/{account.id}?saved=1", status_code=303)


@router.post("/oauth-accounts/{account_id}/connect", dependencies=[CsrfChecked])
async def connect(
    request: Request, session: SessionDep, user: AdminUser, account_id: int
) -> Response:
    runtime = get_runtime(request)
    account = await service.get_account_or_404(session, account_id)
    _ = gettext_for(request, user)
    if account.grant_type == "authorization_code":
        url = await service.start_authorization(
            session,
            runtime,
            account,
            user_id=user.id,
            session_cookie=request.cookies.get(SESSION_COOKIE),
        )
        return RedirectResponse(url, status_code=303)
    outcome = await service.connect_direct(session, runtime, account, f"user:{user.username}")
    if outcome.ok:
        return RedirectResponse(f"/oauth-accounts/{account.id}?connected=1", status_code=303)
    return await _render_form(
        request,
        session,
        user,
        account,
        form=_form(account),
        problem=_("Connecting failed. The provider said:") + " " + outcome.message,
        status_code=400 if outcome.failure and outcome.failure.kind != "unreachable" else 502,
    )


@router.post("/oauth-accounts/{account_id}/test", dependencies=[CsrfChecked])
async def test(request: Request, session: SessionDep, user: AdminUser, account_id: int) -> Response:
    account = await service.get_account_or_404(session, account_id)
    report = await service.test_account(session, get_runtime(request), account)
    return await _render_form(request, session, user, account, form=_form(account), report=report)


@router.post("/oauth-accounts/{account_id}/delete", dependencies=[CsrfChecked])
async def delete(
    request: Request, session: SessionDep, user: AdminUser, account_id: int
) -> Response:
    account = await service.get_account_or_404(session, account_id)
    report = await service.delete_account(
        session, get_runtime(request), account, f"user:{user.username}"
    )
    _ = gettext_for(request, user)
    if report.ok and report.attempted:
        notice = _("Its tokens were revoked at the provider.")
    elif report.ok:
        notice = _("It had no tokens to revoke.")
    else:
        notice = _("Revoking its tokens at the provider failed:") + " " + report.message
    runtime = get_runtime(request)
    rows, _total = await repository.list_accounts(session, 500, 0)
    callback = await service.callback_url(session, runtime)
    return await render(
        request,
        "oauth_accounts/list.html",
        {
            "accounts": [service.to_read(a, runtime, callback) for a in rows],
            "flash": _("The OAuth account was deleted."),
            "notice": notice,
            "callback_url": callback,
        },
        user=user,
        session=session,
        active=NAV_KEY,
    )


# ---- the provider's callback ------------------------------------------------------


def _problem_texts(problem: str, _: Callable[[str], str]) -> tuple[str, str]:
    """(what happened, what to do) for a failed callback."""
    texts = {
        "missing_state": (
            _("The answer from the provider has no state parameter."),
            _("Start again with Connect on the OAuth account's page."),
        ),
        "unknown_state": (
            _("This answer does not belong to a Connect started here (state mismatch)."),
            _("Start again with Connect on the OAuth account's page."),
        ),
        "replayed": (
            _("This authorization answer was already used."),
            _("Nothing was changed. If the account is not connected, click Connect again."),
        ),
        "expired": (
            _("The authorization took too long and expired."),
            _("Click Connect again and approve access within 15 minutes."),
        ),
        "other_session": (
            _("This authorization was started in another browser session."),
            _("Click Connect again in this browser."),
        ),
        "denied": (
            _("Access was denied at the provider."),
            _("Click Connect again and choose Allow on the provider's page."),
        ),
        "provider_error": (
            _("The provider reported an error."),
            _(
                "Check the connected app's settings (callback URL, OAuth scopes), then click "
                "Connect again."
            ),
        ),
        "missing_code": (
            _("The provider's answer has no authorization code."),
            _("Click Connect again."),
        ),
        "exchange_failed": (
            _("The authorization code could not be exchanged for a token."),
            _(
                "Read the provider's message below, fix the account's settings if needed, then "
                "click Connect again."
            ),
        ),
        "account_missing": (
            _("The OAuth account no longer exists."),
            _("Create the account again, then connect it."),
        ),
    }
    return texts[problem]


@router.get("/oauth_client/callback")
async def oauth_callback(request: Request, session: SessionDep, user: AdminUser) -> Response:
    runtime = get_runtime(request)
    params = {k: v for k, v in request.query_params.items()}
    outcome = await service.complete_authorization(
        session, runtime, params, session_cookie=request.cookies.get(SESSION_COOKIE)
    )
    if outcome.ok and outcome.account is not None:
        return RedirectResponse(
            f"/oauth-accounts/{outcome.account.id}?connected=1", status_code=303
        )
    _ = gettext_for(request, user)
    what, todo = _problem_texts(outcome.problem or "provider_error", _)
    return await render(
        request,
        "oauth_accounts/callback.html",
        {
            "what": what,
            "todo": todo,
            "detail": outcome.detail,
            "account_id": outcome.account.id if outcome.account else None,
            "account_name": outcome.account.name if outcome.account else None,
        },
        user=user,
        session=session,
        active=NAV_KEY,
        status_code=400,
    )
