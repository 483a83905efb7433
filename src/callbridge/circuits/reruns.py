"""Re-runs of failed call-action executions (DESIGN.md §6): one execution, all of a
call's, or all of a rule's in a time range.

A re-run is stored as an event of its call (``event = "rerun"``) and the dispatcher runs
it like any other: after the call's earlier events, with the call's variables as they
are then, parked like any other work if the CRM is down, and resumed after a restart.
It runs the rule as it is now, with the event data of the execution it repeats, and
records an execution of its own that names the one it re-ran (``rerun_of``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callbridge.errors import Conflict, NotFound
from callbridge.kit.time import utcnow
from callbridge.models import Call, CallAction, CallEvent, Execution

RERUN_EVENT = "rerun"
SOURCE = "call_action"


class RerunQueued(BaseModel):
    """What was queued: one re-run per execution, each run by the dispatcher."""

    queued: int
    execution_ids: list[int]


def _not_rerun_yet() -> Any:
    later = aliased(Execution)
    return ~exists().where(later.rerun_of == Execution.id)


def _failed_call_actions() -> list[Any]:
    return [Execution.source == SOURCE, Execution.error.is_not(None), _not_rerun_yet()]


async def execution_or_404(session: AsyncSession, execution_id: int) -> Execution:
    execution = await session.get(Execution, execution_id)
    if execution is None:
        raise NotFound(
            f"execution {execution_id} does not exist (executions are deleted with their "
            "call when retention removes it)"
        )
    if execution.source != SOURCE or execution.rule_id is None:
        raise Conflict(
            f"execution {execution_id} is an IVR request: only call-action executions "
            "can be re-run (IVRs answer callers live)"
        )
    if await session.get(CallAction, execution.rule_id) is None:
        raise Conflict(
            f"the rule of execution {execution_id} (call action {execution.rule_id}) was "
            "deleted, so it cannot be re-run"
        )
    return execution


async def failed_of_call(session: AsyncSession, call_pk: int) -> list[Execution]:
    rows = await session.scalars(
        select(Execution)
        .join(CallAction, CallAction.id == Execution.rule_id)
        .where(Execution.call_pk == call_pk, *_failed_call_actions())
        .order_by(Execution.id)
    )
    return list(rows)


async def failed_of_rule(
    session: AsyncSession, rule_id: int, since: datetime | None, until: datetime | None
) -> list[Execution]:
    conditions = [Execution.rule_id == rule_id, *_failed_call_actions()]
    if since is not None:
        conditions.append(Execution.at >= since)
    if until is not None:
        conditions.append(Execution.at < until)
    rows = await session.scalars(select(Execution).where(and_(*conditions)).order_by(Execution.id))
    return list(rows)


async def queue_reruns(session: AsyncSession, executions: list[Execution]) -> RerunQueued:
    """Store one re-run event per execution on its call (the caller commits)."""
    now = utcnow()
    for execution in executions:
        original = (
            await session.get(CallEvent, execution.event_pk)
            if execution.event_pk is not None
            else None
        )
        session.add(
            CallEvent(
                call_pk=execution.call_pk,
                event=RERUN_EVENT,
                occurred_at=now,
                received_at=now,
                due_at=now,
                payload={
                    "rerun_of": execution.id,
                    "rule_id": execution.rule_id,
                    "event": execution.event or (original.event if original else ""),
                    "data": dict(original.payload) if original is not None else {},
                },
                status="pending",
                attempts=0,
                late=False,
            )
        )
        await session.execute(
            update(Call)
            .where(Call.id == execution.call_pk)
            .values(
                event_count=Call.event_count + 1,
                due_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    await session.flush()
    return RerunQueued(queued=len(executions), execution_ids=[e.id for e in executions])
