"""The ORM's statements of the call store: reads only (pages, API, reports). Every write
and claim goes through the call store's driver (``calls.callstore``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ColumnElement, and_, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.calls.callstore import CallInfo
from callbridge.models.call import (
    FAILED_CALL,
    UNFINISHED_EVENT_STATUSES,
    Call,
    CallEvent,
    CallVariable,
    Execution,
)


async def get_call_by_call_id(session: AsyncSession, call_id: str) -> Call | None:
    return await session.scalar(select(Call).where(Call.call_id == call_id))


async def call_info(session: AsyncSession, call_pk: int) -> CallInfo | None:
    row = (
        await session.execute(
            select(
                Call.id, Call.call_id, Call.unique_id, Call.tel, Call.tel_name, Call.called,
                Call.called_name, Call.direction, Call.queue,
            ).where(Call.id == call_pk)
        )
    ).first()  # fmt: skip
    return CallInfo(*row) if row is not None else None


async def variables_of(session: AsyncSession, call_pk: int) -> dict[str, str]:
    rows = await session.execute(
        select(CallVariable.name, CallVariable.value).where(CallVariable.call_pk == call_pk)
    )
    return {name: value for name, value in rows}


async def executions_of_event(session: AsyncSession, event_pk: int) -> list[Execution]:
    rows = await session.scalars(
        select(Execution).where(Execution.event_pk == event_pk).order_by(Execution.id)
    )
    return list(rows)


async def events_of(session: AsyncSession, call_pk: int) -> list[CallEvent]:
    rows = await session.scalars(
        select(CallEvent)
        .where(CallEvent.call_pk == call_pk)
        .order_by(CallEvent.occurred_at, CallEvent.id)
    )
    return list(rows)


async def executions_of(session: AsyncSession, call_pk: int) -> list[Execution]:
    rows = await session.scalars(
        select(Execution).where(Execution.call_pk == call_pk).order_by(Execution.id)
    )
    return list(rows)


def call_filters(
    *,
    tel: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str | None = None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if tel:
        conditions.append(
            or_(Call.tel.contains(tel, autoescape=True), Call.called.contains(tel, autoescape=True))
        )
    if since is not None:
        conditions.append(Call.started_at >= since)
    if until is not None:
        conditions.append(Call.started_at < until)
    if status == "pending":
        conditions.append(Call.due_at.is_not(None))
    elif status == "error":
        # As written, so that the partial index ix_call_failed serves it.
        conditions.append(literal_column(FAILED_CALL, Boolean()))
    elif status == "ok":
        conditions.append(and_(Call.due_at.is_(None), Call.error_count == 0))
    return conditions


async def list_calls(
    session: AsyncSession, conditions: list[ColumnElement[bool]], limit: int, offset: int
) -> tuple[list[Call], int]:
    total = await count_calls(session, conditions)
    rows = await session.scalars(
        select(Call)
        .where(*conditions)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


async def count_calls(session: AsyncSession, conditions: list[ColumnElement[bool]]) -> int:
    return int(await session.scalar(select(func.count()).select_from(Call).where(*conditions)) or 0)


async def backlog(session: AsyncSession) -> dict[str, int]:
    """Events waiting and being processed (dashboard, benchmarks)."""
    rows = await session.execute(
        select(CallEvent.status, func.count())
        .where(CallEvent.status.in_(UNFINISHED_EVENT_STATUSES))
        .group_by(CallEvent.status)
    )
    counts = {"pending": 0, "processing": 0}
    counts.update({status: int(n) for status, n in rows})
    return counts
