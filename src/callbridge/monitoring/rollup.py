"""Folding executions and calls into per-minute totals (``ops_rollup``).

A minute is folded once it is ``LAG_MINUTES`` old (its rows are written by then): one
INSERT … SELECT … GROUP BY over the new minutes only, in the database. The watermark
moves by compare-and-set in the same transaction, so processes folding at the same time
never count a minute twice (the loser rolls back). The first fold starts ``FIRST_DAYS``
back. A row written for a minute already folded (a call whose first event arrives with
an ``occurred_at`` minutes in the past) is not counted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models.call import Call, Execution
from callbridge.models.rollup import (
    LATENCY_BOUNDS_MS,
    OpsRollup,
    OpsRollupHour,
    OpsRollupState,
)

LAG_MINUTES = 2
FIRST_DAYS = 8
# Minutes are kept as long as the charts show them (and a day more); hours for a month.
KEEP_MINUTES = FIRST_DAYS * 1440
KEEP_HOURS = 35 * 24
STATE = "dashboard"
HISTOGRAM = [f"h{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1)]
# The executions folded, by source: a kind of the rollup each (its key: the rule's, the
# IVR's or the screen-pop profile's id).
SOURCES = ("call_action", "ivr", "screen_pop")


def now_minute() -> int:
    return int(time.time()) // 60


def minute_of(column: Any, dialect: str) -> ColumnElement[int]:
    """Unix minutes of a timestamp column, in SQL (integer division)."""
    if dialect == "sqlite":
        seconds: ColumnElement[int] = cast(func.strftime("%s", column), Integer)
    else:
        seconds = cast(func.floor(func.extract("epoch", column)), BigInteger)
    return seconds // 60


def _histogram(duration: Any) -> list[ColumnElement[Any]]:
    columns: list[ColumnElement[Any]] = []
    low: float | None = None
    for high in (*LATENCY_BOUNDS_MS, None):
        conditions = [duration.is_not(None)]
        if low is not None:
            conditions.append(duration > low)
        if high is not None:
            conditions.append(duration <= high)
        columns.append(func.sum(case((and_(*conditions), 1), else_=0)))
        low = high
    return columns


def _execution_totals(
    dialect: str, start: int, end: int, kind: Any, key: Any, by: tuple[Any, ...], *where: Any
) -> Any:
    """Executions of the minutes [start, end) summed by minute and ``by``."""
    minute = minute_of(Execution.at, dialect).label("minute")
    failed = Execution.error["kind"].as_string().is_not(None)
    return (
        select(
            minute,
            kind,
            key,
            func.count(),
            func.sum(case((failed, 1), else_=0)),
            func.coalesce(func.sum(Execution.duration_ms), 0.0),
            *_histogram(Execution.duration_ms),
        )
        .where(Execution.at >= _at(start), Execution.at < _at(end), *where)
        .group_by(minute, *by)
    )


def _executions(dialect: str, start: int, end: int) -> Any:
    """Requests by kind (``call_action`` / ``ivr`` / ``screen_pop``, the source of the
    execution) and rule (or IVR, or screen-pop profile)."""
    return _execution_totals(
        dialect,
        start,
        end,
        Execution.source,
        func.coalesce(cast(Execution.rule_id, String(100)), ""),
        (Execution.source, Execution.rule_id),
        Execution.source.in_(SOURCES),
    )


def _ivr_answers(dialect: str, start: int, end: int) -> Any:
    """IVR answers (an invocation's last execution carries its outcome) by outcome, with
    the histogram of that execution's time (kind ``ivr_outcome``, key: the outcome)."""
    return _execution_totals(
        dialect,
        start,
        end,
        literal("ivr_outcome"),
        Execution.outcome,
        (Execution.outcome,),
        Execution.source == "ivr",
        Execution.outcome.is_not(None),
    )


def _calls(dialect: str, start: int, end: int) -> Any:
    minute = minute_of(Call.started_at, dialect).label("minute")
    direction = func.coalesce(Call.direction, "")
    zeros = [literal(0)] * len(HISTOGRAM)
    return (
        select(
            minute,
            literal("call"),
            direction,
            func.count(),
            func.sum(case((Call.error_count > 0, 1), else_=0)),
            literal(0.0),
            *zeros,
        )
        .where(Call.started_at >= _at(start), Call.started_at < _at(end))
        .group_by(minute, direction)
    )


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


COLUMNS = ["minute", "kind", "key", "count", "errors", "total_ms", *HISTOGRAM]
SUMMED = ["count", "errors", "total_ms", *HISTOGRAM]


async def _sum_hours(session: AsyncSession, first: int, last: int) -> None:
    """The hours the folded minutes fall in, summed again from their minutes."""
    await session.execute(
        delete(OpsRollupHour).where(OpsRollupHour.hour >= first, OpsRollupHour.hour <= last)
    )
    hour = (OpsRollup.minute // 60).label("hour")
    await session.execute(
        insert(OpsRollupHour).from_select(
            ["hour", "kind", "key", *SUMMED],
            select(
                hour,
                OpsRollup.kind,
                OpsRollup.key,
                *(func.sum(getattr(OpsRollup, name)) for name in SUMMED),
            )
            .where(OpsRollup.minute >= first * 60, OpsRollup.minute < (last + 1) * 60)
            .group_by(hour, OpsRollup.kind, OpsRollup.key),
        )
    )


async def fold(session: AsyncSession, *, until: int | None = None) -> bool:
    """Fold every complete minute not folded yet; commits (give it a session of its
    own). False when another process folded the same minutes at the same time."""
    dialect = session.get_bind().dialect.name
    end = (until if until is not None else now_minute()) - LAG_MINUTES
    state = await session.get(OpsRollupState, STATE, populate_existing=True)
    start = state.until_minute if state is not None else end - FIRST_DAYS * 1440
    if end <= start:
        await session.rollback()
        return True
    await session.execute(
        delete(OpsRollup).where(OpsRollup.minute >= start, OpsRollup.minute < end)
    )
    for query in (
        _executions(dialect, start, end),
        _ivr_answers(dialect, start, end),
        _calls(dialect, start, end),
    ):
        await session.execute(insert(OpsRollup).from_select(COLUMNS, query))
    await _sum_hours(session, start // 60, (end - 1) // 60)
    await session.execute(delete(OpsRollup).where(OpsRollup.minute < end - KEEP_MINUTES))
    await session.execute(delete(OpsRollupHour).where(OpsRollupHour.hour < end // 60 - KEEP_HOURS))
    try:
        if state is None:
            session.add(OpsRollupState(name=STATE, until_minute=end))
            await session.flush()
        else:
            moved = await session.execute(
                update(OpsRollupState)
                .where(OpsRollupState.name == STATE, OpsRollupState.until_minute == start)
                .values(until_minute=end)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                await session.rollback()
                return False
        await session.commit()
    except IntegrityError:
        await session.rollback()
        return False
    return True
