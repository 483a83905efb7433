"""Admin pages for IVRs: the list, the IVR's settings, its response settings and steps
(each edited on a form of its own, as in BIZTEL's API response tab), and the test panel
with the simulator. Built on the same services as ``/api/v1/ivrs``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.rendering import (
    add_template_dir,
    form_values,
    gettext_for,
    keep_line_endings,
    pydantic_message,
    render,
    render_message,
)
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.db.session import SessionDep
from callbridge.errors import FieldError, FieldErrors, NotFound
from callbridge.i18n import N_
from callbridge.ivr import repository, service
from callbridge.ivr.runtime import get_ivr_runtime
from callbridge.ivr.schemas import (
    IvrCreate,
    IvrRead,
    IvrTestRequest,
    IvrUpdate,
)
from callbridge.ivr.testing import run_test
from callbridge.kit.crypto import SecretDecryptionError
from callbridge.messages import Message
from callbridge.models.ivr import Ivr
from callbridge.models.oauth_account import OAuthAccount
from callbridge.requests import service as requests_service
from callbridge.requests.forms import register_templates, request_form, request_payload
from callbridge.requests.schemas import Warning_
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")
register_templates()

TRANSFER_LABELS = {
    "callcenter": N_("Call center"),
    "extension": N_("Extension"),
    "ivr": N_("Another IVR"),
    "external": N_("External number"),
    "hangup": N_("Hang up"),
    "end_rule": N_("Follow the IVR's end rule"),
}
GUIDANCE_LABELS = {
    "": N_("None"),
    "tts": N_("Real-time TTS"),
    "audio": N_("Audio file"),
}
OUTCOME_LABELS = {
    "matched": N_("matched"),
    "no_match": N_("no match"),
    "request_error": N_("request error"),
    "input_invalid": N_("invalid input"),
}
BEHAVIOURS = {
    "on_error": N_("On request error"),
    "on_input_invalid": N_("On invalid input"),
    "on_no_match": N_("When no response setting matches"),
}
IVR_TEXT_FIELDS = (
    "key",
    "name",
    "auth_type",
    "basic_username",
    "url",
    "method",
    "headers",
    "body",
    "extract_pattern",
    "digits_pattern",
    "memo",
)
RESPONSE_TEXT_FIELDS = (
    "response_code",
    "response_pattern",
    "extract_pattern",
    "condition_code",
    "condition_pattern",
    "memo",
)
STEP_TEXT_FIELDS = (
    "name",
    "url",
    "method",
    "headers",
    "body",
    "extract_pattern",
    "condition_code",
    "condition_pattern",
)
Messages = dict[str, list[dict[str, Any]]]


# ---- form ↔ API values ---------------------------------------------------------------


def _guidance(values: dict[str, str], prefix: str) -> dict[str, str] | None:
    kind = values.get(f"{prefix}guidance_type", "")
    if kind == "tts":
        return {"type": "tts", "text": values.get(f"{prefix}guidance_text", "")}
    if kind == "audio":
        return {"type": "audio", "file": values.get(f"{prefix}guidance_file", "")}
    return None


def _transfer(values: dict[str, str], prefix: str) -> dict[str, Any]:
    return {
        "kind": values.get(f"{prefix}transfer_kind") or "end_rule",
        "target": values.get(f"{prefix}transfer_target", "").strip() or None,
    }


def _behaviour(values: dict[str, str], prefix: str) -> dict[str, Any] | None:
    guidance = _guidance(values, prefix)
    transfer = _transfer(values, prefix)
    if guidance is None and transfer["kind"] == "end_rule" and not transfer["target"]:
        return None
    return {"guidance": guidance, "transfer": transfer}


def _flatten_guidance(form: dict[str, Any], prefix: str, guidance: Any) -> None:
    guidance = guidance or {}
    form[f"{prefix}guidance_type"] = guidance.get("type", "")
    form[f"{prefix}guidance_text"] = guidance.get("text", "") if guidance else ""
    form[f"{prefix}guidance_file"] = guidance.get("file", "") if guidance else ""


def _flatten_transfer(form: dict[str, Any], prefix: str, transfer: Any) -> None:
    transfer = transfer or {}
    form[f"{prefix}transfer_kind"] = transfer.get("kind", "end_rule")
    form[f"{prefix}transfer_target"] = transfer.get("target") or ""


IVR_DEFAULTS: dict[str, Any] = {
    "key": "",
    "name": "",
    "auth_type": "oauth",
    "basic_username": "",
    "basic_password_set": False,
    "bearer_token_set": False,
    "url": "",
    "method": "GET",
    "headers": "",
    "body": "",
    "extract_pattern": "",
    "digits_pattern": "",
    "memo": "",
}


def ivr_form(ivr: IvrRead | None) -> dict[str, Any]:
    """The settings form's values for a stored IVR (or a new one)."""
    values: dict[str, Any] = {**IVR_DEFAULTS, **(ivr.model_dump() if ivr is not None else {})}
    form = request_form(values)
    form.update(
        timeout_seconds=f"{values.get('timeout_seconds', 10):g}",
        max_digits=str(values.get("max_digits", 0)),
        pbx_variables=" ".join(values.get("pbx_variables", [])),
    )
    _flatten_guidance(form, "pre_", values.get("pre_guidance"))
    for name in BEHAVIOURS:
        behaviour = values.get(name) or {}
        _flatten_guidance(form, f"{name}_", behaviour.get("guidance"))
        _flatten_transfer(form, f"{name}_", behaviour.get("transfer"))
    return form


