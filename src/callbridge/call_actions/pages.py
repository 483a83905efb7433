"""Admin pages for call-action rules: the list per event type with reordering, the
edit form with errors and warnings next to their field (with positions), and the test
panel. Built on the same services as ``/api/v1/call-actions``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.rendering import (
    add_template_dir,
    form_errors,
    form_values,
    gettext_for,
    keep_line_endings,
    render,
)
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.call_actions import engine, service
from callbridge.call_actions.schemas import CallActionCreate, CallActionUpdate
from callbridge.db.session import SessionDep
from callbridge.errors import FieldErrors
from callbridge.i18n import N_
from callbridge.models.call import EVENT_TYPES
from callbridge.models.call_action import CallAction
from callbridge.requests import service as requests_service
from callbridge.requests.forms import register_templates, request_form, request_payload
from callbridge.requests.schemas import Warning_
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")
register_templates()

EVENT_LABELS = {
    "incoming": N_("Incoming (着信)"),
    "queue": N_("Queue (コールセンターキュー)"),
    "answer": N_("Answer (コールセンター応答)"),
    "disconnect": N_("Disconnect (コールセンター切断)"),
    "outgoing": N_("Outgoing (発信)"),
}
# Rule outcomes shown on a call's timeline.
OUTCOME_LABELS = (N_("skipped"), N_("stopped"), N_("resumed"))
CHECKBOXES = ("enabled", "retry_non_idempotent", "stop_on_failure")
TEXT_FIELDS = (
    "event",
    "condition_code",
    "condition_pattern",
    "auth_type",
    "basic_username",
    "url",
    "method",
    "headers",
    "body",
    "extract_pattern",
    "json_extractions",
    "memo",
)
BLANK_FORM: dict[str, Any] = {
    "event": "queue",
    "order": "",
    "enabled": True,
    "condition_code": "",
    "condition_pattern": "",
    "auth_type": "oauth",
    "oauth_account_id": "",
    "basic_username": "",
    "basic_password": "",
    "bearer_token": "",
    "url": "",
    "method": "GET",
    "headers": "",
    "body": "",
    "timeout_seconds": "10",
    "extract_pattern": "",
    "json_extractions": "",
    "retry_non_idempotent": False,
    "stop_on_failure": False,
    "memo": "",
    "basic_password_set": False,
    "bearer_token_set": False,
}


def _payload(values: dict[str, str], *, creating: bool) -> dict[str, Any]:
    """Form fields → API fields (only what the form sent; secrets only when typed)."""
    data = request_payload(values, TEXT_FIELDS)
    for name in CHECKBOXES:
        data[name] = values.get(name) == "1"
    for name in ("order", "timeout_seconds"):
        raw = values.get(name, "").strip()
        if raw or not creating:
            data[name] = raw or None
    if not creating:
        data = {k: v for k, v in data.items() if v is not None}
    return data


def _field_messages(exc: FieldErrors) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors:
        found.setdefault(error.loc[-1], []).append(
            {"message": error.message, "position": error.position, "msg": error.msg}
        )
    return found


async def _every_error(
    session: AsyncSession,
    payload: dict[str, Any],
    exc: ValidationError,
    rule: CallAction | None,
    _: Callable[[str], str],
) -> dict[str, list[dict[str, Any]]]:
    """The type errors and, beside them, what the save's checks find in the other fields."""
    errors = {k: [{"message": v, "position": None}] for k, v in form_errors(exc, _).items()}
    beside = await service.errors_beside(session, payload, exc, rule)
    for name, found in _field_messages(FieldErrors(beside)).items():
        errors.setdefault(name, []).extend(found)
    return errors


def _warning_map(warnings: list[Warning_]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for warning in warnings:
        found.setdefault(warning.field, []).append({**warning.model_dump(), "msg": warning.msg})
    return found


async def _form_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    *,
    form: dict[str, Any],
    rule_id: int | None,
    errors: dict[str, list[dict[str, Any]]] | None = None,
    warnings: list[Warning_] | None = None,
    status_code: int = 200,
    saved: bool = False,
) -> Response:
    _ = gettext_for(request, user)
    accounts = await requests_service.oauth_accounts(session)
    return await render(
        request,
        "call_actions/form.html",
        {
            "title": _("Edit call action") if rule_id else _("New call action"),
            "form": form,
            "rule_id": rule_id,
            "errors": errors or {},
            "warnings": _warning_map(warnings or []),
            "accounts": accounts,
            "event_labels": EVENT_LABELS,
            "saved": saved,
        },
        user=user,
        session=session,
        active="call_actions",
        status_code=status_code,
    )


@router.get("/call-actions")
async def rules_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    described, _total = await service.list_described(session, event=None, limit=10_000, offset=0)
    groups = {event: [r for r in described if r.event == event] for event in EVENT_TYPES}
    return await render(
        request,
        "call_actions/list.html",
        {
            "groups": groups,
            "event_labels": EVENT_LABELS,
            "flash": request.query_params.get("saved"),
        },
        user=user,
        session=session,
        active="call_actions",
    )


