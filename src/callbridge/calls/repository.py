"""Every SQL statement of the call store and of the dispatcher's queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callbridge.kit.time import utcnow
from callbridge.models.call import (
    UNFINISHED_EVENT_STATUSES,
    Call,
    CallEvent,
    CallVariable,
    Execution,
)

NOTIFY_CHANNEL = "callbridge_call_events"


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# ---- ingest ------------------------------------------------------------------------


async def find_event_by_dedupe_key(
    session: AsyncSession, dedupe_key: str
) -> tuple[int, str | None] | None:
    row = (
        await session.execute(
            select(CallEvent.id, CallEvent.event_id).where(CallEvent.dedupe_key == dedupe_key)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def upsert_call_for_event(
    session: AsyncSession, values: Mapping[str, Any], *, ended_at: datetime | None
) -> int:
    """Create the call, or fold the event's details into it; returns its primary key.

    Newer non-empty details win; ``started_at`` keeps the earliest time; ``due_at``
    moves to the new event's due time when that is earlier; ``event_count`` is bumped.
    """
    now = utcnow()
    insert = _insert(session, Call).values(
        **values, ended_at=ended_at, event_count=1, error_count=0, created_at=now, updated_at=now
    )
    new = insert.excluded
    updates: dict[str, Any] = {
        name: func.coalesce(getattr(new, name), getattr(Call, name))
        for name in ("unique_id", "tel", "tel_name", "called", "called_name", "direction", "queue")
    }
    updates["started_at"] = case(
        (new.started_at < Call.started_at, new.started_at), else_=Call.started_at
    )
    updates["ended_at"] = func.coalesce(new.ended_at, Call.ended_at)
    updates["last_event"] = new.last_event
    updates["due_at"] = case(
        (or_(Call.due_at.is_(None), new.due_at < Call.due_at), new.due_at), else_=Call.due_at
    )
    updates["event_count"] = Call.event_count + 1
    updates["updated_at"] = now
    statement = insert.on_conflict_do_update(index_elements=[Call.call_id], set_=updates)
    call_pk = await session.scalar(statement.returning(Call.id))
    assert call_pk is not None
    return int(call_pk)


async def insert_event(session: AsyncSession, values: Mapping[str, Any]) -> int | None:
    """The new event's primary key, or None when its dedupe key is already stored."""
    statement = _insert(session, CallEvent).values(**values)
    if values.get("dedupe_key") is not None:
        statement = statement.on_conflict_do_nothing(index_elements=[CallEvent.dedupe_key])
    event_pk = await session.scalar(statement.returning(CallEvent.id))
    return int(event_pk) if event_pk is not None else None


async def notify_workers(session: AsyncSession) -> None:
    """PostgreSQL: wake every listening worker process when this transaction commits."""
    if is_postgresql(session):
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


# ---- dispatcher --------------------------------------------------------------------