def _ivr_payload(values: dict[str, str]) -> dict[str, Any]:
    data = request_payload(values, IVR_TEXT_FIELDS)
    data["timeout_seconds"] = values.get("timeout_seconds", "").strip() or 10
    data["max_digits"] = values.get("max_digits", "").strip() or 0
    data["pbx_variables"] = values.get("pbx_variables", "").replace(",", " ").split()
    data["pre_guidance"] = _guidance(values, "pre_")
    for name in BEHAVIOURS:
        data[name] = _behaviour(values, f"{name}_")
    return data


def response_form(setting: dict[str, Any] | None, next_priority: int = 1) -> dict[str, Any]:
    setting = setting or {}
    form: dict[str, Any] = {
        "priority": str(setting.get("priority", next_priority)),
        "response_code": setting.get("response_code", "200"),
        "response_pattern": setting.get("response_pattern", ""),
        "extract_pattern": setting.get("extract_pattern", ""),
        "condition_code": setting.get("condition_code", ""),
        "condition_pattern": setting.get("condition_pattern", ""),
        "step": setting.get("step") or "",
        "memo": setting.get("memo", ""),
    }
    _flatten_guidance(form, "", setting.get("guidance"))
    _flatten_transfer(form, "", setting.get("transfer") or {"kind": "callcenter", "target": ""})
    return form


def _response_payload(values: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {name: values.get(name, "") for name in RESPONSE_TEXT_FIELDS}
    data["priority"] = values.get("priority", "").strip() or None
    data["step"] = values.get("step", "").strip() or None
    data["guidance"] = _guidance(values, "")
    data["transfer"] = _transfer(values, "")
    return data


STEP_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(STEP_TEXT_FIELDS, ""),
    "method": "GET",
    "auth_type": "",
}


def step_form(step: dict[str, Any] | None) -> dict[str, Any]:
    form = request_form({**STEP_DEFAULTS, **(step or {})})
    form["auth_type"] = form["auth_type"] or ""
    return form


def _step_payload(values: dict[str, str]) -> dict[str, Any]:
    data = request_payload(values, STEP_TEXT_FIELDS)
    data["auth_type"] = values.get("auth_type", "").strip() or None
    return data


# ---- errors and warnings next to their form field ---------------------------------------


def _form_name(path: tuple[str | int, ...]) -> str:
    """An API location (``on_error.guidance.tts.text``) → its form field
    (``on_error_guidance_text``)."""
    parts = [str(p) for p in path if p not in ("tts", "audio", "body")]
    if not parts:
        return "__all__"
    if parts[0] == "pre_guidance":
        parts = ["pre", "guidance", *parts[1:]]
    if parts[-1] == "guidance":
        parts.append("type")
    elif parts[-1] == "transfer":
        parts.append("target")
    return "_".join(parts)