@router.get("/call-actions/new")
async def new_rule_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    form = dict(BLANK_FORM)
    event = request.query_params.get("event")
    if event in EVENT_TYPES:
        form["event"] = event
    return await _form_page(request, session, user, form=form, rule_id=None)


@router.post("/call-actions/new", dependencies=[CsrfChecked])
async def create_rule(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return await _save(request, session, user, None)


async def _save(
    request: Request, session: SessionDep, user: AdminUser, rule: CallAction | None
) -> Response:
    """Create (``rule`` None) or update a rule from its submitted form: a new rule goes to
    its page, an updated one is shown saved; errors keep the form as typed (422)."""
    _ = gettext_for(request, user)
    values = await form_values(request)
    form = {**BLANK_FORM, **values, **{n: values.get(n) == "1" for n in CHECKBOXES}}
    payload = _payload(values, creating=rule is None)
    secrets, actor = get_runtime(request).secrets, f"user:{user.username}"
    try:
        if rule is None:
            data = CallActionCreate.model_validate(payload)
            created = await service.create_rule(session, data, secrets, actor)
            suffix = "?saved=1&warnings=1" if created.warnings else "?saved=1"
            return RedirectResponse(f"/call-actions/{created.id}{suffix}", status_code=303)
        payload = keep_line_endings(payload, {k: getattr(rule, k, None) for k in payload})
        form["basic_password_set"] = rule.basic_password_encrypted is not None
        form["bearer_token_set"] = rule.bearer_token_encrypted is not None
        changes = CallActionUpdate.model_validate(payload)
        updated = await service.update_rule(session, rule, changes, secrets, actor)
    except ValidationError as exc:
        errors = await _every_error(session, payload, exc, rule, _)
    except FieldErrors as exc:
        errors = _field_messages(exc)
    else:
        return await _form_page(
            request,
            session,
            user,
            form=request_form(updated.model_dump()),
            rule_id=rule.id,
            warnings=updated.warnings,
            saved=True,
        )
    rule_id = rule.id if rule is not None else None
    return await _form_page(
        request, session, user, form=form, rule_id=rule_id, errors=errors, status_code=422
    )


@router.get("/call-actions/{rule_id}")
async def edit_rule_page(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    rule = await service.get_rule_or_404(session, rule_id)
    described = await service.describe(session, rule)
    return await _form_page(
        request,
        session,
        user,
        form=request_form(described.model_dump()),
        rule_id=rule_id,
        warnings=described.warnings,
        saved=bool(request.query_params.get("saved")),
    )


@router.post("/call-actions/{rule_id}", dependencies=[CsrfChecked])
async def update_rule(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    return await _save(request, session, user, await service.get_rule_or_404(session, rule_id))


@router.post("/call-actions/{rule_id}/delete", dependencies=[CsrfChecked])
async def delete_rule(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    rule = await service.get_rule_or_404(session, rule_id)
    await service.delete_rule(session, rule, f"user:{user.username}")
    return RedirectResponse("/call-actions?saved=1", status_code=303)


@router.post("/call-actions/{rule_id}/move", dependencies=[CsrfChecked])
async def move_rule(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    values = await form_values(request)
    rule = await service.get_rule_or_404(session, rule_id)
    await service.move_rule(
        session, rule, -1 if values.get("direction") == "up" else 1, f"user:{user.username}"
    )
    return RedirectResponse(f"/call-actions#event-{rule.event}", status_code=303)


@router.post("/call-actions/{rule_id}/toggle", dependencies=[CsrfChecked])
async def toggle_rule(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    rule = await service.get_rule_or_404(session, rule_id)
    await service.update_rule(
        session,
        rule,
        CallActionUpdate(enabled=not rule.enabled),
        get_runtime(request).secrets,
        f"user:{user.username}",
    )
    return RedirectResponse(f"/call-actions#event-{rule.event}", status_code=303)


@router.post("/call-actions/{rule_id}/test", dependencies=[CsrfChecked])
async def test_rule(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    """The test panel (htmx): expand the rule for the sample data, send it on request."""
    rule = await service.get_rule_or_404(session, rule_id)
    values = await form_values(request)
    variables = {
        "TEL": values.get("TEL", ""),
        "ID": values.get("ID", ""),
        "TELNAME": values.get("TELNAME", ""),
    }
    for line in values.get("more", "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            variables[name.strip().upper()] = value.strip()
    send = values.get("send") == "1"
    described = await service.describe(session, rule)
    run = await engine.test_rule(get_runtime(request), session, rule, variables, send=send)
    _ = gettext_for(request, user)
    missing = [
        _("{name} has no sample value: it expands to an empty string.").format(
            name="{" + name + "}"
        )
        for name in engine.unset_variables(get_runtime(request), rule, variables)
    ]
    return await render(
        request,
        "call_actions/_test_result.html",
        {
            "run": run,
            "sent": send,
            "missing": missing,
            "hints": [
                w for w in described.warnings if w.field in ("extract_pattern", "json_extractions")
            ],
        },
        user=user,
        session=session,
    )
