"""Salesforce record IDs: 15-character case-sensitive keys and their 18-character form."""

from __future__ import annotations

import string

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_CHARS = frozenset(string.ascii_letters + string.digits)


def case_safe_suffix(id15: str) -> str:
    """The three characters Salesforce appends so an ID survives case-insensitive systems.

    Per block of five characters, bit i is set when character i is an upper-case letter;
    the 5-bit value indexes ``A-Z0-5``.
    """
    suffix = []
    for block in range(3):
        bits = 0
        for i, char in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix.append(_SUFFIX_ALPHABET[bits])
    return "".join(suffix)


def to_18(id15: str) -> str:
    return id15 + case_safe_suffix(id15)


def normalize_id(value: str) -> str | None:
    """The canonical 15-character key of a 15- or 18-character ID, or None when malformed.

    An 18-character ID is case-insensitive: its suffix says which letters are upper case.
    """
    if len(value) not in (15, 18) or not set(value) <= _ID_CHARS:
        return None
    if len(value) == 15:
        return value
    suffix = value[15:].upper()
    if any(char not in _SUFFIX_ALPHABET for char in suffix):
        return None
    chars = []
    for block in range(3):
        bits = _SUFFIX_ALPHABET.index(suffix[block])
        for i, char in enumerate(value[block * 5 : block * 5 + 5]):
            chars.append(char.upper() if bits & (1 << i) else char.lower())
    id15 = "".join(chars)
    # Digits cannot carry case: a set bit on a digit means the suffix does not belong here.
    if case_safe_suffix(id15) != suffix:
        return None
    return id15


def looks_like_id(value: str) -> bool:
    """Shaped like an ID (15 or 18 letters and digits), whether or not its suffix is right."""
    return len(value) in (15, 18) and set(value) <= _ID_CHARS


def make_id15(key_prefix: str, pod: str, sequence: int) -> str:
    """A new 15-character ID: key prefix, a 2-character pod marker and a base-62 sequence."""
    digits = []
    number = sequence
    while number:
        number, rest = divmod(number, 62)
        digits.append(_BASE62[rest])
    body = "".join(reversed(digits)).rjust(10, "0")
    if len(body) > 10:
        raise ValueError("ID sequence exhausted")
    return key_prefix + pod + body
