"""Text no database can store, refused wherever it comes in (JSON, forms, URLs)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

NUL_MESSAGE = "must not contain a NUL character"
NOT_UNICODE_MESSAGE = "is not valid Unicode text"
NOT_UTF8_MESSAGE = "is not valid UTF-8 text"
TOO_DEEP_MESSAGE = "the JSON is nested more than {depth} levels deep"


def clean_text(value: str) -> str:
    """``value`` unchanged, or ValueError if it holds what no database can store: a NUL
    (PostgreSQL refuses it) or a lone surrogate (no UTF-8 for it)."""
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(NOT_UNICODE_MESSAGE) from None
    return value


def urlencoded_problems(body: bytes) -> list[tuple[str, str]]:
    """(field, message) for each field of an ``application/x-www-form-urlencoded`` body
    whose name or value is not UTF-8 or holds a NUL. The form parser would silently turn
    bad bytes into U+FFFD, so the raw body is checked before it is parsed."""
    problems: list[tuple[str, str]] = []
    for pair in body.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name_bytes = unquote_to_bytes(raw_name.replace(b"+", b" "))
        name = name_bytes.decode("utf-8", "replace").replace("\x00", "\\0")
        for part in (name_bytes, unquote_to_bytes(raw_value.replace(b"+", b" "))):
            try:
                text = part.decode("utf-8")
            except UnicodeDecodeError:
                problems.append((name, NOT_UTF8_MESSAGE))
                break
            if "\x00" in text:
                problems.append((name, NUL_MESSAGE))
                break
    return problems


def depth_exceeds(data: Any, limit: int) -> bool:
    """Whether decoded JSON nests lists and objects more than ``limit`` levels deep."""
    level = [data]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)
