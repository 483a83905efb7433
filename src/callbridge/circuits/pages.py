"""The admin UI of CRM outages: a banner per open circuit (every page, so the dashboard
and the call pages too), the re-run buttons of the call page, and the page that
re-runs a rule's failed executions in a time range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.rendering import Banner, add_template_dir, form_values, gettext_for, render
from callbridge.audit import record_audit
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.call_actions.service import get_rule_or_404, rule_label
from callbridge.circuits import reruns, service
from callbridge.circuits.router import wake_dispatcher
from callbridge.db.session import SessionDep
from callbridge.errors import NotFound
from callbridge.models import Call, User
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")


def _local(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


async def outage_banner(
    request: Request, session: AsyncSession, user: User, _: Callable[[str], str]
) -> list[Banner]:
    """One banner per open circuit: which CRM, since when, the last error, how many
    calls wait for it."""
    circuits = await service.open_circuits(session)
    timezone = get_runtime(request).settings.timezone
    return [
        Banner(
            "error",
            _(
                "{name} is not processing requests since {since} (last error: {error}). "
                "{count} call(s) parked: they resume by themselves when it is back."
            ).format(
                name=circuit.name,
                since=_local(circuit.opened_at, timezone),
                error=circuit.last_error,
                count=circuit.parked_calls,
            ),
            "/calls?status=pending",
            _("Waiting calls"),
        )
        for circuit in circuits
    ]


async def _call_pk(session: AsyncSession, call_id: str) -> int:
    call_pk = await session.scalar(select(Call.id).where(Call.call_id == call_id))
    if call_pk is None:
        raise NotFound(f"call {call_id} does not exist (it may have been deleted by retention)")
    return int(call_pk)


def _back_to_call(call_id: str, queued: int) -> RedirectResponse:
    return RedirectResponse(f"/calls/{call_id}?rerun={queued}", status_code=303)


@router.post("/calls/{call_id}/executions/{execution_id}/rerun", dependencies=[CsrfChecked])
async def rerun_execution_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    background: BackgroundTasks,
    call_id: str,
    execution_id: int,
) -> Response:
    call_pk = await _call_pk(session, call_id)
    execution = await reruns.execution_or_404(session, execution_id)
    if execution.call_pk != call_pk:
        raise NotFound(f"execution {execution_id} is not one of call {call_id}")
    queued = await reruns.queue_reruns(session, [execution])
    record_audit(session, f"user:{user.username}", "execution.rerun", str(execution_id))
    background.add_task(wake_dispatcher, get_runtime(request))
    return _back_to_call(call_id, queued.queued)


@router.post("/calls/{call_id}/rerun", dependencies=[CsrfChecked])
async def rerun_call_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    background: BackgroundTasks,
    call_id: str,
) -> Response:
    call_pk = await _call_pk(session, call_id)
    queued = await reruns.queue_reruns(session, await reruns.failed_of_call(session, call_pk))
    record_audit(session, f"user:{user.username}", "call.rerun", call_id, queued=queued.queued)
    background.add_task(wake_dispatcher, get_runtime(request))
    return _back_to_call(call_id, queued.queued)


def _parse_local(value: str, timezone: str) -> datetime | None:
    """A ``datetime-local`` value in the system's time zone; None when it is not one."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


@router.get("/call-actions/{rule_id}/rerun")
async def rerun_rule_page(
    request: Request, session: SessionDep, user: AdminUser, rule_id: int
) -> Response:
    rule = await get_rule_or_404(session, rule_id)
    return await _rule_page(request, session, user, rule_id, rule_label(rule), {}, {}, None)


@router.post("/call-actions/{rule_id}/rerun", dependencies=[CsrfChecked])
async def rerun_rule_submit(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    background: BackgroundTasks,
    rule_id: int,
) -> Response:
    _ = gettext_for(request, user)
    rule = await get_rule_or_404(session, rule_id)
    timezone = get_runtime(request).settings.timezone
    values = await form_values(request)
    form = {"from": values.get("from", ""), "to": values.get("to", "")}
    errors: dict[str, str] = {}
    bounds: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        bounds[name] = _parse_local(form[name], timezone) if form[name].strip() else None
        if form[name].strip() and bounds[name] is None:
            errors[name] = _("Enter a date and time.")
    since, until = bounds["from"], bounds["to"]
    if not errors and since is not None and until is not None and until < since:
        errors["to"] = _("'To' must not be before 'From'.")
    queued = None
    if not errors:
        executions = await reruns.failed_of_rule(session, rule_id, since, until)
        queued = (await reruns.queue_reruns(session, executions)).queued
        record_audit(
            session, f"user:{user.username}", "call_action.rerun", str(rule_id), queued=queued
        )
        background.add_task(wake_dispatcher, get_runtime(request))
    return await _rule_page(request, session, user, rule_id, rule_label(rule), form, errors, queued)


async def _rule_page(
    request: Request,
    session: AsyncSession,
    user: User,
    rule_id: int,
    label: str,
    form: dict[str, Any],
    errors: dict[str, str],
    queued: int | None,
) -> Response:
    return await render(
        request,
        "circuits/rerun_rule.html",
        {"rule_id": rule_id, "label": label, "form": form, "errors": errors, "queued": queued},
        user=user,
        session=session,
        active="call_actions",
        status_code=422 if errors else 200,
    )
