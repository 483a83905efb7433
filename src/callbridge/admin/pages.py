"""Dashboard, users, tokens and settings pages: built on the same services as the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.rendering import N_, form_errors, form_values, gettext_for, render
from callbridge.auth.deps import AdminUser, CsrfChecked, CurrentUser, admin_user
from callbridge.auth.sessions import SOFTPHONE, count_sessions
from callbridge.db.session import SessionDep
from callbridge.errors import Conflict, FieldError
from callbridge.runtime import get_runtime
from callbridge.system_settings import service as system_settings
from callbridge.system_settings.schemas import SystemSettingsUpdate
from callbridge.tokens import service as tokens
from callbridge.tokens.schemas import TokenCreate
from callbridge.users import repository as user_repository
from callbridge.users import service as users
from callbridge.users.schemas import UserCreate, UserUpdate

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Card:
    label: str
    value: object


# Feature modules add dashboard cards: async (session) -> list[Card].
DASHBOARD_CARDS: list[Any] = []
# Features adding a section of their own to the dashboard: (request, session) → context.
DASHBOARD_SECTIONS: list[Callable[[Request, AsyncSession], Awaitable[dict[str, Any]]]] = []


@router.get("/")
async def dashboard(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    if user.role == "agent":
        # Agents land on their console (DESIGN §12.1).
        return RedirectResponse("/agent", status_code=303)
    await admin_user(user)
    runtime = get_runtime(request)
    current = await system_settings.get_system_settings(session, runtime.settings)
    _all_tokens, token_count = await tokens.list_tokens(session, limit=1)
    cards = [
        Card(N_("Users"), await user_repository.count_users(session)),
        Card(N_("API tokens"), token_count),
    ]
    for provider in DASHBOARD_CARDS:
        cards.extend(await provider(session))
    context: dict[str, Any] = {
        "cards": cards,
        "database_kind": runtime.database_kind,
        "public_url": current.public_url,
        "system_timezone": current.timezone,
        "started_at": runtime.started_at,
    }
    for section in DASHBOARD_SECTIONS:
        context.update(await section(request, session))
    return await render(
        request,
        "dashboard.html",
        context,
        user=user,
        session=session,
        active="dashboard",
    )


# ---- users -------------------------------------------------------------------------


@router.get("/users")
async def users_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    rows, _total = await user_repository.list_users(session, 500, 0)
    _ = gettext_for(request, user)
    flash = _("Saved.") if request.query_params.get("saved") else None
    return await render(
        request,
        "users/list.html",
        {"users": rows, "flash": flash, "error": None},
        user=user,
        session=session,
        active="users",
    )


def _user_form(values: dict[str, str]) -> dict[str, Any]:
    return {
        "username": values.get("username", ""),
        "display_name": values.get("display_name", ""),
        "role": values.get("role", "agent"),
        "agent_id": values.get("agent_id", ""),
        "extension": values.get("extension", ""),
        "salesforce_user_id": values.get("salesforce_user_id", ""),
        "language": values.get("language", ""),
        "is_active": values.get("is_active", "1") == "1",
    }


@router.get("/users/new")
async def new_user_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    _ = gettext_for(request, user)
    return await render(
        request,
        "users/form.html",
        {"title": _("New user"), "editing": False, "form": _user_form({}), "user_id": None},
        user=user,
        session=session,
        active="users",
    )


@router.post("/users/new", dependencies=[CsrfChecked])
async def create_user(request: Request, session: SessionDep, user: AdminUser) -> Response:
    _ = gettext_for(request, user)
    values = await form_values(request)
    errors: dict[str, str] = {}
    try:
        data = UserCreate(
            username=values.get("username", ""),
            password=values.get("password", ""),
            role=values.get("role", "agent"),
            agent_id=values.get("agent_id") or None,
            display_name=values.get("display_name", ""),
            language=values.get("language") or None,
            extension=values.get("extension", ""),
            salesforce_user_id=values.get("salesforce_user_id", ""),
        )
        await users.create_user(session, data, f"user:{user.username}")
    except ValidationError as exc:
        errors = form_errors(exc, _)
    except Conflict:
        errors = {"username": _("This username is already taken.")}
    if errors:
        return await render(
            request,
            "users/form.html",
            {
                "title": _("New user"),
                "editing": False,
                "form": _user_form(values),
                "errors": errors,
                "user_id": None,
            },
            user=user,
            session=session,
            active="users",
            status_code=422,
        )
    return RedirectResponse("/users?saved=1", status_code=303)


@router.get("/users/{user_id}/edit")
async def edit_user_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    user_id: int,
    softphones_revoked: int | None = None,
) -> Response:
    _ = gettext_for(request, user)
    target = await users.get_user_or_404(session, user_id)
    form = _user_form(
        {
            "username": target.username,
            "display_name": target.display_name,
            "role": target.role,
            "agent_id": target.agent_id or "",
            "extension": target.extension or "",
            "salesforce_user_id": target.salesforce_user_id or "",
            "language": target.language or "",
            "is_active": "1" if target.is_active else "0",
        }
    )
    return await render(
        request,
        "users/form.html",
        {
            "title": _("Edit user"),
            "editing": True,
            "form": form,
            "user_id": user_id,
            "softphones": await count_sessions(session, user_id, SOFTPHONE),
            "softphones_revoked": softphones_revoked,
        },
        user=user,
        session=session,
        active="users",
    )


@router.post("/users/{user_id}/edit", dependencies=[CsrfChecked])
async def update_user(
    request: Request, session: SessionDep, user: AdminUser, user_id: int
) -> Response:
    _ = gettext_for(request, user)
    target = await users.get_user_or_404(session, user_id)
    values = await form_values(request)
    values["username"] = target.username
    errors: dict[str, str] = {}
    try:
        # The password only when typed: left empty, the stored one is kept (a null
        # password is refused as a change).
        typed = {"password": values["password"]} if values.get("password") else {}
        data = UserUpdate(
            **typed,
            role=values.get("role"),
            agent_id=values.get("agent_id") or None,
            display_name=values.get("display_name", ""),
            language=values.get("language") or None,
            extension=values.get("extension", ""),
            salesforce_user_id=values.get("salesforce_user_id", ""),
            is_active=values.get("is_active", "1") == "1",
        )
        await users.update_user(session, target, data, f"user:{user.username}")
    except ValidationError as exc:
        errors = form_errors(exc, _)
    except FieldError as exc:
        errors = {exc.loc[-1]: _("callbridge needs at least one active administrator.")}
    if errors:
        return await render(
            request,
            "users/form.html",
            {
                "title": _("Edit user"),
                "editing": True,
                "form": _user_form(values),
                "errors": errors,
                "user_id": user_id,
                "softphones": await count_sessions(session, user_id, SOFTPHONE),
                "softphones_revoked": None,
            },
            user=user,
            session=session,
            active="users",
            status_code=422,
        )
    return RedirectResponse("/users?saved=1", status_code=303)


@router.post("/users/{user_id}/delete", dependencies=[CsrfChecked])
async def delete_user(
    request: Request, session: SessionDep, user: AdminUser, user_id: int
) -> Response:
    _ = gettext_for(request, user)
    target = await users.get_user_or_404(session, user_id)
    try:
        await users.delete_user(session, target, f"user:{user.username}")
    except FieldError:
        rows, _total = await user_repository.list_users(session, 500, 0)
        return await render(
            request,
            "users/list.html",
            {
                "users": rows,
                "flash": None,
                "error": _("callbridge needs at least one active administrator."),
            },
            user=user,
            session=session,
            active="users",
            status_code=409,
        )
    return RedirectResponse("/users?saved=1", status_code=303)


# ---- tokens ------------------------------------------------------------------------


async def _tokens_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    created: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    rows, _total = await tokens.list_tokens(session)
    _ = gettext_for(request, user)
    flash = _("Token revoked.") if request.query_params.get("revoked") else None
    return await render(
        request,
        "tokens/list.html",
        {
            "tokens": rows,
            "created": created,
            "flash": flash,
            "errors": errors or {},
            "form": form or {"name": "", "scope": "pbx"},
        },
        user=user,
        session=session,
        active="tokens",
        status_code=status_code,
    )


@router.get("/tokens")
async def tokens_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return await _tokens_page(request, session, user)


@router.post("/tokens", dependencies=[CsrfChecked])
async def create_token(request: Request, session: SessionDep, user: AdminUser) -> Response:
    values = await form_values(request)
    try:
        data = TokenCreate(name=values.get("name", ""), scope=values.get("scope", ""))
    except ValidationError as exc:
        return await _tokens_page(
            request,
            session,
            user,
            errors=form_errors(exc, gettext_for(request, user)),
            form={"name": values.get("name", ""), "scope": values.get("scope", "")},
            status_code=422,
        )
    _token, raw = await tokens.create_token(session, data, f"user:{user.username}", user.id)
    await session.flush()
    return await _tokens_page(request, session, user, created=raw, status_code=201)


@router.post("/tokens/{token_id}/revoke", dependencies=[CsrfChecked])
async def revoke_token(
    request: Request, session: SessionDep, user: AdminUser, token_id: int
) -> Response:
    token = await tokens.get_token_or_404(session, token_id)
    await tokens.revoke_token(session, token, f"user:{user.username}")
    return RedirectResponse("/tokens?revoked=1", status_code=303)


# ---- settings ----------------------------------------------------------------------


@router.get("/settings")
async def settings_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    current = await system_settings.get_system_settings(session, get_runtime(request).settings)
    _ = gettext_for(request, user)
    flash = _("Saved.") if request.query_params.get("saved") else None
    return await render(
        request,
        "settings.html",
        {"form": current.model_dump(), "flash": flash},
        user=user,
        session=session,
        active="settings",
    )


@router.post("/settings", dependencies=[CsrfChecked])
async def save_settings(request: Request, session: SessionDep, user: AdminUser) -> Response:
    values = await form_values(request)
    fields = ("public_url", "timezone", "playback_auth", "retention_days", "max_recording_mb")
    submitted: dict[str, Any] = {k: values.get(k, "") for k in fields}
    try:
        data = SystemSettingsUpdate.model_validate(
            {**submitted, "public_url": submitted["public_url"] or None}
        )
    except ValidationError as exc:
        return await render(
            request,
            "settings.html",
            {
                "form": submitted,
                "flash": None,
                "errors": form_errors(exc, gettext_for(request, user)),
            },
            user=user,
            session=session,
            active="settings",
            status_code=422,
        )
    await system_settings.update_system_settings(
        session, get_runtime(request).settings, data, f"user:{user.username}"
    )
    return RedirectResponse("/settings?saved=1", status_code=303)
