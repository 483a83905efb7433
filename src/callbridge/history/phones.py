"""Phone number forms for matching a caller to Salesforce records (DESIGN §11.2), with the
phonenumbers library (Google's libphonenumber data): the forms SOSL is asked for, the
written forms SOQL compares literally, and one key to compare any two writings."""

from __future__ import annotations

import phonenumbers

Format = phonenumbers.PhoneNumberFormat


def _parse(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def match_key(text: str, region: str) -> str | None:
    """One key per number however it is written (E.164; digits when it does not parse)."""
    if not text or not text.strip():
        return None
    number = _parse(text, region)
    if number is None:
        digits = _digits(text)
        return digits or None
    return str(phonenumbers.format_number(number, Format.E164))


def search_forms(text: str, region: str) -> list[str]:
    """The number as received (digits and +), its national digits and its E.164 form."""
    forms: list[str] = []
    received = "".join(ch for ch in text.strip() if ch.isdigit() or ch == "+")
    number = _parse(text, region)
    candidates = [received]
    if number is not None:
        national = _digits(phonenumbers.format_number(number, Format.NATIONAL))
        candidates += [national, str(phonenumbers.format_number(number, Format.E164))]
    for form in candidates:
        if form and len(_digits(form)) >= 4 and form not in forms:
            forms.append(form)
    return forms


def written_forms(text: str, region: str) -> list[str]:
    """Common ways people type the number into a phone field (SOQL compares literally):
    ``0312345678``, ``03-1234-5678``, ``+81312345678``, ``+81 3-1234-5678``,
    ``(03) 1234-5678``."""
    forms = search_forms(text, region)
    number = _parse(text, region)
    if number is not None:
        national = str(phonenumbers.format_number(number, Format.NATIONAL))
        international = str(phonenumbers.format_number(number, Format.INTERNATIONAL))
        forms += [national, international]
        if "-" in national:
            area, _, rest = national.partition("-")
            forms.append(f"({area}) {rest}")
    if text.strip():
        forms.append(text.strip())
    unique: list[str] = []
    for form in forms:
        if form not in unique:
            unique.append(form)
    return unique