def _scoped(path: tuple[str | int, ...], scope: tuple[str | int, ...] | None) -> str | None:
    """The form field of ``path`` on a form showing ``scope`` (``("responses", 2)``);
    None when the path belongs elsewhere."""
    if scope is None:
        if path and path[0] in ("responses", "steps"):
            return None
        return _form_name(path)
    if tuple(path[: len(scope)]) == scope:
        return _form_name(path[len(scope) :])
    return None


def validation_messages(
    exc: ValidationError | FieldErrors, scope: tuple[str | int, ...] | None
) -> Messages:
    found: Messages = {}
    items: list[tuple[tuple[str | int, ...], str, int | None, Message | None]]
    if isinstance(exc, ValidationError):
        items = [
            (
                tuple(e["loc"]),
                str(e["msg"]).removeprefix("Value error, "),
                None,
                pydantic_message(e),
            )
            for e in exc.errors(include_url=False)
        ]
    else:
        items = [
            (getattr(e, "path", tuple(e.loc)), e.message, e.position, e.msg) for e in exc.errors
        ]
    for path, message, position, msg in items:
        name = _scoped(path, scope) or "__all__"
        found.setdefault(name, []).append({"message": message, "position": position, "msg": msg})
    return found


async def form_messages(
    session: AsyncSession,
    exc: ValidationError | FieldErrors,
    payload: dict[str, Any],
    ivr: Ivr | None,
    scope: tuple[str | int, ...] | None,
) -> Messages:
    """The form's errors, all at once: type errors with what the save's checks find in the
    fields that passed them."""
    found = validation_messages(exc, scope)
    if isinstance(exc, ValidationError):
        beside = await service.errors_beside(session, payload, exc, ivr)
        if beside:
            for name, messages in validation_messages(FieldErrors(beside), scope).items():
                found.setdefault(name, []).extend(messages)
    return found


def _path_of(error: FieldError) -> tuple[str | int, ...]:
    path = getattr(error, "path", None)
    return tuple(path) if path is not None else tuple(error.loc)


def warning_messages(warnings: list[Warning_], scope: tuple[str | int, ...] | None) -> Messages:
    found: Messages = {}
    for warning in warnings:
        path = tuple(int(p) if p.isdigit() else p for p in warning.field.split("."))
        name = _scoped(path, scope)
        if name is not None:
            found.setdefault(name, []).append({**warning.model_dump(), "msg": warning.msg})
    return found


# The form labels of the API's field names, for saying where a note belongs.
FIELD_LABELS = {
    "key": N_("Key"),
    "name": N_("Name"),
    "auth_type": N_("Authentication"),
    "oauth_account_id": N_("OAuth account"),
    "url": N_("URL"),
    "method": N_("Method"),
    "headers": N_("Request headers"),
    "body": N_("Request body"),
    "timeout_seconds": N_("Timeout (seconds)"),
    "extract_pattern": N_("Variable extraction pattern"),
    "max_digits": N_("Maximum digits"),
    "digits_pattern": N_("Input check pattern"),
    "pbx_variables": N_("PBX variables"),
    "memo": N_("Memo"),
    "priority": N_("Priority"),
    "response_code": N_("Response code"),
    "response_pattern": N_("Response pattern"),
    "condition_code": N_("Condition code"),
    "condition_pattern": N_("Condition pattern"),
    "step": N_("Step"),
    "guidance": N_("Guidance"),
    "type": N_("Guidance type"),
    "text": N_("TTS text"),
    "file": N_("Audio file"),
    "transfer": N_("Transfer"),
    "kind": N_("Transfer"),
    "target": N_("Target"),
    **BEHAVIOURS,
}


@dataclass(frozen=True)
class Note:
    """A save-time note said the way the screen names things: 優先順位 1 · レスポンスパターン,
    with every position of the same note on that field."""

    where: str
    message: str
    positions: tuple[int, ...]


