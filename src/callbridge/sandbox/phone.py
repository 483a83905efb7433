"""Phone-number matching for SOSL ``IN PHONE FIELDS``, the way Salesforce's index does it.

Salesforce indexes phone fields by their digits, so a search for ``07075373713`` finds
``070-7537-3713`` and ``+81 70 7537 3713`` alike. Numbers are compared by country calling
code and national significant number: national numbers (with a trunk ``0``) are read as
numbers of the org's default country.
"""

from __future__ import annotations

import re

DEFAULT_COUNTRY_CODE = "81"

# ITU calling codes of one and two digits; every other code has three.
# fmt: off
_TWO_DIGIT_CODES = frozenset(
    str(code)
    for code in (20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49,
                 51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84,
                 86, 90, 91, 92, 93, 94, 95, 98)
)
# fmt: on
_PHONE_LIKE = re.compile(r"^[\d\s+\-().*?]+$")


def is_phone_like(text: str) -> bool:
    """A search term that reads as a phone number (at least four digits, only separators)."""
    return bool(_PHONE_LIKE.match(text)) and sum(c.isdigit() for c in text) >= 4


def _split_country(digits: str) -> tuple[str, str]:
    if digits[:1] in ("1", "7"):
        return digits[:1], digits[1:]
    if digits[:2] in _TWO_DIGIT_CODES:
        return digits[:2], digits[2:]
    return digits[:3], digits[3:]


def phone_key(value: str, default_country: str = DEFAULT_COUNTRY_CODE) -> str | None:
    """``<country code>:<national significant number>``, or None when there are no digits."""
    text = value.strip()
    digits = "".join(c for c in text if c.isdigit())
    if not digits:
        return None
    international = text.startswith("+") or digits.startswith("00")
    if international:
        if not text.startswith("+"):
            digits = digits[2:]
        country, national = _split_country(digits)
        # "+81 (0)70 …" writes the trunk prefix too; the national number never starts with it
        # except in Italy, where the leading 0 belongs to the number.
        if country != "39":
            national = national.lstrip("0") if national.startswith("0") else national
        return f"{country}:{national}"
    if digits.startswith("0"):
        return f"{default_country}:{digits[1:]}"
    return f"{default_country}:{digits}"


def phone_matches(term: str, value: str, default_country: str = DEFAULT_COUNTRY_CODE) -> bool:
    """Whether a phone-like search term finds a stored phone value.

    A trailing ``*`` makes the term a prefix of the number; otherwise the whole number must
    match.
    """
    if "*" in term or "?" in term:
        prefix_term = term.replace("*", "").replace("?", "")
        key = phone_key(prefix_term, default_country)
        target = phone_key(value, default_country)
        return key is not None and target is not None and target.startswith(key)
    key = phone_key(term, default_country)
    return key is not None and key == phone_key(value, default_country)
