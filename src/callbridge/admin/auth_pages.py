"""Sign-in, sign-out, first-run setup and the language switch."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from callbridge.admin.rendering import form_errors, gettext_for, render, safe_next, secure_cookies
from callbridge.audit import record_audit
from callbridge.auth import throttle
from callbridge.auth.deps import CsrfChecked, OptionalUser
from callbridge.auth.sessions import SESSION_COOKIE, end_session, start_session
from callbridge.auth.setup import consume_setup_tokens, setup_token_valid
from callbridge.db.session import SessionDep
from callbridge.i18n import LANGUAGE_COOKIE, LANGUAGES
from callbridge.runtime import get_runtime
from callbridge.users import service as users
from callbridge.users.repository import count_users
from callbridge.users.schemas import UserCreate

router = APIRouter(include_in_schema=False)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(request: Request, target: str, raw_session: str, hours: int) -> Response:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw_session,
        max_age=hours * 3600,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )
    return response


@router.get("/login")
async def login_page(
    request: Request, session: SessionDep, user: OptionalUser, next: str = "/"
) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await render(
        request,
        "login.html",
        {
            "next": safe_next(next),
            "username": "",
            "error": None,
            "message": None,
            "needs_setup": await count_users(session) == 0,
        },
    )


@router.post("/login", dependencies=[CsrfChecked])
async def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    settings = get_runtime(request).settings
    _ = gettext_for(request, None)
    ip = _client_ip(request)
    context = {"next": safe_next(next), "username": username, "message": None, "needs_setup": False}
    if not username or not password:
        errors = {}
        if not username:
            errors["username"] = _("This field is required.")
        if not password:
            errors["password"] = _("This field is required.")
        return await render(
            request, "login.html", {**context, "error": None, "errors": errors}, status_code=422
        )
    if await throttle.is_throttled(
        session, username, ip, settings.login_max_failures, settings.login_lockout_minutes
    ):
        message = _("Too many failed sign-in attempts. Wait {minutes} minutes and try again.")
        return await render(
            request,
            "login.html",
            {**context, "error": message.format(minutes=settings.login_lockout_minutes)},
            status_code=429,
        )
    user = await users.authenticate(session, username, password)
    if user is None:
        throttle.record_failure(session, username, ip)
        record_audit(session, f"anonymous@{ip}", "login.failure", username)
        return await render(
            request,
            "login.html",
            {**context, "error": _("Wrong username or password.")},
            status_code=401,
        )
    await throttle.clear_failures(session, username, settings.login_lockout_minutes)
    raw = await start_session(session, user, settings.session_hours)
    record_audit(session, f"user:{user.username}", "login.success", user.username, ip=ip)
    return _signed_in(request, safe_next(next), raw, settings.session_hours)


@router.post("/logout", dependencies=[CsrfChecked])
async def logout(request: Request, session: SessionDep) -> Response:
    await end_session(session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/setup")
async def setup_page(request: Request, session: SessionDep, token: str = "") -> Response:
    valid = await setup_token_valid(session, token)
    return await render(
        request,
        "setup.html",
        {"invalid": not valid, "token": token, "username": ""},
        status_code=200 if valid else 403,
    )


@router.post("/setup", dependencies=[CsrfChecked])
async def setup(
    request: Request,
    session: SessionDep,
    token: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    password_confirm: Annotated[str, Form()] = "",
) -> Response:
    if not await setup_token_valid(session, token):
        return await render(
            request, "setup.html", {"invalid": True, "token": "", "username": ""}, status_code=403
        )
    _ = gettext_for(request, None)
    errors: dict[str, str] = {}
    try:
        data = UserCreate(username=username, password=password, role="admin")
    except ValidationError as exc:
        errors = form_errors(exc, _)
    if password != password_confirm and "password" not in errors:
        errors["password_confirm"] = _("The two passwords differ.")
    if errors:
        return await render(
            request,
            "setup.html",
            {"invalid": False, "token": token, "username": username, "errors": errors},
            status_code=422,
        )
    user = await users.create_user(session, data, "setup")
    await consume_setup_tokens(session)
    settings = get_runtime(request).settings
    raw = await start_session(session, user, settings.session_hours)
    return _signed_in(request, "/", raw, settings.session_hours)


@router.post("/language", dependencies=[CsrfChecked])
async def set_language(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    language: Annotated[str, Form()] = "en",
    next: Annotated[str, Form()] = "/",
) -> Response:
    if language not in LANGUAGES:
        language = "en"
    if user is not None:
        user.language = language
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax")
    return response


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
