"""Page rendering: one Jinja2 environment; every page gets the user, the translations,
the CSRF token, the navigation and the banners."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

import callbridge
from callbridge.auth.csrf import CSRF_COOKIE, csrf_token_for
from callbridge.i18n import LANGUAGES, N_, language_for, translations
from callbridge.messages import Message, MessageError, define, render_html
from callbridge.messages import render as render_catalogue_message
from callbridge.models import User
from callbridge.runtime import get_runtime

_TEMPLATE_DIRS: list[Path] = [Path(__file__).resolve().parent / "templates"]


_loader = jinja2.FileSystemLoader(_TEMPLATE_DIRS)


async def form_values(request: Request) -> dict[str, str]:
    """A submitted form's text fields (files are not form values here)."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _one_newline(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def keep_line_endings(submitted: Any, stored: Any) -> Any:
    """``submitted`` (a form's values, as API fields) with each text that differs from
    the ``stored`` one at the same place only in its line breaks replaced by the stored
    text. A browser sends every line break of a textarea as CR LF, so without this, a
    Save without changes would turn text saved with LF line breaks into CR LF."""
    if isinstance(submitted, str) and isinstance(stored, str):
        return stored if _one_newline(submitted) == _one_newline(stored) else submitted
    if isinstance(submitted, dict) and isinstance(stored, Mapping):
        return {k: keep_line_endings(v, stored.get(k)) for k, v in submitted.items()}
    if isinstance(submitted, list) and isinstance(stored, list):
        return [
            keep_line_endings(v, stored[i] if i < len(stored) else None)
            for i, v in enumerate(submitted)
        ]
    return submitted


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def add_template_dir(path: Path) -> None:
    """Feature folders keep their templates next to their routes and register them here."""
    if str(path) not in _loader.searchpath:
        _loader.searchpath.append(str(path))


_environment = jinja2.Environment(
    loader=_loader,
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def format_datetime(value: Any, tz: str = "UTC") -> str:
    """How every page writes a moment (the ``datetime`` filter)."""
    from zoneinfo import ZoneInfo

    if value is None:
        return "—"
    return str(value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S"))


_environment.filters["datetime"] = format_datetime


def render_message(
    value: str | Message | Mapping[str, Any] | None, gettext: Callable[[str], str]
) -> str:
    """A catalogue message (or its stored JSON form) in the language of ``gettext``; a
    plain string is taken as a msgid (text without a translation is shown as it is)."""
    if isinstance(value, str):
        return gettext(value) if value else ""
    return render_catalogue_message(value, gettext)


@jinja2.pass_context
def _message_filter(context: Any, value: str | Message | Mapping[str, Any] | None) -> str:
    """``{{ finding.msg | message }}``: rendered in the page's language."""
    return render_message(value, context["_"])


_environment.filters["message"] = _message_filter


@jinja2.pass_context
def _message_html_filter(context: Any, value: str | Message | Mapping[str, Any] | None) -> Any:
    """``{{ row.reason | message_html }}``: in the page's language, a server's own words
    (parameters such as ``salesforce``, ``detail``) verbatim in a ``<code>``."""
    return markupsafe.Markup(render_html(value, context["_"]))  # noqa: S704 (escaped)


_environment.filters["message_html"] = _message_html_filter

__all__ = [
    "N_",
    "add_template_dir",
    "form_errors",
    "form_values",
    "format_datetime",
    "gettext_for",
    "is_htmx",
    "message_error_of",
    "render",
    "render_message",
    "safe_next",
    "validation_code",
]


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str  # a msgid, translated at render time
    path: str
    roles: tuple[str, ...] = ("admin",)


# Sections register themselves (in app.py) in the order they appear.
NAV: list[NavItem] = []


@dataclass(frozen=True)
class Banner:
    level: str  # "warning" | "error" | "info"
    message: str
    link: str | None = None
    link_label: str | None = None


BannerProvider = Callable[
    [Request, AsyncSession, User, Callable[[str], str]], Awaitable[list[Banner]]
]
BANNER_PROVIDERS: list[BannerProvider] = []


def gettext_for(request: Request, user: User | None) -> Callable[[str], str]:
    return translations(language_for(request, user.language if user else None)).gettext


async def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    user: User | None = None,
    session: AsyncSession | None = None,
    status_code: int = 200,
    active: str | None = None,
) -> HTMLResponse:
    runtime = get_runtime(request)
    language = language_for(request, user.language if user else None)
    gettext = translations(language).gettext
    banners: list[Banner] = []
    if user is not None and session is not None and user.role == "admin":
        for provider in BANNER_PROVIDERS:
            banners.extend(await provider(request, session, user, gettext))
    csrf = csrf_token_for(request)
    values: dict[str, Any] = {
        "request": request,
        "_": gettext,
        "lang": language,
        "languages": LANGUAGES,
        "user": user,
        "csrf_token": csrf,
        "nav": [item for item in NAV if user is not None and user.role in item.roles],
        "active": active,
        "banners": banners,
        "version": callbridge.__version__,
        "timezone": runtime.settings.timezone,
        "errors": {},
    }
    values.update(context or {})
    html = _environment.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status_code)
    if request.cookies.get(CSRF_COOKIE) != csrf:
        response.set_cookie(
            CSRF_COOKIE, csrf, httponly=True, samesite="lax", secure=secure_cookies(request)
        )
    return response


