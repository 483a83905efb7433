"""Rules: create, update, delete, reorder, with save-time validation and warnings.
Services never commit; the router's session does."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.call_actions import repository
from callbridge.call_actions.compiler import compile_rule, is_earlier
from callbridge.call_actions.schemas import (
    CallActionCreate,
    CallActionRead,
    CallActionUpdate,
    ReorderRequest,
)
from callbridge.errors import FieldError, FieldErrors, NotFound
from callbridge.kit.crypto import SecretBox
from callbridge.messages import Message, define
from callbridge.models.call_action import CallAction
from callbridge.requests import (
    CompiledRequest,
    RequestInvalid,
    produced_names,
    secret_errors,
)
from callbridge.requests import service as requests_service
from callbridge.requests.fields import REQUEST_TEXT_FIELDS, SECRET_FIELDS, normalise_empty_words
from callbridge.requests.schemas import Warning_
from callbridge.requests.secrets import secret_flags, secrets_set_after, store_secret

FEATURE = "call_actions"

define(
    {
        "not_found.call_action": "call action {id} does not exist",
        "reorder_incomplete": "List every rule of the event '{event}' exactly once: {ids}.",
    }
)
# API field → column, where they differ.
COLUMNS = {"order": "execution_order"}


def rule_values(rule: CallAction) -> dict[str, Any]:
    """The rule's fields by API name (secrets as ``*_set`` flags)."""
    return {
        "event": rule.event,
        "order": rule.execution_order,
        "enabled": rule.enabled,
        "condition_code": rule.condition_code,
        "condition_pattern": rule.condition_pattern,
        "auth_type": rule.auth_type,
        "oauth_account_id": rule.oauth_account_id,
        "basic_username": rule.basic_username,
        **secret_flags(rule),
        "url": rule.url,
        "method": rule.method,
        "headers": rule.headers,
        "body": rule.body,
        "timeout_seconds": rule.timeout_seconds,
        "extract_pattern": rule.extract_pattern,
        "json_extractions": rule.json_extractions,
        "retry_non_idempotent": rule.retry_non_idempotent,
        "stop_on_failure": rule.stop_on_failure,
        "memo": rule.memo,
    }


def rule_label(rule: CallAction) -> str:
    first_line = rule.memo.strip().splitlines()[0] if rule.memo.strip() else ""
    return first_line[:120] or f"#{rule.id} {rule.method} {rule.url.strip()[:100]}"


async def available_response_names(
    session: AsyncSession,
    event: str,
    order: int,
    rule_id: int | None,
    rules: list[CallAction] | None = None,
) -> set[str]:
    """Names that rules running before this position (and IVRs) can extract."""
    if rules is None:
        rules = await repository.all_rules(session)
    names: set[str] = set()
    for other in rules:
        if other.id == rule_id:
            continue
        if is_earlier(event, order, rule_id, other.event, other.execution_order, other.id):
            names.update(produced_names(other.extract_pattern, other.json_extractions))
    names.update(await requests_service.names_from_others(session, FEATURE))
    return names


async def produced_by_rules(session: AsyncSession) -> set[str]:
    """Every name a rule can put on a call (for the other features' warnings)."""
    names: set[str] = set()
    for rule in await repository.all_rules(session):
        names.update(produced_names(rule.extract_pattern, rule.json_extractions))
    return names


requests_service.register_names(FEATURE, produced_by_rules)


async def check_rule(
    session: AsyncSession,
    values: dict[str, Any],
    rule_id: int | None,
    *,
    secrets_set: dict[str, bool],
    rules: list[CallAction] | None = None,
) -> tuple[CompiledRequest, list[Warning_]]:
    """Validate the rule's values; every error at once as 422, else the warnings."""
    notes = normalise_empty_words(values, REQUEST_TEXT_FIELDS)
    available = await available_response_names(
        session, values["event"], values["order"], rule_id, rules
    )
    findings = []
    compiled: CompiledRequest | None = None
    try:
        compiled, warnings = compile_rule(values, available_responses=available)
    except RequestInvalid as exc:
        findings.extend(exc.findings)
    if values.get("auth_type") == "oauth":
        findings += await requests_service.missing_accounts(
            session, [("oauth_account_id", values.get("oauth_account_id"))]
        )
    findings += secret_errors({values.get("auth_type")}, secrets_set)
    if findings:
        raise FieldErrors([FieldError(f.field, f.said, f.position) for f in findings])
    assert compiled is not None
    return compiled, [Warning_(**f.as_warning()) for f in (*notes, *warnings)]


def to_read(
    rule: CallAction, compiled: CompiledRequest | None, warnings: list[Warning_]
) -> CallActionRead:
    produces = (
        compiled.produces
        if compiled is not None
        else produced_names(rule.extract_pattern, rule.json_extractions)
    )
    return CallActionRead(
        id=rule.id,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
        produces=[f"RESPONSE_{name}" for name in produces],
        warnings=warnings,
        **rule_values(rule),
    )


