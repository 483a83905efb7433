"""Admin pages of the screen-pop profiles (画面ポップアップ / Screen pops, DESIGN §12.2): the
list and the form with every field, built on the same services as ``/api/v1/screen-pops``.
A ``custom`` lookup's accesses are shown and kept as they are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from callbridge.admin.rendering import (
    add_template_dir,
    gettext_for,
    pydantic_text,
    render,
    render_message,
)
from callbridge.agent_desktop import service
from callbridge.agent_desktop.schemas import ScreenPopCreate, ScreenPopRead, ScreenPopUpdate
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.db.session import SessionDep
from callbridge.errors import FieldErrors
from callbridge.history.pages import form_rows, seen_numbers
from callbridge.i18n import N_
from callbridge.models import OAuthAccount

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")

TRIGGERS = [
    ("incoming", N_("Ringing at the agent's extension (着信時)")),
    ("answer", N_("When the agent answers (応答時)")),
]
LOOKUP_KINDS = [
    ("", N_("No lookup: show the number only")),
    ("salesforce", N_("Salesforce: find the caller in Salesforce")),
    ("custom", N_("Custom: another CRM (seed 002 カスタム連携)")),
]
ACCESS_NAMES = [
    ("auth", N_("Authentication access")),
    ("search", N_("Search access")),
    ("incoming", N_("Incoming access")),
    ("answer", N_("Answer access")),
    ("disconnect", N_("Disconnect access")),
    ("click", N_("Click access")),
]
METHODS = {
    "browser_get": N_("HTTP GET (in the agent's browser)"),
    "browser_post": N_("HTTP POST (in the agent's browser)"),
    "server_get": N_("HTTP GET (sent by callbridge, 内部処理)"),
    "server_post": N_("HTTP POST (sent by callbridge, 内部処理)"),
}
CHECKBOXES = ("enabled", "skip_internal", "copy_number")
SCALARS = ("name", "trigger", "answer_delay_seconds", "display_seconds", "anonymous_label")
OBJECT_COLUMNS = ("api_name", "tab_name", "key_prefix", "priority")
# List fields whose entries are reported on the list as a whole (with the entry's value).
LIST_FIELDS = ("strip_prefixes", "wrapup_reasons", "phone_numbers")

BLANK: dict[str, Any] = {
    "name": "",
    "enabled": True,
    "trigger": "incoming",
    "phone_numbers": [],
    "more_numbers": "",
    "answer_delay_seconds": 0,
    "skip_internal": True,
    "display_seconds": 30,
    "copy_number": False,
    "anonymous_label": "非通知",
    "strip_prefixes": "",
    "wrapup_reasons": "",
    "lookup_kind": "salesforce",
    "oauth_account_id": "",
    "timeout_seconds": 5,
    "objects": [
        {"api_name": "Contact", "tab_name": "取引先責任者", "key_prefix": "003", "priority": 1},
        {"api_name": "Account", "tab_name": "取引先", "key_prefix": "001", "priority": 2},
        {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 3},
    ],
    "custom_accesses": "",
}


def _split(text: str) -> list[str]:
    """``+81, 0081`` or one a line → the entries."""
    return [part for part in re.split(r"[\s,、]+", text) if part]


async def _form_input(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted form → (the API payload, the form as shown again)."""
    form = await request.form()
    values: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, []).append(value)

    def one(name: str) -> str:
        return (values.get(name) or [""])[0]

    payload: dict[str, Any] = {name: one(name) for name in SCALARS}
    for name in CHECKBOXES:
        payload[name] = one(name) == "1"
    numbers = [n.strip() for n in values.get("phone_numbers", []) if n.strip()]
    numbers += [n for n in _split(one("more_numbers")) if n not in numbers]
    payload["phone_numbers"] = numbers
    payload["strip_prefixes"] = _split(one("strip_prefixes"))
    payload["wrapup_reasons"] = [line.strip() for line in one("wrapup_reasons").splitlines()]
    payload["wrapup_reasons"] = [reason for reason in payload["wrapup_reasons"] if reason]
    kind = one("lookup_kind")
    objects = form_rows(values, "objects", OBJECT_COLUMNS)
    custom = one("custom_accesses")
    if kind == "salesforce":
        lookup: dict[str, Any] = {"kind": "salesforce", "objects": objects}
        if one("oauth_account_id").strip():
            lookup["oauth_account_id"] = one("oauth_account_id").strip()
        if one("timeout_seconds").strip():
            lookup["timeout_seconds"] = one("timeout_seconds").strip()
        payload["lookup"] = lookup
    elif kind == "custom":
        try:
            accesses = json.loads(custom) if custom.strip() else {}
        except ValueError:
            accesses = custom
        payload["lookup"] = {"kind": "custom", "accesses": accesses}
    else:
        payload["lookup"] = None
    shown = {
        **payload,
        "more_numbers": "",
        "strip_prefixes": one("strip_prefixes"),
        "wrapup_reasons": one("wrapup_reasons"),
        "lookup_kind": kind,
        "oauth_account_id": one("oauth_account_id"),
        "timeout_seconds": one("timeout_seconds"),
        "objects": objects,
        "custom_accesses": custom,
    }
    return payload, shown


