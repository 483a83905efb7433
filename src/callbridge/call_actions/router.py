"""``/api/v1/call-actions``: the rules, their order, and the test endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from callbridge.auth.deps import AdminAccess
from callbridge.call_actions import engine, service
from callbridge.call_actions.schemas import (
    CallActionCreate,
    CallActionRead,
    CallActionUpdate,
    ReorderRequest,
    RuleTestRequest,
    RuleTestResult,
)
from callbridge.calls.schemas import EventType
from callbridge.db.session import SessionDep
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.messages import Message
from callbridge.requests.schemas import Warning_
from callbridge.runtime import get_runtime

router = APIRouter(prefix="/api/v1/call-actions", tags=["call-actions"])


@router.get("", operation_id="list_call_actions")
async def list_call_actions(
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
    event: Annotated[EventType | None, Query(description="Only rules of this event")] = None,
) -> Page[CallActionRead]:
    """Rules by event type, each in execution order, with their current warnings."""
    items, total = await service.list_described(
        session, event=event, limit=page.limit, offset=page.offset
    )
    return Page(items=items, total=total)


@router.post("", status_code=201, operation_id="create_call_action")
async def create_call_action(
    request: Request, session: SessionDep, principal: AdminAccess, data: CallActionCreate
) -> CallActionRead:
    """Create a rule; the answer lists warnings (normalisations, hints)."""
    runtime = get_runtime(request)
    return await service.create_rule(session, data, runtime.secrets, principal.label)


@router.post("/reorder", operation_id="reorder_call_actions")
async def reorder_call_actions(
    session: SessionDep, principal: AdminAccess, data: ReorderRequest
) -> list[CallActionRead]:
    """Set the execution order of every rule of one event type."""
    rules = await service.reorder_rules(session, data, principal.label)
    return [await service.describe(session, rule) for rule in rules]


@router.get("/{rule_id}", operation_id="get_call_action")
async def get_call_action(
    session: SessionDep, principal: AdminAccess, rule_id: int
) -> CallActionRead:
    rule = await service.get_rule_or_404(session, rule_id)
    return await service.describe(session, rule)


@router.patch("/{rule_id}", operation_id="update_call_action")
async def update_call_action(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    rule_id: int,
    data: CallActionUpdate,
) -> CallActionRead:
    rule = await service.get_rule_or_404(session, rule_id)
    runtime = get_runtime(request)
    return await service.update_rule(session, rule, data, runtime.secrets, principal.label)


@router.delete("/{rule_id}", status_code=204, operation_id="delete_call_action")
async def delete_call_action(session: SessionDep, principal: AdminAccess, rule_id: int) -> Response:
    rule = await service.get_rule_or_404(session, rule_id)
    await service.delete_rule(session, rule, principal.label)
    return Response(status_code=204)


@router.post("/{rule_id}/test", operation_id="test_call_action")
async def test_call_action(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    rule_id: int,
    data: RuleTestRequest,
) -> RuleTestResult:
    """Run the rule against sample call data, without touching any stored call: the
    expanded request (secrets redacted) and, with ``send``, the response and the
    variables extracted."""
    rule = await service.get_rule_or_404(session, rule_id)
    described = await service.describe(session, rule)
    run = await engine.test_rule(
        get_runtime(request), session, rule, data.variables, send=data.send
    )
    warnings = list(described.warnings)
    warnings.extend(
        Warning_(
            field="variables",
            message=f"{{{name}}} has no sample value: it expands to an empty string.",
        )
        for name in engine.unset_variables(get_runtime(request), rule, data.variables)
    )
    warnings.extend(
        Warning_(
            field="response",
            message=note["message"],
            code=Message.from_json(note["msg"]).code,
            msg=note["msg"],
        )
        for note in run.notes
    )
    return RuleTestResult(
        request=run.request,
        response=run.response,
        extracted=run.extracted,
        warnings=warnings,
        error=run.error,
        condition=run.condition,
        attempts=run.attempts,
    )
