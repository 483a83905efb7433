"""Admin pages of the screen-pop profiles (画面ポップアップ / Screen pops, DESIGN §12.2): the
list and the form with every field, built on the same services as ``/api/v1/screen-pops``.

A ``custom`` lookup (seed 002 カスタム連携) is edited with the shared request form macros:
its authentication (``custom-auth_type``…, secrets write-only) and each access with its
own fields (``search-url``, ``search-method``…). The API's error locations
(``lookup.custom.accesses.search.url``) name the form field they are shown next to. The
test panel sends a number through the lookup (htmx) and shows its requests and the pop."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from callbridge.admin.rendering import (
    add_template_dir,
    form_values,
    gettext_for,
    keep_line_endings,
    pydantic_text,
    render,
    render_message,
)
from callbridge.agent_desktop import pops, service
from callbridge.agent_desktop.custom import ACCESS_NAMES as ACCESS_KEYS
from callbridge.agent_desktop.custom import READING_ACCESSES
from callbridge.agent_desktop.schemas import (
    CustomLookup,
    ScreenPopCreate,
    ScreenPopRead,
    ScreenPopTest,
    ScreenPopUpdate,
)
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.db.session import SessionDep
from callbridge.errors import FieldErrors
from callbridge.history.pages import form_rows, number_choices
from callbridge.i18n import N_
from callbridge.models import OAuthAccount, ScreenPopProfile
from callbridge.requests import service as requests_service
from callbridge.requests.fields import SECRET_FIELDS
from callbridge.requests.forms import register_templates
from callbridge.requests.schemas import Warning_
from callbridge.requests.secrets import secrets_set_after
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")
register_templates()

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
ACCESS_HINTS = {
    "auth": N_(
        "Logs in to the CRM (sent by callbridge). Its response format names values of its "
        "answer, e.g. SESSION = $.session, which the later accesses use as {SESSION}; the "
        "answer is reused for the session time."
    ),
    "search": N_(
        "Finds the caller (sent by callbridge). Its response format fills {COMPANY}, {NAME} "
        "and {EXT_ID}: they are shown on the card and usable in the later accesses."
    ),
    "incoming": N_("Opened or sent when the agent's extension rings."),
    "answer": N_(
        "Opened or sent when the agent answers, after the wait before the answer access "
        "(basic settings)."
    ),
    "disconnect": N_("Opened or sent when the call ends."),
    "click": N_("Opened or sent when the agent clicks the button on the card."),
}
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
NO_METHOD = N_("Choose a method, or empty this access's fields if it is not used.")
# The fields of an access on the form (``search-url``…), as the API names them.
ACCESS_FIELDS = ("method", "url", "headers", "body")
# A custom lookup's own fields on the form (``custom-auth_type``…).
CUSTOM = "custom-"
CUSTOM_FIELDS = (
    "auth_type",
    "oauth_account_id",
    "basic_username",
    *SECRET_FIELDS,
    "timeout_seconds",
    "card_wait_seconds",
)

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
    "card_wait_seconds": 1,
    "objects": [
        {"api_name": "Contact", "tab_name": "取引先責任者", "key_prefix": "003", "priority": 1},
        {"api_name": "Account", "tab_name": "取引先", "key_prefix": "001", "priority": 2},
        {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 3},
    ],
    **{f"{CUSTOM}{name}": "" for name in CUSTOM_FIELDS},
    f"{CUSTOM}auth_type": "none",
    f"{CUSTOM}timeout_seconds": 5,
    f"{CUSTOM}card_wait_seconds": 1,
    f"{CUSTOM}basic_password_set": False,
    f"{CUSTOM}bearer_token_set": False,
    **{f"{key}-{name}": "" for key in ACCESS_KEYS for name in ACCESS_FIELDS},
    **{f"{key}-response_format": "" for key in READING_ACCESSES},
    "auth-session_minutes": 30,
    "disconnect-answered_only": False,
}

# Form field → its errors (or warnings): ``{"message", "position", "msg"}`` as the shared
# request macros show them.
Found = dict[str, list[dict[str, Any]]]


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
    if kind == "salesforce":
        lookup: dict[str, Any] = {"kind": "salesforce", "objects": objects}
        if one("oauth_account_id").strip():
            lookup["oauth_account_id"] = one("oauth_account_id").strip()
        for name in ("timeout_seconds", "card_wait_seconds"):
            if one(name).strip():
                lookup[name] = one(name).strip()
        payload["lookup"] = lookup
    elif kind == "custom":
        payload["lookup"] = _custom_input(one)
    else:
        payload["lookup"] = None
    shown = {
        # The custom lookup's fields as typed,
        **{key: typed[0] for key, typed in values.items() if key.partition("-")[0] in _PARTS},
        **payload,
        "more_numbers": "",
        "strip_prefixes": one("strip_prefixes"),
        "wrapup_reasons": one("wrapup_reasons"),
        "lookup_kind": kind,
        "oauth_account_id": one("oauth_account_id"),
        "timeout_seconds": one("timeout_seconds"),
        "card_wait_seconds": one("card_wait_seconds"),
        "objects": objects,
        # but a secret is never shown back, also not as typed.
        **{f"{CUSTOM}{name}": "" for name in SECRET_FIELDS},
        "disconnect-answered_only": one("disconnect-answered_only") == "1",
    }
    return payload, shown


_PARTS = frozenset({CUSTOM[:-1], *ACCESS_KEYS})


def _custom_input(one: Any) -> dict[str, Any]:
    """A custom lookup's fields of the form → the API's lookup: the secrets only when
    typed (left empty, the stored one is kept); an access with nothing typed is not used
    (text without a method is refused by the method's check)."""
    lookup: dict[str, Any] = {
        "kind": "custom",
        "auth_type": one(f"{CUSTOM}auth_type") or "none",
        "oauth_account_id": one(f"{CUSTOM}oauth_account_id").strip() or None,
        "basic_username": one(f"{CUSTOM}basic_username"),
    }
    for name in SECRET_FIELDS:
        if one(f"{CUSTOM}{name}"):
            lookup[name] = one(f"{CUSTOM}{name}")
    for name in ("timeout_seconds", "card_wait_seconds"):
        if one(f"{CUSTOM}{name}").strip():
            lookup[name] = one(f"{CUSTOM}{name}").strip()
    accesses: dict[str, Any] = {}
    for key in ACCESS_KEYS:
        access: dict[str, Any] = {name: one(f"{key}-{name}") for name in ACCESS_FIELDS}
        if key in READING_ACCESSES and one(f"{key}-response_format").strip():
            access["response_format"] = one(f"{key}-response_format")
        # The session time and answered-only have defaults: they alone are not a use.
        typed = any(str(value).strip() for value in access.values())
        if key == "auth" and one("auth-session_minutes").strip():
            access["session_minutes"] = one("auth-session_minutes").strip()
        if not access["url"].strip():
            del access["url"]  # said as required, not as too short
        if key == "disconnect":
            access["answered_only"] = one("disconnect-answered_only") == "1"
        accesses[key] = access if typed else None
    lookup["accesses"] = accesses
    return lookup


def _form_of(read: ScreenPopRead) -> dict[str, Any]:
    data = {**BLANK, **read.model_dump(mode="json")}
    lookup = data.pop("lookup") or {}
    data["strip_prefixes"] = ", ".join(data["strip_prefixes"])
    data["wrapup_reasons"] = "\n".join(data["wrapup_reasons"])
    data["more_numbers"] = ""
    data["lookup_kind"] = lookup.get("kind", "")
    if lookup.get("kind") == "custom":
        for name in CUSTOM_FIELDS:
            if name not in SECRET_FIELDS and lookup.get(name) is not None:
                data[f"{CUSTOM}{name}"] = lookup[name]
        for name in SECRET_FIELDS:
            data[f"{CUSTOM}{name}_set"] = bool(lookup.get(f"{name}_set"))
        for key, access in (lookup.get("accesses") or {}).items():
            for name, value in (access or {}).items():
                data[f"{key}-{name}"] = value
        return data
    data["oauth_account_id"] = str(lookup.get("oauth_account_id", ""))
    for name in ("timeout_seconds", "card_wait_seconds"):
        data[name] = lookup.get(name, BLANK[name])
    data["objects"] = lookup.get("objects") or BLANK["objects"]
    return data


def _field_of(loc: list[str]) -> str:
    """A pydantic or service error's location → the form field it is shown next to
    (``lookup.custom.accesses.search.url`` → ``search-url``)."""
    if loc[:1] == ["lookup"]:
        rest = loc[1:]
        custom = rest[:1] == ["custom"]
        if rest[:1] in (["salesforce"], ["custom"]):
            rest = rest[1:]
        if rest[:1] == ["accesses"]:
            if len(rest) >= 3:
                return f"{rest[1]}-{rest[2]}"
            return f"{rest[1]}-method" if len(rest) == 2 else "lookup_kind"
        if not rest or rest[:1] == ["kind"]:
            return "lookup_kind"
        if custom:
            return f"{CUSTOM}{rest[0]}"
        if rest[:1] == ["objects"] and len(rest) > 1:
            return ".".join(["objects", *rest[1:]])
        return rest[0]
    if loc[:1] and loc[0] in LIST_FIELDS:
        return loc[0]
    return ".".join(loc)


def _add(found: Found, field: str, text: str, position: int | None = None) -> None:
    entry = {"message": text, "position": position, "msg": None}
    if entry not in found.setdefault(field, []):
        found[field].append(entry)


def _service_errors(exc: FieldErrors, found: Found, _: Any) -> None:
    for error in exc.errors:
        field = _field_of([str(p) for p in error.loc])
        _add(found, field, render_message(error.msg or error.message, _), error.position)


async def _errors_of(
    exc: ValidationError | FieldErrors,
    payload: dict[str, Any],
    request: Request,
    user: AdminUser,
    session: SessionDep,
    row: ScreenPopProfile | None,
) -> Found:
    """Form field → its errors in the admin's language, with their positions (a list's
    entry is named). When other fields fail their types, a custom lookup that passes its
    own is checked too, so its errors show at the same time."""
    _ = gettext_for(request, user)
    found: Found = {}
    if isinstance(exc, FieldErrors):
        _service_errors(exc, found, _)
        return found
    for detail in exc.errors():
        loc = [str(p) for p in detail["loc"]]
        text = pydantic_text(detail, _)
        if len(loc) == 2 and loc[0] in LIST_FIELDS and loc[1].isdigit():
            entries = payload.get(loc[0]) or []
            index = int(loc[1])
            if index < len(entries):
                text = _("“{value}”: {error}").format(value=entries[index], error=text)
        field = _field_of(loc)
        if field.endswith("-method") and _typed_method(payload, field) == "":
            text = _(NO_METHOD)
        _add(found, field, text)
    lookup = payload.get("lookup")
    if isinstance(lookup, dict) and lookup.get("kind") == "custom":
        try:
            custom = CustomLookup.model_validate(lookup).model_dump(mode="json")
        except ValidationError:
            return found
        trigger = "answer" if payload.get("trigger") == "answer" else "incoming"
        try:
            await service.check_custom(session, custom, trigger, secrets_set_after(custom, row))
        except FieldErrors as more:
            _service_errors(more, found, _)
    return found


def _typed_method(payload: dict[str, Any], field: str) -> Any:
    accesses = (payload.get("lookup") or {}).get("accesses") or {}
    return (accesses.get(field.removesuffix("-method")) or {}).get("method")


def _warnings_of(warnings: list[Warning_]) -> Found:
    found: Found = {}
    for warning in warnings:
        found.setdefault(_field_of(warning.field.split(".")), []).append(
            {"message": warning.message, "position": warning.position, "msg": warning.msg}
        )
    return found


async def _form_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    form: dict[str, Any],
    profile_id: int | None,
    errors: Found | None = None,
    warnings: list[Warning_] | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> Response:
    _ = gettext_for(request, user)
    accounts = list(
        await session.execute(
            select(OAuthAccount.id, OAuthAccount.name).where(OAuthAccount.provider == "salesforce")
        )
    )
    numbers = await number_choices(session, form.get("phone_numbers") or [])
    methods = [(value, _(label)) for value, label in METHODS.items()]
    found = errors or {}
    return await render(
        request,
        "agent/screen_pop_form.html",
        {
            "title": _("Edit screen-pop profile") if profile_id else _("New screen-pop profile"),
            "form": form,
            "profile_id": profile_id,
            # The profile's own fields show their first error; the request macros all.
            "errors": {name: said[0]["message"] for name, said in found.items()},
            "request_errors": found,
            "warnings": _warnings_of(warnings or []),
            "accounts": [(str(i), n) for i, n in accounts],
            "request_accounts": await requests_service.oauth_accounts(session),
            "triggers": [(v, _(label)) for v, label in TRIGGERS],
            "lookup_kinds": [(v, _(label)) for v, label in LOOKUP_KINDS],
            "accesses": [
                {
                    "key": key,
                    "label": _(label),
                    "hint": _(ACCESS_HINTS[key]),
                    # auth and search are read by callbridge: sent by it only.
                    "methods": [("", _("Not used"))]
                    + [
                        (value, text)
                        for value, text in methods
                        if key not in READING_ACCESSES or value.startswith("server_")
                    ],
                    "chosen": dict(methods).get(str(form.get(f"{key}-method") or ""), ""),
                    "open": bool(form.get(f"{key}-method"))
                    or any(name.startswith(f"{key}-") for name in found),
                }
                for key, label in ACCESS_NAMES
            ],
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
        profile = await service.create_profile(
            session, data, f"user:{user.username}", get_runtime(request).secrets
        )
    except (ValidationError, FieldErrors) as exc:
        # Nothing was written: the service checks everything before it changes a row.
        return await _form_page(
            request,
            session,
            user,
            form={**BLANK, **shown},
            profile_id=None,
            errors=await _errors_of(exc, payload, request, user, session, None),
            status_code=422,
        )
    return RedirectResponse(f"/screen-pops/{profile.id}?saved=1", status_code=303)


@router.get("/screen-pops/{profile_id}")
async def edit_profile_page(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    profile = await service.get_profile_or_404(session, profile_id)
    read = await service.describe(session, profile)
    return await _form_page(
        request,
        session,
        user,
        form=_form_of(read),
        profile_id=profile_id,
        warnings=read.warnings,
        saved=bool(request.query_params.get("saved")),
    )


@router.post("/screen-pops/{profile_id}", dependencies=[CsrfChecked])
async def update_profile(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    profile = await service.get_profile_or_404(session, profile_id)
    payload, shown = await _form_input(request)
    current = (await service.describe(session, profile)).model_dump()
    payload = keep_line_endings(payload, current)
    stored = {f"{CUSTOM}{k}_set": v for k, v in secrets_set_after({}, profile).items()}
    try:
        # Every field is sent: the form replaces the profile as a whole (a custom lookup's
        # secrets left empty are kept by the service).
        data = ScreenPopUpdate.model_validate(
            ScreenPopCreate.model_validate(payload).model_dump(exclude_unset=True)
        )
        await service.update_profile(
            session, profile, data, f"user:{user.username}", get_runtime(request).secrets
        )
    except (ValidationError, FieldErrors) as exc:
        # Nothing was written: the service checks everything before it changes a row.
        return await _form_page(
            request,
            session,
            user,
            form={**BLANK, **shown, **stored},
            profile_id=profile_id,
            errors=await _errors_of(exc, payload, request, user, session, profile),
            status_code=422,
        )
    await session.refresh(profile)
    read = await service.describe(session, profile)
    return await _form_page(
        request,
        session,
        user,
        form=_form_of(read),
        profile_id=profile_id,
        warnings=read.warnings,
        saved=True,
    )


@router.post("/screen-pops/{profile_id}/delete", dependencies=[CsrfChecked])
async def delete_profile(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    profile = await service.get_profile_or_404(session, profile_id)
    await service.delete_profile(session, profile, f"user:{user.username}")
    return RedirectResponse("/screen-pops?deleted=1", status_code=303)


TEST_FIELDS = ("tel", "called", "tel_name", "extension", "agent_id")


@router.post("/screen-pops/{profile_id}/test", dependencies=[CsrfChecked])
async def test_profile(
    request: Request, session: SessionDep, user: AdminUser, profile_id: int
) -> Response:
    """The test panel (htmx): a number through the saved lookup; its requests and the
    pop that would open (``POST /api/v1/screen-pops/{id}/test``)."""
    profile = await service.get_profile_or_404(session, profile_id)
    values = await form_values(request)
    sample = ScreenPopTest(**{name: values.get(name, "")[:100].strip() for name in TEST_FIELDS})
    result = await pops.test_profile(get_runtime(request), profile, sample)
    _ = gettext_for(request, user)
    return await render(
        request,
        "agent/_test_result.html",
        {
            "result": result,
            "profile": profile,
            "access_labels": {key: _(label) for key, label in ACCESS_NAMES},
            "method_labels": {key: _(label) for key, label in METHODS.items()},
        },
        user=user,
        session=session,
    )
