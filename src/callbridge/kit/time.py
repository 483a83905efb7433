"""Time helpers: every timestamp callbridge stores is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_day(value: str) -> date | None:
    """``2026-01-31`` (spaces around it ignored) as a date; None when it is no such date."""
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        return None


def bound_of_day(day: date, tz: str, *, end: bool) -> datetime | None:
    """The start of ``day`` in ``tz`` (with ``end``: of the next day), in UTC; None for the
    first and last days of the calendar, which have no such bound in UTC (nothing stored
    is before or after them)."""
    moment = datetime.combine(day, time.min, ZoneInfo(tz))
    try:
        return (moment + timedelta(days=1) if end else moment).astimezone(UTC)
    except OverflowError:
        return None


def in_zone(value: datetime, tz: str) -> datetime:
    """``value`` in UTC, a time without an offset taken in ``tz``; OverflowError when it
    leaves the calendar in UTC (the first hours of year 1, the last of year 9999)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)