async def claim_calls(session: AsyncSession, owner: str, limit: int, lease: timedelta) -> list[int]:
    """Lease up to ``limit`` calls with due work: never one another worker holds.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim at once
    without waiting for or double-claiming each other's rows; a concurrent claim of the
    same row is re-checked against the lease it set. SQLite: the single UPDATE statement
    runs under the database's one write lock, which serialises claims.
    """
    now = utcnow()
    due = (
        select(Call.id)
        .where(
            Call.due_at <= now,
            or_(Call.lease_expires_at.is_(None), Call.lease_expires_at < now),
        )
        .order_by(Call.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Call)
        .where(Call.id.in_(due.scalar_subquery()))
        .where(or_(Call.lease_expires_at.is_(None), Call.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .returning(Call.id)
        .execution_options(synchronize_session=False)
    )
    return [int(pk) for pk in (await session.scalars(statement)).all()]


async def claim_call(session: AsyncSession, call_pk: int, owner: str, lease: timedelta) -> bool:
    """Lease one given call if nobody holds it (``?wait=true`` processing)."""
    now = utcnow()
    result = await session.execute(
        update(Call)
        .where(
            Call.id == call_pk,
            or_(
                Call.lease_expires_at.is_(None),
                Call.lease_expires_at < now,
                Call.lease_owner == owner,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def next_due_hint(session: AsyncSession) -> datetime | None:
    """When the earliest idle call becomes due (to sleep exactly until then)."""
    return await session.scalar(
        select(func.min(Call.due_at)).where(Call.due_at.is_not(None), Call.lease_owner.is_(None))
    )


@dataclass(frozen=True, slots=True)
class NextEvent:
    """What the lease holder needs to decide its next step for one call."""

    event_count: int
    lease_owner: str | None
    event: CallEvent | None


async def next_unfinished_event(session: AsyncSession, call_pk: int) -> NextEvent | None:
    """The call's earliest unfinished event with the call's event counter, read in one
    statement so both come from the same snapshot."""
    unfinished = aliased(CallEvent)
    row = (
        await session.execute(
            select(Call.event_count, Call.lease_owner, unfinished)
            .select_from(Call)
            .outerjoin(
                unfinished,
                and_(
                    unfinished.call_pk == Call.id,
                    unfinished.status.in_(UNFINISHED_EVENT_STATUSES),
                ),
            )
            .where(Call.id == call_pk)
            .order_by(unfinished.occurred_at, unfinished.id)
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    return NextEvent(int(row[0]), row[1], row[2])


async def start_event(session: AsyncSession, event_pk: int, owner: str) -> None:
    """Mark the event as being processed; ``late`` when a later event already ran."""
    event = aliased(CallEvent)
    later_done = exists().where(
        event.call_pk == CallEvent.call_pk,
        event.status == "done",
        or_(
            event.occurred_at > CallEvent.occurred_at,
            and_(event.occurred_at == CallEvent.occurred_at, event.id > CallEvent.id),
        ),
    )
    await session.execute(
        update(CallEvent)
        .where(CallEvent.id == event_pk)
        .values(
            status="processing",
            attempts=CallEvent.attempts + 1,
            worker=owner,
            started_at=utcnow(),
            late=later_done,
        )
        .execution_options(synchronize_session=False)
    )


async def finish_event(
    session: AsyncSession,
    event_pk: int,
    *,
    status: str,
    outcome: list[dict[str, Any]] | None,
    error: str | None,
) -> None:
    await session.execute(
        update(CallEvent)
        .where(CallEvent.id == event_pk)
        .values(status=status, outcome=outcome, error=error, processed_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def release_call(
    session: AsyncSession,
    call_pk: int,
    owner: str,
    *,
    seen_event_count: int,
    next_due: datetime | None,
) -> bool:
    """Give the call up if no event arrived since ``seen_event_count`` was read.

    Compare-and-set: an event stored meanwhile bumped the counter, the UPDATE matches
    nothing, and the worker looks again instead of leaving that event behind.
    """
    result = await session.execute(
        update(Call)
        .where(
            Call.id == call_pk,
            Call.lease_owner == owner,
            Call.event_count == seen_event_count,
        )
        .values(due_at=next_due, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def drop_lease(session: AsyncSession, owner: str, call_pks: Sequence[int] | None) -> int:
    """Hand calls back without touching their work (shutdown): others take them at once."""
    statement = update(Call).where(Call.lease_owner == owner)
    if call_pks is not None:
        statement = statement.where(Call.id.in_(call_pks))
    result = await session.execute(
        statement.values(lease_owner=None, lease_expires_at=None).execution_options(
            synchronize_session=False
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def renew_leases(
    session: AsyncSession, owner: str, call_pks: Sequence[int], lease: timedelta
) -> int:
    if not call_pks:
        return 0
    result = await session.execute(
        update(Call)
        .where(Call.lease_owner == owner, Call.id.in_(call_pks))
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# ---- call store --------------------------------------------------------------------


async def get_call_by_call_id(session: AsyncSession, call_id: str) -> Call | None:
    return await session.scalar(select(Call).where(Call.call_id == call_id))


async def get_or_create_call(session: AsyncSession, call_id: str, values: Mapping[str, Any]) -> int:
    """The call's primary key, creating a bare call (no events) when it is new."""
    now = utcnow()
    statement = (
        _insert(session, Call)
        .values(
            call_id=call_id,
            **values,
            event_count=0,
            error_count=0,
            started_at=now,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Call.call_id])
        .returning(Call.id)
    )
    call_pk = await session.scalar(statement)
    if call_pk is None:
        call_pk = await session.scalar(select(Call.id).where(Call.call_id == call_id))
    assert call_pk is not None
    return int(call_pk)


async def variables_of(session: AsyncSession, call_pk: int) -> dict[str, str]:
    rows = await session.execute(
        select(CallVariable.name, CallVariable.value).where(CallVariable.call_pk == call_pk)
    )
    return {name: value for name, value in rows}


async def upsert_variables(
    session: AsyncSession, call_pk: int, values: Mapping[str, str], source: str
) -> None:
    if not values:
        return
    now = utcnow()
    statement = _insert(session, CallVariable).values(
        [
            {"call_pk": call_pk, "name": name, "value": value, "source": source, "updated_at": now}
            for name, value in values.items()
        ]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[CallVariable.call_pk, CallVariable.name],
        set_={
            "value": statement.excluded.value,
            "source": statement.excluded.source,
            "updated_at": statement.excluded.updated_at,
        },
    )
    await session.execute(statement)


async def add_execution(session: AsyncSession, values: Mapping[str, Any]) -> int:
    execution_pk = await session.scalar(
        _insert(session, Execution).values(**values).returning(Execution.id)
    )
    if values.get("error") is not None:
        await session.execute(
            update(Call)
            .where(Call.id == values["call_pk"])
            .values(error_count=Call.error_count + 1)
            .execution_options(synchronize_session=False)
        )
    assert execution_pk is not None
    return int(execution_pk)


async def executed_rule_ids(session: AsyncSession, event_pk: int, source: str) -> set[int]:
    rows = await session.scalars(
        select(Execution.rule_id).where(
            Execution.event_pk == event_pk,
            Execution.source == source,
            Execution.rule_id.is_not(None),
        )
    )
    return {int(r) for r in rows if r is not None}


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


async def event_status(session: AsyncSession, event_pk: int) -> str | None:
    return await session.scalar(select(CallEvent.status).where(CallEvent.id == event_pk))


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
        conditions.append(and_(Call.due_at.is_(None), Call.error_count > 0))
    elif status == "ok":
        conditions.append(and_(Call.due_at.is_(None), Call.error_count == 0))
    return conditions


async def list_calls(
    session: AsyncSession, conditions: list[ColumnElement[bool]], limit: int, offset: int
) -> tuple[list[Call], int]:
    total = await session.scalar(select(func.count()).select_from(Call).where(*conditions)) or 0
    rows = await session.scalars(
        select(Call)
        .where(*conditions)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


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
