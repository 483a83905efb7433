"""Masking of credentials in everything the outbound path shows or logs.

Three nets, because a secret can hide in more than one place: headers whose name says
they carry credentials (``Authorization`` keeps its scheme: ``Bearer [redacted]``),
fields whose name says so in query strings, form and JSON bodies (``password``,
``client_secret``, ``access_token``, ...), and the exact values of the credentials the
request was sent with, wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

MASK = "[redacted]"

_SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "x-auth-token",
        "x-sfdc-session",
    }
)
# A header or query parameter whose name holds one of _SENSITIVE_WORDS, or a body or form
# field whose name holds one of _FIELD_WORDS, has its value masked.
_SECRET_WORDS = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "assertion",
    "signature",
)
_SENSITIVE_WORDS = (*_SECRET_WORDS, "api-key", "session")
_FIELD_WORDS = (*_SECRET_WORDS, "sessionid", "session_id")
_SENSITIVE_FIELD = r"(?:[A-Za-z0-9_.\-]*(?:" + "|".join(_FIELD_WORDS) + r")[A-Za-z0-9_.\-]*)"
_JSON_FIELD = re.compile(r'("' + _SENSITIVE_FIELD + r'"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE)
_FORM_FIELD = re.compile(r"((?:^|[&?])" + _SENSITIVE_FIELD + r"=)[^&\s]*", re.IGNORECASE)


@lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SENSITIVE_HEADERS or any(word in lowered for word in _SENSITIVE_WORDS)


def _may_have_sensitive_field(text: str) -> bool:
    """Every text the field patterns match holds one of ``_FIELD_WORDS`` once case-folded
    (with the dotless ı that IGNORECASE also takes for i): others skip the patterns."""
    folded = text.lower() if text.isascii() else text.casefold().replace("ı", "i")
    return any(word in folded for word in _FIELD_WORDS)


def _mask_header(name: str, value: str) -> str:
    if name.lower() in ("authorization", "proxy-authorization"):
        scheme, _, rest = value.partition(" ")
        return f"{scheme} {MASK}" if rest else MASK
    return MASK


@dataclass(frozen=True, slots=True)
class RequestView:
    """The request as it may be displayed: method, URL, headers and body, secrets masked.

    ``as_dict()`` is the ``request`` object of an execution log (DESIGN.md §3.8).
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: str | None
    _secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: str | bytes | None,
        secrets: Iterable[str] = (),
    ) -> RequestView:
        known = tuple(sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True))
        view = cls(method, url, (), None, known)
        if isinstance(body, bytes):
            try:
                text: str | None = body.decode("utf-8")
            except UnicodeDecodeError:
                text = f"<{len(body)} bytes of binary data>"
        else:
            text = body
        return cls(
            method=method,
            url=view.scrub_url(url),
            headers=view.scrub_headers(headers),
            body=view.scrub(text) if text is not None else None,
            _secrets=known,
        )

    def scrub(self, text: str) -> str:
        """Mask known credential values and sensitive JSON/form fields in a text."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if _may_have_sensitive_field(text):
            if '"' in text:
                text = _JSON_FIELD.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
            if "=" in text:
                text = _FORM_FIELD.sub(lambda m: f"{m.group(1)}{MASK}", text)
        return text

    def scrub_headers(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (name, _mask_header(name, value) if is_sensitive_name(name) else self.scrub(value))
            for name, value in headers
        )

    def scrub_url(self, url: str) -> str:
        for secret in self._secrets:
            if secret in url:
                url = url.replace(secret, MASK)
        try:
            parts = urlsplit(url)
        except ValueError:
            return url
        if not parts.query or not _has_sensitive_name(parts.query):
            return url
        query = urlencode(
            [(k, MASK if is_sensitive_name(k) else v) for k, v in _pairs(parts.query)],
            safe="[]",
        )
        return urlunsplit(parts._replace(query=query))

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "headers": headers_dict(self.headers),
            "body": self.body,
        }


def _pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def _has_sensitive_name(query: str) -> bool:
    """Whether a name in ``query`` is sensitive, as ``_pairs`` names them (split at "&",
    the name up to "="), without decoding the values: a SOSL search or a long ``q`` is
    not unquoted for nothing."""
    return any(
        is_sensitive_name(unquote_plus(pair.partition("=")[0])) for pair in query.split("&") if pair
    )


def headers_dict(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as one JSON object (a repeated name's values joined with ", ")."""
    merged: dict[str, str] = {}
    for name, value in headers:
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return merged
