"""Ingest and read calls: store an event durably, list calls, assemble a call's detail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.calls import repository
from callbridge.calls.callstore import CallStore
from callbridge.calls.schemas import (
    CallDetail,
    CallEventIn,
    CallSummary,
    EventRead,
    ExecutionRead,
)
from callbridge.calls.store import DETAIL_PROVIDERS, call_store
from callbridge.errors import NotFound
from callbridge.kit.time import utcnow
from callbridge.messages import Message, define
from callbridge.models.call import Call, CallEvent, Execution
from callbridge.runtime import Runtime

define({"not_found.call": "call {call_id} does not exist"})


@dataclass(frozen=True, slots=True)
class StoredEvent:
    call_pk: int
    event_pk: int
    call_id: str
    event_id: str | None
    duplicate: bool
    due_at: datetime


def dedupe_key_for(data: CallEventIn) -> str | None:
    """DESIGN.md §3.8: ``event_id`` when given, else call_id+event+occurred_at, else none."""
    if data.event_id:
        return f"id:{data.event_id}"
    if data.occurred_at is not None:
        return f"at:{data.call_id}|{data.event}|{data.occurred_at.isoformat()}"
    return None


def due_time(received_at: datetime, occurred_at: datetime | None, window_ms: int) -> datetime:
    """When the dispatcher may run the event: at once, unless it says when it occurred;
    then it waits until ``occurred_at + window`` (never longer than the window) so an
    earlier event of the same call delivered after it still runs first."""
    if occurred_at is None or window_ms <= 0:
        return received_at
    window = timedelta(milliseconds=window_ms)
    return min(received_at + window, max(received_at, occurred_at + window))


async def accept_event(
    runtime: Runtime, data: CallEventIn, *, immediate: bool = False
) -> StoredEvent:
    """Store the event durably through the call store's driver, then wake this
    process's dispatcher (PostgreSQL's NOTIFY, sent by the same statement, wakes the
    others). This is the PBX's path: one statement on PostgreSQL, one transaction on
    SQLite, committed when it returns."""
    window = runtime.settings.reorder_window_ms
    stored = await store_event(
        call_store(runtime), data, reorder_window_ms=window, immediate=immediate
    )
    dispatcher = runtime.extras.get("dispatcher")
    # PostgreSQL: the statement's NOTIFY wakes this process's dispatcher as well.
    notified = runtime.database_kind == "postgresql" and getattr(dispatcher, "listening", False)
    if dispatcher is not None and not stored.duplicate and not immediate and not notified:
        dispatcher.wake(stored.due_at)
    return stored


async def store_event(
    storage: CallStore,
    data: CallEventIn,
    *,
    reorder_window_ms: int,
    immediate: bool = False,
) -> StoredEvent:
    """Store the event (and create or update its call), committed when this returns.

    A repeat of a stored event is reported as a duplicate and stores nothing new.
    ``immediate`` (``?wait=true``) makes the event due at once. The caller wakes the
    workers (see :func:`accept_event`).
    """
    received_at = utcnow()
    dedupe_key = dedupe_key_for(data)
    occurred_at = data.occurred_at or received_at
    due_at = (
        received_at if immediate else due_time(received_at, data.occurred_at, reorder_window_ms)
    )
    payload = data.model_dump(
        mode="json", exclude={"call_id", "event", "event_id", "occurred_at"}, exclude_none=True
    )
    if not payload.get("variables"):
        payload.pop("variables", None)
    values = {
        "call_id": data.call_id,
        "unique_id": data.unique_id,
        "tel": data.tel,
        "tel_name": data.tel_name,
        "called": data.called,
        "called_name": data.called_name,
        "direction": data.direction,
        "queue": data.queue,
        "event": data.event,
        "event_id": data.event_id,
        "dedupe_key": dedupe_key,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "ended_at": occurred_at if data.event == "disconnect" else None,
        "due_at": due_at,
        "agent_id": data.agent_id,
        "payload": payload,
        # What the NOTIFY tells listening workers: when the event is due.
        "notice": due_at.isoformat(),
    }
    stored = await storage.store_event(values)
    if stored is None:  # the same event, stored concurrently by another request
        assert dedupe_key is not None
        found = await storage.find_event(dedupe_key)
        assert found is not None
        stored = (found[1], found[0], True)
    call_pk, event_pk, duplicate = stored
    return StoredEvent(call_pk, event_pk, data.call_id, data.event_id, duplicate, due_at)


# ---- reads -------------------------------------------------------------------------


def call_status(call: Call) -> str:
    if call.due_at is not None:
        return "pending"
    return "error" if call.error_count else "ok"


def summarize(call: Call) -> CallSummary:
    return CallSummary(
        call_id=call.call_id,
        unique_id=call.unique_id,
        tel=call.tel,
        tel_name=call.tel_name,
        called=call.called,
        direction=call.direction,
        queue=call.queue,
        status=call_status(call),
        last_event=call.last_event,
        event_count=call.event_count,
        error_count=call.error_count,
        started_at=call.started_at,
        ended_at=call.ended_at,
    )


async def list_calls(
    session: AsyncSession,
    *,
    tel: str | None,
    since: datetime | None,
    until: datetime | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Call], int]:
    conditions = repository.call_filters(tel=tel, since=since, until=until, status=status)
    return await repository.list_calls(session, conditions, limit, offset)


async def get_call_or_404(session: AsyncSession, call_id: str) -> Call:
    call = await repository.get_call_by_call_id(session, call_id)
    if call is None:
        raise NotFound(Message("not_found.call", call_id=call_id))
    return call


def event_read(event: CallEvent) -> EventRead:
    return EventRead(
        id=event.id,
        event=event.event,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        received_at=event.received_at,
        status=event.status,
        attempts=event.attempts,
        late=event.late,
        processed_at=event.processed_at,
        agent_id=event.agent_id,
        data=dict(event.payload),
        outcome=event.outcome,
        error=event.error,
        parked_at=event.parked_at,
        resumed_at=event.resumed_at,
        parked_for=event.park_key,
    )


def execution_read(execution: Execution) -> ExecutionRead:
    read = ExecutionRead(
        id=execution.id,
        source=execution.source,
        rule_id=execution.rule_id,
        label=execution.label,
        event=execution.event,
        event_pk=execution.event_pk,
        attempt=execution.attempt,
        request=execution.request,
        response=execution.response,
        duration_ms=execution.duration_ms,
        extracted=execution.extracted,
        error=execution.error,
        attempts=execution.attempts or [],
        notes=execution.notes or [],
        at=execution.at,
        rerun_of=execution.rerun_of,
    )
    read._shown_notes = list(execution.notes or [])
    return read


async def call_detail(session: AsyncSession, call: Call) -> CallDetail:
    events = await repository.events_of(session, call.id)
    executions = await repository.executions_of(session, call.id)
    variables = await repository.variables_of(session, call.id)
    agent_ids: list[str] = []
    for event in events:
        if event.agent_id and event.agent_id not in agent_ids:
            agent_ids.append(event.agent_id)
    extras: dict[str, Any] = {"recording": None}
    for name, provider in DETAIL_PROVIDERS.items():
        extras[name] = await provider(session, call)
    return CallDetail(
        **summarize(call).model_dump(),
        agent_ids=agent_ids,
        events=[event_read(e) for e in events],
        variables=dict(sorted(variables.items())),
        executions=[execution_read(x) for x in executions],
        **extras,
    )
