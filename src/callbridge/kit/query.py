"""Query parameters that every API reads alike."""

from __future__ import annotations

from datetime import datetime

from fastapi.exceptions import RequestValidationError

from callbridge.kit.time import in_zone

OUT_OF_RANGE = "is out of range: give a time between the years 1 and 9999"


def time_in_utc(name: str, value: datetime | None, tz: str) -> datetime | None:
    """The time query parameter ``name`` in UTC. A time without an offset is in ``tz``, and
    so is a bare date (FastAPI reads it as that day's midnight); one with an offset is as
    given. A 422 naming the parameter when the time leaves the calendar in UTC (the first
    hours of year 1, the last of year 9999)."""
    if value is None:
        return None
    try:
        return in_zone(value, tz)
    except OverflowError:
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": OUT_OF_RANGE, "type": "value_error"}]
        ) from None
