"""History rows: one per call in scope and link, created when the call's ``disconnect``
is processed (DESIGN §11.2, §11.3)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Table, case, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from callbridge.call_actions.engine import call_values
from callbridge.calls.dispatcher import EventJob, EventOutcome, Processor
from callbridge.calls.writes import read_session, write_connection
from callbridge.history.service import task_description
from callbridge.kit.time import utcnow
from callbridge.models import CallEvent, HistoryLink, HistoryRow
from callbridge.runtime import Runtime

logger = logging.getLogger("callbridge.history")

WORKER_KEY = "history_worker"


def in_scope(link: HistoryLink, direction: str, called: str | None, extension: str | None) -> bool:
    """A call is in scope when its own number is one of the link's (連携対象): ``called``
    for inbound calls, the agent's ``extension`` for outbound ones."""
    own = extension if direction == "outbound" else called
    return own is not None and own in link.phone_numbers


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else utcnow()


def describe_call(job: EventJob, events: list[CallEvent]) -> dict[str, Any]:
    """The row's columns from the call and its events (seed 001 §5 / DESIGN §11.2)."""
    call = job.call
    payloads = [e.payload or {} for e in events]
    direction = call.direction or next(
        (str(p["direction"]) for p in payloads if p.get("direction")), None
    )
    if direction not in ("inbound", "outbound"):
        direction = "outbound" if any(e.event == "outgoing" for e in events) else "inbound"
    started = min((e.occurred_at for e in events), default=job.occurred_at)
    ended = job.occurred_at
    answered = next((e for e in events if e.event == "answer"), None)
    duration = 0
    if answered is not None:
        duration = max(0, int((ended - answered.occurred_at).total_seconds()))
    # The agent and extension: the answering one inbound, the calling one outbound.
    agent_event = answered
    if direction == "outbound":
        agent_event = next((e for e in events if e.event == "outgoing"), None) or answered
    agent_id = None
    extension = None
    if agent_event is not None:
        agent_id = agent_event.agent_id or (agent_event.payload or {}).get("agent_id")
        extension = (agent_event.payload or {}).get("extension")
    if extension is None:
        extension = next((p["extension"] for p in payloads if p.get("extension")), None)
    if agent_id is None:
        agent_id = next((p["agent_id"] for p in payloads if p.get("agent_id")), None)
    tel = job.payload.get("tel") or call.tel
    called = job.payload.get("called") or call.called
    columns: dict[str, Any] = {
        "call_pk": job.call_pk,
        "call_id": call.call_id,
        "unique_id": job.payload.get("unique_id") or call.unique_id,
        "tel": tel,
        "direction": direction,
        "started_at": started,
        "ended_at": ended,
        "duration_seconds": duration,
        "values": call_values(call, job.payload, job.event, job.variables),
    }
    if direction == "outbound":
        columns.update(
            phone_from=extension,
            phone_to=tel,
            agent_id_from=agent_id,
            naisen_from=extension,
            agent_id_to=None,
            naisen_to=None,
        )
    else:
        columns.update(
            phone_from=tel,
            phone_to=called,
            agent_id_to=agent_id,
            naisen_to=extension,
            agent_id_from=None,
            naisen_from=None,
        )
    # Notes the agent saved on their console before the call ended (DESIGN §12.4).
    notes = task_description(job.variables.get("NOTES", ""), job.variables.get("WRAPUP", ""))
    if notes:
        columns["description"] = notes
    columns["_called"] = called
    columns["_extension"] = extension
    return columns


async def create_rows(runtime: Runtime, job: EventJob) -> int:
    """Create the call's history rows (idempotent: a repeated disconnect or a resumed event
    adds nothing). Returns how many were new. Without a link that is enabled or paused,
    nothing is written (one read)."""
    async with read_session(runtime) as session:
        links = list(
            await session.scalars(
                select(HistoryLink).where(HistoryLink.status.in_(("enabled", "paused")))
            )
        )
        if not links:
            return 0
        events = list(
            await session.scalars(
                select(CallEvent)
                .where(CallEvent.call_pk == job.call_pk)
                .order_by(CallEvent.occurred_at, CallEvent.id)
            )
        )
        columns = describe_call(job, events)
    called = columns.pop("_called")
    extension = columns.pop("_extension")
    in_scope_links = [
        link for link in links if in_scope(link, columns["direction"], called, extension)
    ]
    if not in_scope_links:
        return 0
    created = 0
    now = utcnow()
    values = {
        "due_at": now,
        "created_at": now,
        "task_ids": [],
        "retry_count": 0,
        "attempts": 0,
        "notes_dirty": False,
        **columns,
    }
    statements = [_insert_row(runtime, link.id, values) for link in in_scope_links]
    # One statement per link, the link's status read in it: the row is "waiting" or
    # "held" by the status at this moment, and nothing is written for a link disabled
    # since. The process's SQLite write lock (shared with the dispatcher's hot path) is
    # held for these statements only.
    async with write_connection(runtime) as connection:
        for statement in statements:
            result = await connection.execute(statement)
            created += int(getattr(result, "rowcount", 0) or 0)
    if created:
        worker = runtime.extras.get(WORKER_KEY)
        if worker is not None:
            worker.wake()
    return created


def _insert_row(runtime: Runtime, link_id: int, values: dict[str, Any]) -> Any:
    """``INSERT … SELECT … FROM history_link WHERE id = … AND status IN (enabled,
    paused)``, doing nothing when the call already has its row for that link."""
    table = HistoryRow.__table__
    assert isinstance(table, Table)
    names = ["link_id", "state", *values]
    source = select(
        literal(link_id, table.c.link_id.type),
        case((HistoryLink.status == "enabled", "waiting"), else_="held"),
        *(literal(value, table.c[name].type) for name, value in values.items()),
    ).where(HistoryLink.id == link_id, HistoryLink.status.in_(("enabled", "paused")))
    insert = pg_insert if runtime.database_kind == "postgresql" else sqlite_insert
    return (
        insert(table)
        .from_select(names, source)
        .on_conflict_do_nothing(index_elements=["link_id", "call_pk"])
    )


def with_history(processor: Processor) -> Processor:
    """The dispatcher's processor plus the history rows of each ``disconnect``."""

    async def run(job: EventJob) -> EventOutcome:
        if job.event == "disconnect":
            await _create_rows_retrying(job)
        return await processor(job)

    return run


async def _create_rows_retrying(job: EventJob) -> None:
    delay = 0.2
    for attempt in range(5):
        try:
            await create_rows(job.runtime, job)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            if attempt == 4:
                raise  # the event fails with the reason; the timeline shows it
            logger.warning("history rows of call %s not stored yet; retrying", job.call_pk)
            await asyncio.sleep(delay)
            delay *= 2
