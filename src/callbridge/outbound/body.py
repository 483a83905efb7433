"""Reading answers: body text by charset, binary detection, the CRM's error in a body."""

from __future__ import annotations

import codecs
import json
from typing import Any

from callbridge.messages import Message, define
from callbridge.outbound.types import OutboundError

define({"crm_error": "HTTP {status}", "crm_error.detail": "HTTP {status}: {detail}"})

_BINARY_TYPES = ("image/", "audio/", "video/", "font/")
_BINARY_APPLICATION = (
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/x-",
    "application/vnd.ms-excel",
    "application/msword",
    "application/vnd.openxmlformats",
)
_TEXTUAL_APPLICATION = ("application/x-www-form-urlencoded", "application/x-javascript")
# Japanese systems that do not name their charset mostly send Shift_JIS (as CP932).
_FALLBACK_ENCODINGS = ("utf-8", "cp932")
_LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip():
            name = value.strip().strip('"').strip("'")
            try:
                return codecs.lookup(name).name
            except LookupError:
                return None
    return None


def is_binary(content_type: str | None, body: bytes) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    if media.startswith(_BINARY_TYPES):
        return True
    if media.startswith(_BINARY_APPLICATION) and not media.startswith(_TEXTUAL_APPLICATION):
        return True
    return not media and b"\x00" in body[:1024]


def decode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """(text, binary): the body decoded by its declared charset, else UTF-8, else CP932."""
    if is_binary(content_type, body):
        return "", True
    charset = _charset(content_type)
    if charset is not None:
        return body.decode(charset, errors="replace"), False
    for encoding in _FALLBACK_ENCODINGS:
        try:
            return body.decode(encoding), False
        except UnicodeDecodeError:
            continue
    return body.decode("utf-8", errors="replace"), False


def _first_error(body: bytes) -> tuple[str | None, str | None]:
    """(code, message) from Salesforce's ``[{"message","errorCode"}]`` or an OAuth-style
    ``{"error","error_description"}`` body."""
    if not body or len(body) > 256 * 1024 or body.lstrip()[:1] not in (b"[", b"{"):
        return None, None
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        item = data[0]
        code = item.get("errorCode") or item.get("statusCode")
        message = item.get("message")
        return (str(code) if code else None), (str(message) if message else None)
    if isinstance(data, dict):
        code = data.get("errorCode") or data.get("error")
        message = data.get("message") or data.get("error_description")
        if isinstance(code, dict):  # {"error": {"code": ..., "message": ...}}
            message = code.get("message", message)
            code = code.get("code")
        return (str(code) if code else None), (str(message) if message else None)
    return None, None


def provider_error(status: int | None, body: bytes) -> OutboundError | None:
    """The typed error of an answer with status >= 400 (None below 400)."""
    if status is None or status < 400:
        return None
    code, message = _first_error(body)
    if code and message:
        text = Message("crm_error.detail", status=status, detail=f"{code}: {message}")
    elif code or message:
        text = Message("crm_error.detail", status=status, detail=code or message or "")
    else:
        text = Message("crm_error", status=status)
    if status == 429 or (code is not None and code in _LIMIT_CODES):
        return OutboundError("limit", text, code)
    if status == 401:
        return OutboundError("auth", text, code)
    return OutboundError("http_status", text, code)