def _form_of(read: ScreenPopRead) -> dict[str, Any]:
    data = read.model_dump(mode="json")
    lookup = data.pop("lookup") or {}
    data["strip_prefixes"] = ", ".join(data["strip_prefixes"])
    data["wrapup_reasons"] = "\n".join(data["wrapup_reasons"])
    data["more_numbers"] = ""
    data["lookup_kind"] = lookup.get("kind", "")
    data["oauth_account_id"] = str(lookup.get("oauth_account_id", ""))
    data["timeout_seconds"] = lookup.get("timeout_seconds", BLANK["timeout_seconds"])
    data["objects"] = lookup.get("objects") or BLANK["objects"]
    accesses = lookup.get("accesses")
    data["custom_accesses"] = json.dumps(accesses, ensure_ascii=False) if accesses else ""
    return data


def _field_of(loc: list[str]) -> str:
    """A pydantic or service error's location → the form field it is shown next to."""
    if loc[:1] == ["lookup"]:
        rest = loc[1:]
        if rest[:1] in (["salesforce"], ["custom"]):
            rest = rest[1:]
        if rest[:1] == ["accesses"]:
            return "custom_accesses"
        if rest[:1] == ["kind"]:
            return "lookup_kind"
        if rest[:1] == ["objects"] and len(rest) > 1:
            return ".".join(["objects", *rest[1:]])
        return rest[0] if rest else "lookup_kind"
    if loc[:1] and loc[0] in LIST_FIELDS:
        return loc[0]
    return ".".join(loc)


def _errors_of(
    exc: ValidationError | FieldErrors, payload: dict[str, Any], request: Request, user: AdminUser
) -> dict[str, str]:
    """Form field → the error in the admin's language (a list's entry is named)."""
    _ = gettext_for(request, user)
    found: dict[str, str] = {}
    if isinstance(exc, FieldErrors):
        for error in exc.errors:
            found.setdefault(
                _field_of([str(p) for p in error.loc]),
                render_message(error.msg or error.message, _),
            )
        return found
    for detail in exc.errors():
        loc = [str(p) for p in detail["loc"]]
        text = pydantic_text(detail, _)
        field = _field_of(loc)
        if field == "custom_accesses" and len(loc) > 3:
            text = f"{'.'.join(loc[3:])}: {text}"
        if len(loc) == 2 and loc[0] in LIST_FIELDS and loc[1].isdigit():
            entries = payload.get(loc[0]) or []
            index = int(loc[1])
            if index < len(entries):
                text = _("“{value}”: {error}").format(value=entries[index], error=text)
        found.setdefault(field, text)
    return found


def _accesses(form: dict[str, Any]) -> list[dict[str, Any]]:
    """A custom lookup's accesses, for showing: (name label, method label, URL, extras)."""
    try:
        accesses = json.loads(form.get("custom_accesses") or "{}")
    except ValueError:
        return []
    if not isinstance(accesses, dict):
        return []
    shown = []
    for key, label in ACCESS_NAMES:
        access = accesses.get(key)
        if isinstance(access, dict):
            shown.append(
                {
                    "key": key,
                    "label": label,
                    "method": METHODS.get(str(access.get("method")), str(access.get("method"))),
                    "url": str(access.get("url", "")),
                    "body": str(access.get("body", "")),
                    "response_format": str(access.get("response_format", "")),
                    "delay_seconds": access.get("delay_seconds"),
                    "answered_only": access.get("answered_only"),
                    "session_minutes": access.get("session_minutes"),
                }
            )
    return shown


