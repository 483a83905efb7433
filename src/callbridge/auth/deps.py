"""Authentication dependencies: ``CurrentUser`` / ``AdminUser`` for the UI,
``AdminAccess`` / ``PbxAccess`` for the JSON API (DESIGN.md §3.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.auth.csrf import CSRF_FIELD, CSRF_HEADER, csrf_valid
from callbridge.auth.sessions import SESSION_COOKIE, user_for_session
from callbridge.db.session import SessionDep
from callbridge.errors import FieldError, FieldErrors, Forbidden, LoginRequired, Unauthorized
from callbridge.i18n import N_, language_for, translations
from callbridge.kit.crypto import sha256_hex
from callbridge.kit.text import NUL_MESSAGE
from callbridge.kit.time import utcnow
from callbridge.models import ApiToken, User

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an API request."""

    user: User | None = None
    token: ApiToken | None = None

    @property
    def label(self) -> str:
        if self.user is not None:
            return f"user:{self.user.username}"
        assert self.token is not None
        return f"token:{self.token.name}"

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user is not None else None


async def optional_user(request: Request, session: SessionDep) -> User | None:
    cached: User | None = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    user = await user_for_session(session, request.cookies.get(SESSION_COOKIE))
    request.state.user = user
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]


async def current_user(user: OptionalUser) -> User:
    if user is None:
        raise LoginRequired(N_("Sign in to continue."))
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise Forbidden(N_("This page is for administrators."))
    return user


AdminUser = Annotated[User, Depends(admin_user)]


async def check_csrf_form(request: Request) -> None:
    """For UI POST routes: the form's text must be storable (UTF-8, no NUL), and its
    csrf_token (or the htmx header) must match."""
    await _refuse_unstorable_form(request)
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    if not csrf_valid(request, submitted):
        raise Forbidden(
            N_("The form expired or came from another site: reload the page and try again.")
        )


async def _refuse_unstorable_form(request: Request) -> None:
    """422 naming the fields of a multipart form that hold a NUL (PostgreSQL cannot store
    it); URL-encoded forms are checked, UTF-8 too, before they reach the app (ops.middleware)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        return
    problems = [
        (name, NUL_MESSAGE)
        for name, value in (await request.form()).multi_items()
        if "\x00" in name or (isinstance(value, str) and "\x00" in value)
    ]
    if problems:
        _ = translations(language_for(request)).gettext
        raise FieldErrors([FieldError(name, _(message)) for name, message in problems])


CsrfChecked = Depends(check_csrf_form)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return value.strip()


async def token_for(session: AsyncSession, raw: str) -> ApiToken | None:
    token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256_hex(raw)))
    if token is not None:
        now = utcnow()
        if token.last_used_at is None or now - token.last_used_at > _TOKEN_TOUCH_INTERVAL:
            token.last_used_at = now
    return token


async def _token_principal(session: AsyncSession, raw: str, scope: str) -> Principal:
    token = await token_for(session, raw)
    if token is None:
        raise Unauthorized("invalid API token")
    if token.scope != scope:
        raise Forbidden(f"this endpoint needs a token with scope '{scope}'")
    return Principal(token=token)


async def admin_access(request: Request, session: SessionDep) -> Principal:
    raw = _bearer(request)
    if raw is not None:
        return await _token_principal(session, raw, "admin")
    user = await optional_user(request, session)
    if user is None:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    if user.role != "admin":
        raise Forbidden("administrators only")
    if request.method not in SAFE_METHODS and not csrf_valid(
        request, request.headers.get(CSRF_HEADER)
    ):
        raise Forbidden("missing or wrong X-CSRF-Token header for a session-authenticated call")
    return Principal(user=user)


AdminAccess = Annotated[Principal, Depends(admin_access)]


async def pbx_access(request: Request, session: SessionDep) -> Principal:
    raw = _bearer(request)
    if raw is None:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    return await _token_principal(session, raw, "pbx")


PbxAccess = Annotated[Principal, Depends(pbx_access)]
