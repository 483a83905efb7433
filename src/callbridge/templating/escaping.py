"""Escapers: each turns an untrusted value into text that cannot leave its slot.

One escaper per place a value can land. The context compilers pick the escaper at
compile time, so expansion is a plain function call per value.
"""

from __future__ import annotations

import json.encoder
import re
from collections.abc import Callable
from urllib.parse import quote

from callbridge.messages import Message, define

Escaper = Callable[[str], str]

define(
    {
        "base_url_missing": "this base URL is not available (is an OAuth account connected?)",
        "base_url_not_http": "this base URL is not an http(s) URL",
        "bare_value_refused": (
            "outside quotes in a SOQL/SOSL query only letters, digits and _ . : + - are "
            "accepted; put the variable inside quotes"
        ),
    }
)


class Refusal(ValueError):
    """The value cannot be inserted at this place without changing the structure."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.text)
        self.msg = message


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def clean_value(value: object) -> str:
    """A caller value as text; lone surrogates (not encodable as UTF-8) become U+FFFD."""
    if type(value) is str:
        if value.isascii() or _SURROGATE_RE.search(value) is None:
            return value
        return _SURROGATE_RE.sub("\ufffd", value)
    if value is None:
        return ""
    return clean_value(str(value))


def raw(value: str) -> str:
    """Plain text (TTS, condition codes, text bodies): nothing to break out of."""
    return value


# --- URLs -----------------------------------------------------------------------------


def url_component(value: str) -> str:
    """Percent-encode everything but RFC 3986 unreserved characters.

    ``/ ? # & = + %`` and spaces are all encoded, so a value can neither add a path
    segment nor a query parameter, and ``+`` stays a plus sign.
    """
    return quote(value, safe="")


_DOT_SEGMENTS = frozenset({".", ".."})


def is_dot_segment(segment: str) -> bool:
    """``.``/``..`` in any spelling a server might normalise (``%2e`` included)."""
    return segment.replace("%2e", ".").replace("%2E", ".") in _DOT_SEGMENTS


_SYSTEM_URL_RE = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


def system_url(strip_trailing_slash: bool) -> Escaper:
    """A trusted base URL (``{OAUTH_INSTANCE_URL}``, ``{SVADDR}``) inserted as a URL."""

    def escape(value: str) -> str:
        if not value:
            raise Refusal(Message("base_url_missing"))
        if _SYSTEM_URL_RE.fullmatch(value) is None:
            raise Refusal(Message("base_url_not_http"))
        if strip_trailing_slash and value.endswith("/"):
            return value[:-1]
        return value

    return escape


# --- SOQL / SOSL (inside a URL's q= parameter) -----------------------------------------

_SOQL_TABLE: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_SOQL_TABLE.update(
    {
        ord("\\"): "\\\\",
        ord("'"): "\\'",
        ord('"'): '\\"',
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        ord("\t"): "\\t",
        ord("\b"): "\\b",
        ord("\f"): "\\f",
    }
)
_SOQL_LIKE_TABLE = dict(_SOQL_TABLE)
_SOQL_LIKE_TABLE.update({ord("%"): "\\%", ord("_"): "\\_"})


def soql_string(value: str) -> str:
    """Escape for the inside of a SOQL ``'…'`` literal."""
    return value.translate(_SOQL_TABLE)


def soql_like(value: str) -> str:
    """Escape for a SOQL ``LIKE '…'`` literal: ``%`` and ``_`` lose their wildcard role."""
    return value.translate(_SOQL_LIKE_TABLE)


_BARE_TOKEN_RE = re.compile(r"[A-Za-z0-9_.:+\-]*")


def soql_bare(value: str) -> str:
    """A value outside quotes in SOQL/SOSL: only a plain token (number, ID, date) passes."""
    if _BARE_TOKEN_RE.fullmatch(value) is None:
        raise Refusal(Message("bare_value_refused"))
    return value


_SOSL_RESERVED = "&|!(){}[]^\"~*?:\\'+-"
_SOSL_TABLE: dict[int, str] = {ord(c): "\\" + c for c in _SOSL_RESERVED}
_SOSL_OPERATORS = frozenset({"AND", "OR", "NOT"})


def sosl_term(value: str) -> str:
    """Escape for the inside of a SOSL ``FIND {…}`` phrase (``"…"``)."""
    return value.translate(_SOSL_TABLE)


def sosl_term_wrapped(value: str) -> str:
    """Escape for a SOSL search term; several words become one quoted phrase.

    Backslashes neutralise the reserved characters; quoting neutralises the operator
    words AND / OR / AND NOT that a multi-word value could otherwise smuggle in.
    """
    escaped = value.translate(_SOSL_TABLE)
    if value and (any(ch.isspace() for ch in value) or value.upper() in _SOSL_OPERATORS):
        return f'"{escaped}"'
    return escaped


def in_url(inner: Escaper) -> Escaper:
    def escape(value: str) -> str:
        return quote(inner(value), safe="")

    return escape


url_soql_string = in_url(soql_string)
url_soql_like = in_url(soql_like)
url_soql_bare = in_url(soql_bare)
url_sosl_term = in_url(sosl_term)
url_sosl_term_wrapped = in_url(sosl_term_wrapped)


# --- JSON -----------------------------------------------------------------------------

_encode_basestring: Callable[[str], str] = json.encoder.encode_basestring


def json_string(value: str) -> str:
    """Escape for the inside of a JSON string (no surrounding quotes added)."""
    return _encode_basestring(value)[1:-1]


def json_value(value: str) -> str:
    """A value outside any JSON string becomes a complete JSON string."""
    return _encode_basestring(value)


# --- headers and XML ------------------------------------------------------------------

_HEADER_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_value(value: str) -> str:
    """CR, LF and other control characters become a space: a value cannot add a header."""
    return _HEADER_BAD_RE.sub(" ", value)


_XML_TABLE: dict[int, str] = {c: " " for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)}
_XML_TABLE.update(
    {
        ord("&"): "&amp;",
        ord("<"): "&lt;",
        ord(">"): "&gt;",
        ord('"'): "&quot;",
        ord("'"): "&apos;",
    }
)


def xml_text(value: str) -> str:
    """Escape for XML text or an attribute value."""
    return value.translate(_XML_TABLE)