def where_of(field: str, ivr: Any, _: Callable[[str], str]) -> str:
    """``responses.0.response_pattern`` → "Priority 1 · Response pattern" (the setting's
    own priority; a step by its name), in the page's language."""
    parts = field.split(".")
    said: list[str] = []
    if len(parts) > 2 and parts[0] in ("responses", "steps") and parts[1].isdigit():
        index = int(parts[1])
        items = list(getattr(ivr, parts[0], None) or [])
        if parts[0] == "responses":
            priority = items[index].priority if index < len(items) else index + 1
            said.append(_("Priority {n}").format(n=priority))
        else:
            name = items[index].name if index < len(items) else str(index + 1)
            said.append(f"{_('Step')} {name}")
        parts = parts[2:]
    for part in parts:
        if part in ("tts", "audio", "pre_guidance"):
            continue
        said.append(_(FIELD_LABELS[part]) if part in FIELD_LABELS else part)
    return " · ".join(said)


def located_notes(warnings: list[Warning_], ivr: Any, _: Callable[[str], str]) -> list[Note]:
    """One note per place and message (a ¥ read twice in one pattern is one note with
    both positions)."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for warning in warnings:
        said = render_message(warning.msg or warning.message, _)
        positions = grouped.setdefault((where_of(warning.field, ivr, _), said), [])
        if warning.position is not None:
            positions.append(warning.position)
    return [Note(where, message, tuple(p)) for (where, message), p in grouped.items()]


def _scope_index(warnings: list[Warning_], kind: str) -> dict[int, list[Warning_]]:
    by_index: dict[int, list[Warning_]] = {}
    for warning in warnings:
        parts = warning.field.split(".")
        if len(parts) > 1 and parts[0] == kind and parts[1].isdigit():
            by_index.setdefault(int(parts[1]), []).append(warning)
    return by_index


# ---- notes that outlive the redirect after a save -------------------------------------------


def _sealed_notes(request: Request, saved: IvrRead, current: IvrRead) -> str:
    """Notes about what the save changed on the way in (「なし」 read as empty, ...): the
    stored IVR no longer gives rise to them, so they travel with the redirect, sealed with
    the secret key so a link cannot put words on the page."""
    once = [{**w.model_dump(), "msg": w.msg} for w in saved.warnings if w not in current.warnings]
    return get_runtime(request).secrets.encrypt(json.dumps(once)) if once else ""


def _unsealed_notes(request: Request) -> list[Warning_]:
    token = request.query_params.get("notes")
    if not token:
        return []
    try:
        return [Warning_(**w) for w in json.loads(get_runtime(request).secrets.decrypt(token))]
    except (SecretDecryptionError, ValueError, TypeError):
        return []


def _saved_location(ivr_id: int, notes: str, anchor: str = "") -> str:
    query = f"saved=1&{urlencode({'notes': notes})}" if notes else "saved=1"
    return f"/ivrs/{ivr_id}?{query}{anchor}"


# ---- pages ---------------------------------------------------------------------------------


def _account_problems(ivr: IvrRead, accounts: list[OAuthAccount]) -> list[OAuthAccount]:
    """The OAuth accounts this IVR uses that cannot be used now."""
    used = {ivr.oauth_account_id} if ivr.auth_type == "oauth" else set()
    for step in ivr.steps:
        if step.auth_type == "oauth" or (step.auth_type is None and ivr.auth_type == "oauth"):
            used.add(step.oauth_account_id or ivr.oauth_account_id)
    return [a for a in accounts if a.id in used and a.status in ("needs_reauthorization", "error")]


async def _ivr_or_404(session: AsyncSession, ivr_id: int) -> Ivr:
    ivr = await repository.get_by_id(session, ivr_id)
    if ivr is None:
        raise NotFound(N_("This IVR does not exist."))
    return ivr


@router.get("/ivrs")
async def ivrs_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    rows = await repository.all_ivrs(session)
    accounts = await requests_service.oauth_accounts(session)
    by_id = {a.id: a for a in accounts}
    available = await service.available_response_names(session)
    described = [await service.describe(session, ivr, available) for ivr in rows]
    return await render(
        request,
        "ivr/list.html",
        {
            "ivrs": described,
            "accounts": by_id,
            "problems": {d.id: _account_problems(d, accounts) for d in described},
            "flash": request.query_params.get("saved"),
        },
        user=user,
        session=session,
        active="ivrs",
    )


async def _ivr_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    ivr: IvrRead | None,
    form: dict[str, Any],
    errors: Messages | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> Response:
    _ = gettext_for(request, user)
    accounts = await requests_service.oauth_accounts(session)
    warnings = ivr.warnings if ivr is not None else []
    return await render(
        request,
        "ivr/detail.html",
        {
            "title": _("IVR {key}").format(key=ivr.key) if ivr else _("New IVR"),
            "ivr": ivr,
            "form": form,
            "errors": errors or {},
            "warnings": warning_messages(warnings, None),
            "response_notes": {
                i: located_notes(ws, ivr, _)
                for i, ws in _scope_index(warnings, "responses").items()
            },
            "step_notes": {
                i: located_notes(ws, ivr, _) for i, ws in _scope_index(warnings, "steps").items()
            },
            "accounts": accounts,
            "problems": _account_problems(ivr, accounts) if ivr else [],
            "transfer_labels": TRANSFER_LABELS,
            "guidance_labels": GUIDANCE_LABELS,
            "behaviours": BEHAVIOURS,
            "saved": saved,
        },
        user=user,
        session=session,
        active="ivrs",
        status_code=status_code,
    )


@router.get("/ivrs/new")
async def new_ivr_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return await _ivr_page(request, session, user, ivr=None, form=ivr_form(None))


@router.post("/ivrs/new", dependencies=[CsrfChecked])
async def create_ivr(request: Request, session: SessionDep, user: AdminUser) -> Response:
    values = await form_values(request)
    form = {**ivr_form(None), **values}
    payload = _ivr_payload(values)
    try:
        data = IvrCreate.model_validate(payload)
        created = await service.create_ivr(
            session, data, get_runtime(request).secrets, f"user:{user.username}"
        )
    except (ValidationError, FieldErrors) as exc:
        return await _ivr_page(
            request,
            session,
            user,
            ivr=None,
            form=form,
            errors=await form_messages(session, exc, payload, None, None),
            status_code=422,
        )
    current = await service.describe(session, await _ivr_or_404(session, created.id))
    notes = _sealed_notes(request, created, current)
    return RedirectResponse(_saved_location(created.id, notes), status_code=303)


@router.get("/ivrs/{ivr_id}")
async def ivr_page(request: Request, session: SessionDep, user: AdminUser, ivr_id: int) -> Response:
    described = await service.describe(session, await _ivr_or_404(session, ivr_id))
    once = _unsealed_notes(request)
    if once:
        described = described.model_copy(update={"warnings": [*described.warnings, *once]})
    return await _ivr_page(
        request,
        session,
        user,
        ivr=described,
        form=ivr_form(described),
        saved=bool(request.query_params.get("saved")),
    )


async def _update(
    request: Request, session: AsyncSession, user: AdminUser, ivr: Ivr, changes: dict[str, Any]
) -> IvrRead:
    """Validate and save ``changes`` (raises ValidationError or FieldErrors)."""
    old_key = ivr.key
    data = IvrUpdate.model_validate(changes)
    updated = await service.update_ivr(
        session, ivr, data, get_runtime(request).secrets, f"user:{user.username}"
    )
    runtime = get_ivr_runtime(request)
    runtime.forget(old_key)
    runtime.forget(updated.key)
    return updated


@router.post("/ivrs/{ivr_id}", dependencies=[CsrfChecked])
async def update_ivr(
    request: Request, session: SessionDep, user: AdminUser, ivr_id: int
) -> Response:
    ivr = await _ivr_or_404(session, ivr_id)
    values = await form_values(request)
    current = await service.describe(session, ivr)
    payload = keep_line_endings(_ivr_payload(values), current.model_dump())
    try:
        updated = await _update(request, session, user, ivr, payload)
    except (ValidationError, FieldErrors) as exc:
        form = {**ivr_form(current), **values}
        return await _ivr_page(
            request,
            session,
            user,
            ivr=current,
            form=form,
            errors=await form_messages(session, exc, payload, ivr, None),
            status_code=422,
        )
    return await _ivr_page(request, session, user, ivr=updated, form=ivr_form(updated), saved=True)


@router.post("/ivrs/{ivr_id}/delete", dependencies=[CsrfChecked])
async def delete_ivr(
    request: Request, session: SessionDep, user: AdminUser, ivr_id: int
) -> Response:
    ivr = await _ivr_or_404(session, ivr_id)
    await service.delete_ivr(session, ivr, f"user:{user.username}")
    get_ivr_runtime(request).forget(ivr.key)
    return RedirectResponse("/ivrs?saved=1", status_code=303)


# ---- response settings and steps ------------------------------------------------------------


async def _item_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    kind: str,
    ivr: IvrRead,
    index: int | None,
    form: dict[str, Any],
    errors: Messages | None = None,
    status_code: int = 200,
) -> Response:
    _ = gettext_for(request, user)
    items = ivr.responses if kind == "responses" else ivr.steps
    scope = (kind, index if index is not None else len(items))
    if kind == "responses":
        title = _("Response setting") if index is not None else _("New response setting")
    else:
        title = _("Step") if index is not None else _("New step")
    item_id = items[index].id if index is not None else None
    return await render(
        request,
        "ivr/response.html" if kind == "responses" else "ivr/step.html",
        {
            "title": title,
            "kind": kind,
            "ivr": ivr,
            "item_id": item_id,
            "form": form,
            "errors": errors or {},
            "warnings": warning_messages(ivr.warnings, scope) if index is not None else {},
            "accounts": await requests_service.oauth_accounts(session),
            "transfer_labels": TRANSFER_LABELS,
            "guidance_labels": GUIDANCE_LABELS,
        },
        user=user,
        session=session,
        active="ivrs",
        status_code=status_code,
    )


def _index_of(ivr: IvrRead, kind: str, item_id: int) -> int:
    ids = [r.id for r in ivr.responses] if kind == "responses" else [s.id for s in ivr.steps]
    for index, found in enumerate(ids):
        if found == item_id:
            return index
    raise NotFound(N_("This item does not exist (it may have been changed meanwhile)."))


def _items(ivr: IvrRead, kind: str) -> list[dict[str, Any]]:
    items = ivr.responses if kind == "responses" else ivr.steps
    return [item.model_dump(exclude={"id"}) for item in items]


async def _item_get(
    request: Request, session: SessionDep, user: AdminUser, ivr_id: int, kind: str, item_id: int
) -> Response:
    described = await service.describe(session, await _ivr_or_404(session, ivr_id))
    if item_id == 0:
        index = None
        if kind == "responses":
            highest = max((r.priority for r in described.responses), default=0)
            form = response_form(None, highest + 1)
        else:
            form = step_form(None)
    else:
        index = _index_of(described, kind, item_id)
        item = _items(described, kind)[index]
        form = response_form(item) if kind == "responses" else step_form(item)
    return await _item_page(
        request, session, user, kind=kind, ivr=described, index=index, form=form
    )


async def _item_post(
    request: Request, session: SessionDep, user: AdminUser, ivr_id: int, kind: str, item_id: int
) -> Response:
    ivr = await _ivr_or_404(session, ivr_id)
    described = await service.describe(session, ivr)
    values = await form_values(request)
    items = _items(described, kind)
    index = len(items) if item_id == 0 else _index_of(described, kind, item_id)
    payload = _response_payload(values) if kind == "responses" else _step_payload(values)
    if index < len(items):
        payload = keep_line_endings(payload, items[index])
    if index == len(items):
        items.append(payload)
    else:
        items[index] = payload
    try:
        updated = await _update(request, session, user, ivr, {kind: items})
    except (ValidationError, FieldErrors) as exc:
        messages = await form_messages(session, exc, {kind: items}, ivr, (kind, index))
        form = {**(response_form(None) if kind == "responses" else step_form(None)), **values}
        return await _item_page(
            request,
            session,
            user,
            kind=kind,
            ivr=described,
            index=None if item_id == 0 else index,
            form=form,
            errors=messages,
            status_code=422,
        )
    notes = _sealed_notes(request, updated, await service.describe(session, ivr))
    return RedirectResponse(_saved_location(ivr_id, notes, f"#{kind}"), status_code=303)


async def _item_delete(
    request: Request, session: SessionDep, user: AdminUser, ivr_id: int, kind: str, item_id: int
) -> Response:
    ivr = await _ivr_or_404(session, ivr_id)
    described = await service.describe(session, ivr)
    index = _index_of(described, kind, item_id)
    items = _items(described, kind)
    del items[index]
    try:
        await _update(request, session, user, ivr, {kind: items})
    except (ValidationError, FieldErrors) as exc:
        # Removing a step that a response setting names: say so on the IVR page.
        return await _ivr_page(
            request,
            session,
            user,
            ivr=described,
            form=ivr_form(described),
            errors={"__all__": [m for ms in validation_messages(exc, None).values() for m in ms]},
            status_code=422,
        )
    return RedirectResponse(f"/ivrs/{ivr_id}?saved=1#{kind}", status_code=303)


def _item_routes(kind: str) -> None:
    """The pages of one kind of item (``responses`` or ``steps``): new, edit, delete."""

    async def new_page(
        request: Request, session: SessionDep, user: AdminUser, ivr_id: int
    ) -> Response:
        return await _item_get(request, session, user, ivr_id, kind, 0)

    async def create(
        request: Request, session: SessionDep, user: AdminUser, ivr_id: int
    ) -> Response:
        return await _item_post(request, session, user, ivr_id, kind, 0)

    async def page(
        request: Request, session: SessionDep, user: AdminUser, ivr_id: int, item_id: int
    ) -> Response:
        return await _item_get(request, session, user, ivr_id, kind, item_id)

    async def update(
        request: Request, session: SessionDep, user: AdminUser, ivr_id: int, item_id: int
    ) -> Response:
        return await _item_post(request, session, user, ivr_id, kind, item_id)

    async def delete(
        request: Request, session: SessionDep, user: AdminUser, ivr_id: int, item_id: int
    ) -> Response:
        return await _item_delete(request, session, user, ivr_id, kind, item_id)

    base = f"/ivrs/{{ivr_id}}/{kind}"
    checked = [CsrfChecked]
    router.add_api_route(f"{base}/new", new_page, methods=["GET"])
    router.add_api_route(f"{base}/new", create, methods=["POST"], dependencies=checked)
    router.add_api_route(f"{base}/{{item_id}}", page, methods=["GET"])
    router.add_api_route(f"{base}/{{item_id}}", update, methods=["POST"], dependencies=checked)
    router.add_api_route(
        f"{base}/{{item_id}}/delete", delete, methods=["POST"], dependencies=checked
    )


_item_routes("responses")
_item_routes("steps")


# ---- the test panel and simulator -----------------------------------------------------------


@router.post("/ivrs/{ivr_id}/test", dependencies=[CsrfChecked])
async def test_ivr(request: Request, session: SessionDep, user: AdminUser, ivr_id: int) -> Response:
    """The simulator (htmx): what the caller hears and where they go, and why."""
    ivr = await _ivr_or_404(session, ivr_id)
    values = await form_values(request)
    variables: dict[str, str] = {}
    for line in values.get("variables", "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            variables[name.strip().upper()] = value.strip()
    data = IvrTestRequest(
        tel=values.get("tel", "")[:100],
        digits=values.get("digits", "")[:200],
        called=values.get("called", "")[:100],
        variables=variables,
        send=values.get("send", "1") != "0",
    )
    result = await run_test(session, request, ivr, data)
    return await render(
        request,
        "ivr/_test_result.html",
        {
            "result": result,
            "notes": located_notes(result.warnings, ivr, gettext_for(request, user)),
            "tel": data.tel,
            "digits": data.digits,
            "ivr_key": ivr.key,
            "transfer_labels": TRANSFER_LABELS,
            "outcome_labels": OUTCOME_LABELS,
        },
        user=user,
        session=session,
    )
