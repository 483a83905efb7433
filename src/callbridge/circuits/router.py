"""``/api/v1/circuits`` (the CRMs that are not processing requests, and what waits) and
the re-runs of failed executions (DESIGN.md §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select

from callbridge.audit import record_audit
from callbridge.auth.deps import AdminAccess
from callbridge.call_actions.service import get_rule_or_404
from callbridge.circuits import reruns, service
from callbridge.circuits.reruns import RerunQueued
from callbridge.circuits.service import CircuitRead
from callbridge.db.session import SessionDep
from callbridge.errors import NotFound
from callbridge.kit.query import period
from callbridge.models import Call
from callbridge.runtime import Runtime, get_runtime

router = APIRouter(prefix="/api/v1", tags=["circuits"])


@router.get("/circuits", operation_id="list_open_circuits")
async def list_open_circuits(session: SessionDep, principal: AdminAccess) -> list[CircuitRead]:
    """Every open circuit (account or host, since when, last error, parked calls,
    probes sent)."""
    return await service.open_circuits(session)


def wake_dispatcher(runtime: Runtime) -> None:
    """After the commit: this process's dispatcher claims the re-runs at once (other
    processes find them at their next poll)."""
    dispatcher = runtime.extras.get("dispatcher")
    if dispatcher is not None:
        dispatcher.wake()


@router.post("/executions/{execution_id}/rerun", status_code=202, operation_id="rerun_execution")
async def rerun_execution(
    execution_id: int,
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    background: BackgroundTasks,
) -> RerunQueued:
    """Re-run one call-action execution with its call's stored variables; the re-run is
    an execution of its own (``rerun_of``) shown on the call."""
    execution = await reruns.execution_or_404(session, execution_id)
    queued = await reruns.queue_reruns(session, [execution])
    record_audit(session, principal.label, "execution.rerun", str(execution_id))
    background.add_task(wake_dispatcher, get_runtime(request))
    return queued


@router.post("/calls/{call_id}/rerun", status_code=202, operation_id="rerun_call")
async def rerun_call(
    call_id: str,
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    background: BackgroundTasks,
) -> RerunQueued:
    """Re-run every failed call-action execution of the call not re-run yet."""
    call_pk = await session.scalar(select(Call.id).where(Call.call_id == call_id))
    if call_pk is None:
        raise NotFound(f"call {call_id} does not exist (it may have been deleted by retention)")
    queued = await reruns.queue_reruns(session, await reruns.failed_of_call(session, call_pk))
    record_audit(session, principal.label, "call.rerun", call_id, queued=queued.queued)
    background.add_task(wake_dispatcher, get_runtime(request))
    return queued


@router.post("/call-actions/{rule_id}/rerun", status_code=202, operation_id="rerun_call_action")
async def rerun_call_action(
    rule_id: int,
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    background: BackgroundTasks,
    since: Annotated[
        datetime | None,
        Query(
            alias="from", description="Failed at or after this time (a date: from that day's start)"
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(alias="to", description="Failed before this time (a date: up to that day's end)"),
    ] = None,
) -> RerunQueued:
    """Re-run the rule's failed executions in ``[from, to)`` that were not re-run yet.
    ``from``/``to`` as every API reads a period: without an offset in the configured time
    zone, a bare date that whole day (``kit.query.period``)."""
    since, until = period(request, since, until)
    if since is not None and until is not None and until < since:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "to"),
                    "msg": "'to' must not be before 'from'",
                    "type": "value_error",
                }
            ]
        )
    await get_rule_or_404(session, rule_id)
    executions = await reruns.failed_of_rule(session, rule_id, since, until)
    queued = await reruns.queue_reruns(session, executions)
    record_audit(
        session,
        principal.label,
        "call_action.rerun",
        str(rule_id),
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        queued=queued.queued,
    )
    background.add_task(wake_dispatcher, get_runtime(request))
    return queued
