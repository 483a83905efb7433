"""Admin pages: recent calls, a call's timeline, and the call simulator (which posts
through the same ingest service as the PBX's ``POST /api/v1/call-events``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.admin.filters import chosen, date_bounds, page_number
from callbridge.admin.pages import Card
from callbridge.admin.rendering import add_template_dir, form_values, gettext_for, is_htmx, render
from callbridge.auth.deps import AdminUser, CsrfChecked
from callbridge.calls import ingest, repository, service
from callbridge.calls.router import local_dispatcher
from callbridge.calls.schemas import CallDetail, ExecutionRead
from callbridge.calls.store import TIMELINE_PROVIDERS
from callbridge.db.session import SessionDep
from callbridge.i18n import N_
from callbridge.kit.time import utcnow
from callbridge.models import Call
from callbridge.runtime import get_runtime

router = APIRouter(include_in_schema=False)
add_template_dir(Path(__file__).resolve().parent / "templates")

PAGE_SIZE = 50
SIMULATOR_EVENTS = ("incoming", "queue", "answer", "disconnect", "outgoing")


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # event | execution | note
    event: Any = None
    executions: list[ExecutionRead] = field(default_factory=list)
    execution: ExecutionRead | None = None
    title: str = ""
    detail: str = ""
    link: str | None = None


def build_timeline(detail: CallDetail, extra: list[Any]) -> list[TimelineItem]:
    """Events (each with the requests its rules made), requests made outside events
    (IVRs) and what other features add, in time order."""
    by_event: dict[int, list[ExecutionRead]] = {}
    loose: list[ExecutionRead] = []
    for execution in detail.executions:
        if execution.event_pk is not None:
            by_event.setdefault(execution.event_pk, []).append(execution)
        else:
            loose.append(execution)
    items = [
        TimelineItem(at=e.occurred_at, kind="event", event=e, executions=by_event.get(e.id, []))
        for e in detail.events
    ]
    items.extend(TimelineItem(at=x.at, kind="execution", execution=x) for x in loose)
    items.extend(
        TimelineItem(at=x.at, kind="note", title=x.title, detail=x.detail, link=x.link)
        for x in extra
    )
    items.sort(key=lambda item: item.at)
    return items


# The status filter's options: what each value of ``service.list_calls(status=…)`` shows.
CALL_STATUSES = {"pending": N_("Processing"), "ok": N_("OK"), "error": N_("With errors")}


@router.get("/calls")
async def calls_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    runtime = get_runtime(request)
    _ = gettext_for(request, user)
    query = request.query_params
    filters = {name: query.get(name, "").strip() for name in ("tel", "status", "from", "to")}
    errors: dict[str, str] = {}
    bounds = date_bounds(filters, runtime.settings.timezone, errors, _)
    status = chosen(filters, "status", CALL_STATUSES, errors, _)
    page = page_number(query)
    calls: list[Call] = []
    total = 0
    if not errors:
        calls, total = await service.list_calls(
            session,
            tel=filters["tel"] or None,
            since=bounds.get("since"),
            until=bounds.get("until"),
            status=status,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    counts = await repository.backlog(session)
    dispatcher = local_dispatcher(runtime)
    context = {
        "calls": [service.summarize(c) for c in calls],
        "total": total,
        "page": page,
        "pages": max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        "filters": filters,
        "errors": errors,
        "status_options": [
            ("", _("Any")),
            *((value, _(label)) for value, label in CALL_STATUSES.items()),
        ],
        "backlog": counts,
        "dispatcher": dispatcher.owner if dispatcher is not None else None,
    }
    template = "calls/_rows.html" if is_htmx(request) else "calls/list.html"
    return await render(
        request,
        template,
        context,
        user=user,
        session=session,
        active="calls",
        status_code=422 if errors else 200,
    )


async def _detail_context(session: SessionDep, call_id: str) -> dict[str, Any]:
    call = await service.get_call_or_404(session, call_id)
    detail = await service.call_detail(session, call)
    extra = []
    for provider in TIMELINE_PROVIDERS:
        extra.extend(await provider(session, call))
    return {"call": detail, "timeline": build_timeline(detail, extra)}


@router.get("/calls/{call_id}")
async def call_page(
    request: Request, session: SessionDep, user: AdminUser, call_id: str
) -> Response:
    context = await _detail_context(session, call_id)
    return await render(
        request, "calls/detail.html", context, user=user, session=session, active="calls"
    )


@router.get("/calls/{call_id}/timeline")
async def call_timeline(
    request: Request, session: SessionDep, user: AdminUser, call_id: str
) -> Response:
    context = await _detail_context(session, call_id)
    return await render(request, "calls/_timeline.html", context, user=user, session=session)


async def dashboard_cards(session: AsyncSession) -> list[Card]:
    """Calls in the last 24 hours, calls with errors, and the events still to process."""
    since = utcnow() - timedelta(days=1)
    # Counts only (no row fetched), each from an index alone: started_at's and, for the
    # calls with errors, ix_call_failed (holding only those).
    recent = await repository.count_calls(session, repository.call_filters(since=since))
    failed = await repository.count_calls(
        session, repository.call_filters(since=since, status="error")
    )
    counts = await repository.backlog(session)
    return [
        Card(N_("Calls in the last 24 hours"), recent),
        Card(N_("Calls with errors (24 hours)"), failed),
        Card(N_("Events waiting"), counts["pending"] + counts["processing"]),
    ]


# ---- simulator ---------------------------------------------------------------------


def _new_call_id() -> str:
    return f"sim-{datetime.now().strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"


SIMULATOR_FIELDS = (
    "call_id",
    "tel",
    "tel_name",
    "called",
    "queue",
    "direction",
    "agent_id",
    "extension",
    "variables",
)


@router.get("/simulator")
async def simulator_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    form = {
        "call_id": request.query_params.get("call_id") or _new_call_id(),
        "tel": request.query_params.get("tel", "07075373713"),
        "tel_name": "",
        "called": "0312345678",
        "queue": "support",
        "direction": "inbound",
        "agent_id": "",
        "extension": "",
        "variables": "",
    }
    return await render(
        request,
        "calls/simulator.html",
        {"form": form, "events": SIMULATOR_EVENTS, "result": None, "call": None, "timeline": []},
        user=user,
        session=session,
        active="calls",
    )


@router.post("/simulator", dependencies=[CsrfChecked])
async def simulator_send(request: Request, session: SessionDep, user: AdminUser) -> Response:
    """Store the chosen event exactly as if the PBX had posted it."""
    runtime = get_runtime(request)
    _ = gettext_for(request, user)
    values = await form_values(request)
    fields: dict[str, Any] = {
        key: values.get(key, "")
        for key in (
            "event",
            "call_id",
            "tel",
            "tel_name",
            "called",
            "queue",
            "direction",
            "agent_id",
            "extension",
        )
    }
    variables: dict[str, str] = {}
    for line in values.get("variables", "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            variables[name.strip()] = value.strip()
    if variables:
        fields["variables"] = variables
    result: dict[str, Any]
    try:
        data = ingest.validate_event(fields, runtime.settings.timezone)
    except ingest.InvalidEvent as exc:
        result = {"ok": False, "errors": exc.detail()}
    else:
        stored = await service.accept_event(runtime, data)
        result = {"ok": True, "event": data.event, "duplicate": stored.duplicate}
    context: dict[str, Any] = {
        "form": {name: values.get(name, "") for name in SIMULATOR_FIELDS},
        "events": SIMULATOR_EVENTS,
        "result": result,
        "call": None,
        "timeline": [],
    }
    if result["ok"]:
        context.update(await _detail_context(session, values.get("call_id", "").strip()))
    return await render(
        request,
        "calls/simulator.html",
        context,
        user=user,
        session=session,
        active="calls",
        status_code=200 if result["ok"] else 422,
    )
