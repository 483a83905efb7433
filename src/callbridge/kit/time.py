"""Time helpers: every timestamp callbridge stores is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(UTC)


def day_bound(value: str, tz: str, *, end: bool) -> datetime | None:
    """``2026-01-31`` as the start of that day in ``tz`` (with ``end``: of the next day);
    None when it is no such date."""
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d")
    except ValueError:
        return None
    moment = datetime.combine(day.date(), time.min, ZoneInfo(tz))
    try:  # the first and last days of the calendar have no bound in UTC: no bound then
        return (moment + timedelta(days=1) if end else moment).astimezone(UTC)
    except OverflowError:
        return None


def in_zone(value: datetime, tz: str) -> datetime:
    """``value`` in UTC, a time without an offset taken in ``tz``; OverflowError when it
    leaves the calendar in UTC (the first hours of year 1, the last of year 9999)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)