def secure_cookies(request: Request) -> bool:
    public_url = get_runtime(request).settings.public_url
    return bool(public_url and public_url.startswith("https://")) or request.url.scheme == "https"


# pydantic's error types → catalogue messages: pydantic's own (English) wording never
# reaches a page; the API keeps pydantic's text and type.
define(
    {
        "field_missing": "This field is required.",
        "field_too_short": "Too short: at least {min_length} characters.",
        "field_too_long": "Too long: at most {max_length} characters.",
        "field_pattern": "Contains characters that are not allowed.",
        "field_choice": "Choose one of the offered values.",
        "field_whole_number": "Enter a whole number.",
        "field_number": "Enter a number.",
        "field_yes_no": "Choose yes or no.",
        "field_text": "Enter text.",
        "field_at_least": "Must be at least {ge}.",
        "field_at_most": "Must be at most {le}.",
        "field_more_than": "Must be more than {gt}.",
        "field_less_than": "Must be less than {lt}.",
        "field_few_items": "Too few entries: at least {min_length}.",
        "field_many_items": "Too many entries: at most {max_length}.",
        "field_json": "Not valid JSON.",
        "field_url": "Enter a valid URL.",
        "field_date": "Enter a valid date and time.",
        "field_invalid": "This value is not valid.",
    }
)
_PYDANTIC_TYPES: dict[str, str] = {
    "missing": "field_missing",
    "string_too_short": "field_too_short",
    "string_too_long": "field_too_long",
    "string_pattern_mismatch": "field_pattern",
    "literal_error": "field_choice",
    "enum": "field_choice",
    "int_parsing": "field_whole_number",
    "int_type": "field_whole_number",
    "int_from_float": "field_whole_number",
    "int_parsing_size": "field_whole_number",
    "float_parsing": "field_number",
    "float_type": "field_number",
    "decimal_parsing": "field_number",
    "bool_parsing": "field_yes_no",
    "bool_type": "field_yes_no",
    "string_type": "field_text",
    "greater_than_equal": "field_at_least",
    "less_than_equal": "field_at_most",
    "greater_than": "field_more_than",
    "less_than": "field_less_than",
    "too_short": "field_few_items",
    "too_long": "field_many_items",
    "json_invalid": "field_json",
    "url_parsing": "field_url",
    "url_scheme": "field_url",
    "url_type": "field_url",
    "datetime_parsing": "field_date",
    "datetime_from_date_parsing": "field_date",
    "datetime_type": "field_date",
    "date_parsing": "field_date",
    "date_from_datetime_parsing": "field_date",
    "timezone_aware": "field_date",
}


def _message_error(error: Mapping[str, Any]) -> MessageError | None:
    cause = (error.get("ctx") or {}).get("error")
    return cause if isinstance(cause, MessageError) else None


def message_error_of(error: Mapping[str, Any]) -> Message | None:
    """The catalogue message a pydantic error was raised with (``MessageError``), if any."""
    cause = _message_error(error)
    return cause.msg if cause is not None else None


def validation_code(error: Mapping[str, Any]) -> str:
    """The ``code`` of one pydantic error: the catalogue message's, else pydantic's type."""
    cause = _message_error(error)
    return cause.msg.code if cause is not None else str(error["type"])


def pydantic_message(error: Mapping[str, Any]) -> Message | None:
    """One pydantic error as a catalogue message, for a page: the message it was raised
    with (``MessageError``), else the catalogue's for its type; None for a validator's own
    ``ValueError`` text, which the page shows as it is."""
    cause = _message_error(error)
    if cause is not None:
        return cause.msg
    kind = str(error["type"])
    if kind == "value_error":
        return None
    params = {
        name: value
        for name, value in (error.get("ctx") or {}).items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }
    return Message(_PYDANTIC_TYPES.get(kind, "field_invalid"), **params)


def pydantic_text(error: Mapping[str, Any], gettext: Callable[[str], str]) -> str:
    """One pydantic error in the language of ``gettext``."""
    message = pydantic_message(error)
    if message is None:
        return str(error["msg"]).removeprefix("Value error, ")
    return message.render(gettext)


def form_errors(exc: ValidationError, gettext: Callable[[str], str]) -> dict[str, str]:
    """Field name → a translated message, for showing next to the field."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "__all__"
        errors.setdefault(field, pydantic_text(error, gettext))
    return errors


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
