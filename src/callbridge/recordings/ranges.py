"""HTTP Range and conditional requests for the audio (RFC 9110 §13–14), pure logic: what
to answer given the request headers and the stored object's size, ETag and date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """No requested range overlaps the representation: 416."""


def http_date(value: datetime) -> str:
    return format_datetime(value.replace(microsecond=0), usegmt=True)


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, None to serve the whole representation.

    A syntactically invalid header is ignored (the full representation is sent), as
    RFC 9110 requires. Several ranges are answered with the whole representation too,
    which the RFC allows; browsers seek with one range at a time.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) != 1:
        return None
    first, dash, last = parts[0].partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))


def _etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if weak:
            candidate = candidate.removeprefix("W/")
        if candidate == opaque:
            return True
    return False


def not_modified(headers: dict[str, str], etag: str, last_modified: datetime) -> bool:
    """``If-None-Match`` (weak comparison) wins over ``If-Modified-Since``: 304."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, etag, weak=True)
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None:
        since = _parse_http_date(if_modified_since)
        if since is not None:
            return last_modified.replace(microsecond=0) <= since
    return False


def precondition_failed(headers: dict[str, str], etag: str, last_modified: datetime) -> bool:
    """``If-Match`` / ``If-Unmodified-Since`` that the stored object fails: 412."""
    if_match = headers.get("if-match")
    if if_match is not None:
        return not _etag_matches(if_match, etag, weak=False)
    if_unmodified_since = headers.get("if-unmodified-since")
    if if_unmodified_since is not None:
        since = _parse_http_date(if_unmodified_since)
        if since is not None:
            return last_modified.replace(microsecond=0) > since
    return False


def range_applies(headers: dict[str, str], etag: str, last_modified: datetime) -> bool:
    """``If-Range``: honour the Range only if the client's copy is still current (a strong
    ETag match, or exactly the Last-Modified date); else the whole object is sent."""
    if_range = headers.get("if-range")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return not if_range.startswith("W/") and if_range == etag
    date = _parse_http_date(if_range)
    return date is not None and date == last_modified.replace(microsecond=0)