async def describe(
    session: AsyncSession, rule: CallAction, rules: list[CallAction] | None = None
) -> CallActionRead:
    """The rule as read, with the warnings it has now (earlier rules may have changed)."""
    values = rule_values(rule)
    try:
        compiled, warnings = await check_rule(
            session, values, rule.id, secrets_set=secrets_set_after({}, rule), rules=rules
        )
    except FieldErrors as exc:
        # Saved before something it depends on changed (its OAuth account was deleted):
        # shown as warnings here; at run time the execution records the error.
        warnings = [Warning_.of_error(e, e.loc[-1]) for e in exc.errors]
        return to_read(rule, None, warnings)
    return to_read(rule, compiled, warnings)


async def list_described(
    session: AsyncSession, *, event: str | None, limit: int, offset: int
) -> tuple[list[CallActionRead], int]:
    rows, total = await repository.list_rules(session, event=event, limit=limit, offset=offset)
    everything = await repository.all_rules(session)
    return [await describe(session, rule, everything) for rule in rows], total


async def get_rule_or_404(session: AsyncSession, rule_id: int) -> CallAction:
    rule = await session.get(CallAction, rule_id)
    if rule is None:
        raise NotFound(Message("not_found.call_action", id=rule_id))
    return rule


def _apply(rule: CallAction, values: dict[str, Any], secrets: SecretBox) -> None:
    for name, value in values.items():
        if name in SECRET_FIELDS:
            store_secret(rule, name, value, secrets)
        else:
            setattr(rule, COLUMNS.get(name, name), value)


async def create_rule(
    session: AsyncSession, data: CallActionCreate, secrets: SecretBox, actor: str
) -> CallActionRead:
    values = data.model_dump()
    if "order" not in data.model_fields_set:
        values["order"] = await repository.next_order(session, values["event"])
    compiled, warnings = await check_rule(
        session, values, None, secrets_set=secrets_set_after(values)
    )
    rule = CallAction()
    _apply(rule, values, secrets)
    session.add(rule)
    await session.flush()
    record_audit(session, actor, "call_action.create", str(rule.id), event=rule.event)
    repository.rules_changed()
    return to_read(rule, compiled, warnings)


async def update_rule(
    session: AsyncSession,
    rule: CallAction,
    data: CallActionUpdate,
    secrets: SecretBox,
    actor: str,
) -> CallActionRead:
    changes = data.model_dump(exclude_unset=True)
    values = rule_values(rule)
    values.update(changes)
    compiled, warnings = await check_rule(
        session, values, rule.id, secrets_set=secrets_set_after(changes, rule)
    )
    for name in ("event", "order", *REQUEST_TEXT_FIELDS):
        if name in changes:
            changes[name] = values[name]  # normalised ("なし" → "")
    _apply(rule, changes, secrets)
    await session.flush()
    record_audit(session, actor, "call_action.update", str(rule.id), fields=sorted(changes))
    repository.rules_changed()
    return to_read(rule, compiled, warnings)


async def errors_beside(
    session: AsyncSession,
    payload: dict[str, Any],
    invalid: ValidationError,
    rule: CallAction | None,
) -> list[FieldError]:
    """The save's own checks (templates, patterns, headers, URL, authentication) on the
    fields that passed their type checks, so a form with one bad number also hears about
    its bad header and misspelt variable: every error at once, not in rounds."""
    bad = {str(error["loc"][0]) for error in invalid.errors() if error["loc"]}
    try:
        checked = CallActionUpdate.model_validate(
            {k: v for k, v in payload.items() if k not in bad and v is not None}
        )
    except ValidationError:
        return []
    changes = checked.model_dump(exclude_unset=True)
    if rule is not None:
        values = rule_values(rule)
    else:
        values = {
            name: field.get_default(call_default_factory=True)
            for name, field in CallActionCreate.model_fields.items()
            if not field.is_required()
        }
        values.update(event="incoming", url="")
    values.update(changes)
    try:
        await check_rule(
            session,
            values,
            rule.id if rule else None,
            secrets_set=secrets_set_after(changes, rule),
        )
    except FieldErrors as found:
        return [error for error in found.errors if error.loc[-1] not in bad]
    return []


async def delete_rule(session: AsyncSession, rule: CallAction, actor: str) -> None:
    await session.delete(rule)
    record_audit(session, actor, "call_action.delete", str(rule.id), event=rule.event)
    repository.rules_changed()


async def reorder_rules(
    session: AsyncSession, data: ReorderRequest, actor: str
) -> list[CallAction]:
    rules = await repository.rules_of_event(session, data.event)
    by_id = {rule.id: rule for rule in rules}
    if sorted(data.ids) != sorted(by_id):
        raise FieldError(
            "ids", Message("reorder_incomplete", event=data.event, ids=str(sorted(by_id)))
        )
    for position, rule_id in enumerate(data.ids, start=1):
        by_id[rule_id].execution_order = position
    await session.flush()
    record_audit(session, actor, "call_action.reorder", data.event, ids=data.ids)
    repository.rules_changed()
    return [by_id[rule_id] for rule_id in data.ids]


async def move_rule(session: AsyncSession, rule: CallAction, delta: int, actor: str) -> None:
    """Move one place up (-1) or down (+1) within its event type (the UI's arrows)."""
    rules = await repository.rules_of_event(session, rule.event)
    ids = [r.id for r in rules]
    index = ids.index(rule.id)
    target = index + delta
    if 0 <= target < len(ids):
        ids[index], ids[target] = ids[target], ids[index]
        await reorder_rules(session, ReorderRequest(event=rule.event, ids=ids), actor)