async def _form_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    form: dict[str, Any],
    profile_id: int | None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> Response:
    _ = gettext_for(request, user)
    accounts = list(
        await session.execute(
            select(OAuthAccount.id, OAuthAccount.name).where(OAuthAccount.provider == "salesforce")
        )
    )
    numbers = sorted(set(await seen_numbers(session)) | set(form.get("phone_numbers") or []))
    return await render(
        request,
        "agent/screen_pop_form.html",
        {
            "title": _("Edit screen-pop profile") if profile_id else _("New screen-pop profile"),
            "form": form,
            "profile_id": profile_id,
            "errors": errors or {},
            "accounts": [(str(i), n) for i, n in accounts],
            "triggers": [(v, _(label)) for v, label in TRIGGERS],
            "lookup_kinds": [(v, _(label)) for v, label in LOOKUP_KINDS],
            "accesses": _accesses(form),
            "numbers": numbers,
            "saved": saved,
        },
        user=user,
        session=session,
        active="screen_pops",
        status_code=status_code,
    )


@router.get("/screen-pops")
async def profiles_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    profiles = [ScreenPopRead.model_validate(p) for p in await service.list_profiles(session)]
    names = dict(list(await session.execute(select(OAuthAccount.id, OAuthAccount.name))))
    return await render(
        request,
        "agent/screen_pops.html",
        {
            "profiles": profiles,
            "accounts": names,
            "triggers": dict(TRIGGERS),
            "flash": request.query_params.get("saved"),
            "deleted": request.query_params.get("deleted"),
        },
        user=user,
        session=session,
        active="screen_pops",
    )


@router.get("/screen-pops/new")
async def new_profile_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return await _form_page(request, session, user, form=dict(BLANK), profile_id=None)


@router.post("/screen-pops/new", dependencies=[CsrfChecked])
async def create_profile(request: Request, session: SessionDep, user: AdminUser) -> Response:
    payload, shown = await _form_input(request)
    try:
        data = ScreenPopCreate.model_validate(payload)
        profile = await service.create_profile(session, data, f"user:{user.username}")
    except (ValidationError, FieldErrors) as exc:
        # Nothing was written: the service checks everything before it changes a row.
        return await _form_page(
            request,
            session,
            user,
            form={**BLANK, **shown},
            profile_id=None,
            errors=_errors_of(exc, payload, request, user),
            status_code=422,
        )
    return RedirectResponse(f"/screen-pops/{profile.id}?saved=1", status_code=303)


@router.get("/screen-pops/{profile_id}")
async def edit_profile_page(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    profile = await service.get_profile_or_404(session, profile_id)
    return await _form_page(
        request,
        session,
        user,
        form=_form_of(ScreenPopRead.model_validate(profile)),
        profile_id=profile_id,
        saved=bool(request.query_params.get("saved")),
    )


@router.post("/screen-pops/{profile_id}", dependencies=[CsrfChecked])
async def update_profile(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    profile = await service.get_profile_or_404(session, profile_id)
    payload, shown = await _form_input(request)
    try:
        # Every field is sent: the form replaces the profile as a whole (a custom lookup's
        # authentication, not on the form, is kept by the service).
        data = ScreenPopUpdate.model_validate(
            ScreenPopCreate.model_validate(payload).model_dump(exclude_unset=True)
        )
        await service.update_profile(session, profile, data, f"user:{user.username}")
    except (ValidationError, FieldErrors) as exc:
        # Nothing was written: the service checks everything before it changes a row.
        return await _form_page(
            request,
            session,
            user,
            form={**BLANK, **shown},
            profile_id=profile_id,
            errors=_errors_of(exc, payload, request, user),
            status_code=422,
        )
    await session.refresh(profile)
    return await _form_page(
        request,
        session,
        user,
        form=_form_of(ScreenPopRead.model_validate(profile)),
        profile_id=profile_id,
        saved=True,
    )


@router.post("/screen-pops/{profile_id}/delete", dependencies=[CsrfChecked])
async def delete_profile(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    profile = await service.get_profile_or_404(session, profile_id)
    await service.delete_profile(session, profile, f"user:{user.username}")
    return RedirectResponse("/screen-pops?deleted=1", status_code=303)
