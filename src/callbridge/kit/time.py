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
    return moment + timedelta(days=1) if end else moment
