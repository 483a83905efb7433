"""Query parameters that every API reads alike."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from callbridge.kit.time import bound_of_day, in_zone, parse_day
from callbridge.runtime import get_runtime

OUT_OF_RANGE = "is out of range: give a time between the years 1 and 9999"

Bound = datetime | None


def period(
    request: Request, start: Bound, end: Bound, names: tuple[str, str] = ("from", "to")
) -> tuple[Bound, Bound]:
    """A period given as the query parameters ``names`` (``start``/``end`` as FastAPI
    read them), in UTC, as every API reads one: a time with an offset as given, one
    without in the configured time zone; a bare date is that whole day there (``end``
    included); the calendar's first and last days are no bound. A 422 naming the
    parameter when a time leaves the calendar in UTC (the first hours of year 1, the last
    of year 9999)."""
    tz = get_runtime(request).settings.timezone
    return (
        _bound(request, names[0], start, tz, end=False),
        _bound(request, names[1], end, tz, end=True),
    )


def _bound(request: Request, name: str, value: Bound, tz: str, *, end: bool) -> Bound:
    if value is None:
        return None
    day = parse_day(request.query_params.get(name, ""))
    if day is not None:
        return bound_of_day(day, tz, end=end)
    try:
        return in_zone(value, tz)
    except OverflowError:
        raise RequestValidationError(
            [{"loc": ("query", name), "msg": OUT_OF_RANGE, "type": "value_error"}]
        ) from None
