"""The filters of the list pages (their GET forms): a date and a choice from a list are read
the same way on every page, and a value the form cannot hold is an error beside its field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from callbridge.kit.time import bound_of_day, parse_day

# Beyond any list a database can page through (a larger page number is read as this one,
# a page past the end, with no rows), and small enough that the offset it gives fits both
# databases' integers.
MAX_PAGE = 10**9

# The date fields of a filter form and the bounds they give: ``from`` is the start of that
# day, ``to`` the end of that day (the start of the next), in the configured time zone.
DATE_FIELDS = (("from", "since", False), ("to", "until", True))


def date_bounds(
    form: Mapping[str, str], tz: str, errors: dict[str, str], _: Callable[[str], str]
) -> dict[str, datetime | None]:
    """``from``/``to`` (dates in the admin's time zone) as ``since``/``until``; a value that
    is no date is an error on its field. The first and last days of the calendar are no
    bound (None), as nothing stored is before or after them."""
    bounds: dict[str, datetime | None] = {}
    for name, key, end in DATE_FIELDS:
        if form.get(name):
            day = parse_day(form[name])
            if day is None:
                errors[name] = _("Enter a date as YYYY-MM-DD.")
            bounds[key] = None if day is None else bound_of_day(day, tz, end=end)
    return bounds


def chosen(
    form: Mapping[str, str],
    name: str,
    values: Iterable[str],
    errors: dict[str, str],
    _: Callable[[str], str],
) -> str | None:
    """The value of the select ``name`` (None for "any", the empty option); a value the list
    does not offer (a hand-edited or outdated address) is an error on the field, rather than
    a filter the page would show as "any"."""
    value = form.get(name, "")
    if not value:
        return None
    if value not in set(values):
        errors[name] = _("Choose a value from the list.")
        return None
    return value


def page_number(query: Mapping[str, str]) -> int:
    """The list's ``page``: 1 for anything that is no page number (missing, text, 0 or
    less), at most ``MAX_PAGE`` (a number edited into the address would otherwise give an
    offset no database can hold)."""
    try:
        return min(max(int(query.get("page", "1")), 1), MAX_PAGE)
    except ValueError:
        return 1
