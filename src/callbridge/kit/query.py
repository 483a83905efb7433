"""Query parameters that every API reads alike."""

from __future__ import annotations

import re
from datetime import datetime

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from callbridge.kit.time import day_bound, in_zone

OUT_OF_RANGE = "is out of range: give a time between the years 1 and 9999"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def time_in_utc(name: str, value: datetime | None, tz: str) -> datetime | None:
    """The time query parameter ``name`` in UTC. A time without an offset is in ``tz``; one
    with an offset is as given. A 422 naming the parameter when the time leaves the
    calendar in UTC (the first hours of year 1, the last of year 9999)."""
    if value is None:
        return None
    try:
        return in_zone(value, tz)
    except OverflowError:
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": OUT_OF_RANGE, "type": "value_error"}]
        ) from None


def time_bound(
    request: Request, name: str, value: datetime | None, tz: str, *, end: bool
) -> datetime | None:
    """A period's end given as the query parameter ``name`` (``value``, as FastAPI read
    it), in UTC. Written as a bare date it is that whole day in ``tz``: the start of the
    day, or with ``end`` the start of the next one, so that the day is included; the
    calendar's first and last days are no bound. A time is read by ``time_in_utc``."""
    if value is None:
        return None
    written = request.query_params.get(name, "").strip()
    if _DATE.fullmatch(written):
        return day_bound(written, tz, end=end)
    return time_in_utc(name, value, tz)
