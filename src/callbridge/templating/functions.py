"""The template functions: hashes, case changes and phone-number helpers."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from urllib.parse import quote

import phonenumbers

DEFAULT_REGION = "JP"

TemplateFunction = Callable[[str, str], str]
"""A function takes the expanded argument and the default phone region."""


def _md5(text: str, region: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def _sha256(text: str, region: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest().upper()


def _lowercase(text: str, region: str) -> str:
    return text.lower()


def _uppercase(text: str, region: str) -> str:
    return text.upper()


def _parse_phone(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """A possible phone number, or None (then the helpers return their input unchanged)."""
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None
    except Exception:  # the library's own bugs must not fail a call
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return number


def _e164(text: str, region: str) -> str:
    number = _parse_phone(text, region)
    if number is None:
        return text
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _national(text: str, region: str) -> str:
    """National digits for a number of the default region; other countries stay E.164.

    A foreign number written nationally would lose its country, so it is left in E.164.
    """
    number = _parse_phone(text, region)
    if number is None:
        return text
    if phonenumbers.region_code_for_number(number) != region.upper():
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    formatted = str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    return "".join(ch for ch in formatted if ch.isdigit())


def _digits(text: str, region: str) -> str:
    """Only the digits, full-width digits (０-９) converted to ASCII."""
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())


def _monitor_link_path(text: str, region: str) -> str:
    """``MONITOR_LINK`` is evaluated by the expansion with the caller's link maker (the
    playback link of a call, signed when playback uses signed links); this is only its
    path, for the documentation and for constant folding, which never applies to it."""
    return "monitor_link/" + quote(text, safe="")


MONITOR_LINK = "MONITOR_LINK"

FUNCTIONS: dict[str, TemplateFunction] = {
    "MD5": _md5,
    "SHA256": _sha256,
    "LOWERCASE": _lowercase,
    "UPPERCASE": _uppercase,
    "E164": _e164,
    "NATIONAL": _national,
    "DIGITS": _digits,
    MONITOR_LINK: _monitor_link_path,
}
