"""Range parsing and conditional requests (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callbridge.recordings.ranges import (
    ByteRange,
    Unsatisfiable,
    http_date,
    not_modified,
    parse_range,
    precondition_failed,
    range_applies,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", ByteRange(0, 999)),
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=500-", ByteRange(500, 999)),
        ("bytes=10-19", ByteRange(10, 19)),
        ("bytes=990-5000", ByteRange(990, 999)),
        ("bytes=-1", ByteRange(999, 999)),
        ("bytes=-100", ByteRange(900, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("Bytes = 1-2", ByteRange(1, 2)),
        ("bytes=5-2", None),  # invalid: ignored
        ("bytes=", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
        ("pages=1-2", None),
        ("bytes=0-1, 3-4", None),  # several ranges: the whole representation
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, SIZE)


def test_empty_object() -> None:
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=-10", 0)


MODIFIED = datetime(2026, 11, 25, 8, 30, 15, 123456, tzinfo=UTC)
ETAG = '"abc"'


def test_http_date() -> None:
    assert http_date(MODIFIED) == "Wed, 25 Nov 2026 08:30:15 GMT"


def test_not_modified() -> None:
    assert not_modified({"if-none-match": '"abc"'}, ETAG, MODIFIED)
    assert not_modified({"if-none-match": 'W/"abc"'}, ETAG, MODIFIED)
    assert not_modified({"if-none-match": '"x", "abc"'}, ETAG, MODIFIED)
    assert not_modified({"if-none-match": "*"}, ETAG, MODIFIED)
    assert not not_modified({"if-none-match": '"x"'}, ETAG, MODIFIED)
    stamp = http_date(MODIFIED)
    assert not_modified({"if-modified-since": stamp}, ETAG, MODIFIED)
    assert not not_modified({"if-modified-since": "Tue, 24 Nov 2026 08:30:15 GMT"}, ETAG, MODIFIED)
    assert not not_modified({"if-modified-since": "garbage"}, ETAG, MODIFIED)
    # If-None-Match wins over If-Modified-Since.
    assert not not_modified({"if-none-match": '"x"', "if-modified-since": stamp}, ETAG, MODIFIED)


def test_preconditions() -> None:
    assert precondition_failed({"if-match": '"x"'}, ETAG, MODIFIED)
    assert not precondition_failed({"if-match": '"abc"'}, ETAG, MODIFIED)
    assert precondition_failed({"if-match": 'W/"abc"'}, ETAG, MODIFIED)  # strong comparison
    assert precondition_failed(
        {"if-unmodified-since": "Tue, 24 Nov 2026 08:30:15 GMT"}, ETAG, MODIFIED
    )
    assert not precondition_failed({"if-unmodified-since": http_date(MODIFIED)}, ETAG, MODIFIED)


def test_if_range() -> None:
    assert range_applies({}, ETAG, MODIFIED)
    assert range_applies({"if-range": '"abc"'}, ETAG, MODIFIED)
    assert not range_applies({"if-range": '"old"'}, ETAG, MODIFIED)
    assert not range_applies({"if-range": 'W/"abc"'}, ETAG, MODIFIED)
    assert range_applies({"if-range": http_date(MODIFIED)}, ETAG, MODIFIED)
    assert not range_applies({"if-range": "Tue, 24 Nov 2026 08:30:15 GMT"}, ETAG, MODIFIED)
    assert not range_applies({"if-range": "nonsense"}, ETAG, MODIFIED)
