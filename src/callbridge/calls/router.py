"""``POST /api/v1/call-events`` (the PBX) and the read-only ``/api/v1/calls`` (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import TimeoutError as PoolTimeout

from callbridge.auth.deps import AdminAccess
from callbridge.calls import ingest, repository, service
from callbridge.calls.dispatcher import CallWorker, Dispatcher
from callbridge.calls.pbx_auth import PbxToken, pbx_token
from callbridge.calls.schemas import CallDetail, CallEventIn, CallSummary, IngestAnswer
from callbridge.db.session import SessionDep
from callbridge.errors import ServiceUnavailable
from callbridge.hot_routes import hot_route, query_flag
from callbridge.kit.pagination import Page, PageParams, page_params
from callbridge.kit.query import period
from callbridge.runtime import Runtime, get_runtime

router = APIRouter(tags=["calls"])

WAIT_SECONDS = 300.0

# The body is read by hand (JSON or form, size-limited), so its schema is given here.
_EVENT_SCHEMA = CallEventIn.model_json_schema()
_EVENT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _EVENT_SCHEMA},
        "application/x-www-form-urlencoded": {
            "schema": _EVENT_SCHEMA,
            "encoding": {"variables": {"style": "deepObject", "explode": True}},
        },
    },
}


def call_worker(runtime: Runtime) -> CallWorker:
    worker: CallWorker = runtime.extras["call_worker"]
    return worker


def local_dispatcher(runtime: Runtime) -> Dispatcher | None:
    dispatcher: Dispatcher | None = runtime.extras.get("dispatcher")
    return dispatcher


EVENTS_PATH = "/api/v1/call-events"


@router.post(
    EVENTS_PATH,
    operation_id="post_call_event",
    status_code=202,
    response_model=IngestAnswer,
    openapi_extra={"requestBody": _EVENT_BODY},
    responses={
        200: {
            "model": IngestAnswer,
            "description": "A repeat (duplicate), or processed (`?wait=true`)",
        },
        413: {"description": "The body is larger than 64 KiB"},
        415: {"description": "Neither JSON nor a form"},
        503: {"description": "Storage is unavailable; retry"},
    },
)
async def post_call_event(
    request: Request,
    token: PbxToken,
    wait: Annotated[
        bool, Query(description="Diagnostics: process the event before answering")
    ] = False,
) -> JSONResponse:
    """Store a call event durably and acknowledge it; the CRM work happens afterwards."""
    return await call_event(request, wait)


async def hot_call_event(request: Request) -> Response:
    """``post_call_event`` on the lean path (callbridge.hot_routes): the same checks in
    the same order, without FastAPI's dependency solving."""
    await pbx_token(request)
    return await call_event(request, query_flag(request, "wait"))


HOT_ROUTE = hot_route(EVENTS_PATH, hot_call_event)


async def call_event(request: Request, wait: bool) -> JSONResponse:
    runtime = get_runtime(request)
    body = await ingest.read_limited_body(request)
    fields = await ingest.parse_fields(request, body)
    data = ingest.validate_event(fields, runtime.settings.timezone)
    try:
        stored = await service.accept_event(runtime, data, immediate=wait)
    except PoolTimeout:
        raise ServiceUnavailable("storage is busy; retry later") from None
    answer: dict[str, Any] = {"event_id": stored.event_id, "call_id": stored.call_id}
    if stored.duplicate:
        return JSONResponse({"status": "duplicate", **answer}, status_code=200)
    if not wait:
        return JSONResponse({"status": "accepted", **answer}, status_code=202)
    status = await call_worker(runtime).process_now(stored.call_pk, stored.event_pk, WAIT_SECONDS)
    async with runtime.sessionmaker() as session:
        executions = await repository.executions_of_event(session, stored.event_pk)
    answer["executions"] = [service.execution_read(x).model_dump(mode="json") for x in executions]
    if status is None:
        return JSONResponse({"status": "accepted", **answer}, status_code=202)
    return JSONResponse({"status": "processed", **answer}, status_code=200)


@router.get("/api/v1/calls", operation_id="list_calls")
async def list_calls(
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    page: Annotated[PageParams, Depends(page_params)],
    tel: Annotated[
        str | None, Query(description="Part of the caller's or the dialled number")
    ] = None,
    since: Annotated[
        datetime | None,
        Query(alias="from", description="Started at or after (a date: from that day's start)"),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(alias="to", description="Started before (a date: up to that day's end)"),
    ] = None,
    status: Annotated[
        Literal["pending", "ok", "error"] | None,
        Query(description="pending: events still to process; error: a request failed"),
    ] = None,
) -> Page[CallSummary]:
    """Calls, newest first. ``from``/``to`` as every API reads a period: without an offset
    in the configured time zone, a bare date that whole day (``kit.query.period``)."""
    since, until = period(request, since, until)
    calls, total = await service.list_calls(
        session,
        tel=tel,
        since=since,
        until=until,
        status=status,
        limit=page.limit,
        offset=page.offset,
    )
    return Page(items=[service.summarize(c) for c in calls], total=total)


@router.get("/api/v1/calls/{call_id}", operation_id="get_call")
async def get_call(session: SessionDep, principal: AdminAccess, call_id: str) -> CallDetail:
    """A call with its events, variables and every request made for it."""
    call = await service.get_call_or_404(session, call_id)
    return await service.call_detail(session, call)
