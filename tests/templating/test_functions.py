"""Template functions: hashes, case, and the phone helpers built on phonenumbers."""

from __future__ import annotations

import hashlib

import pytest

from callbridge.templating import Context, compile_template


def _call(text: str, value: str, region: str = "JP") -> str:
    return compile_template(text, Context.PLAIN).expand({"TEL": value}, region=region)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("07075373713", "+817075373713"),
        ("070-7537-3713", "+817075373713"),
        ("０７０７５３７３７１３", "+817075373713"),
        ("+817075373713", "+817075373713"),
        ("1001", "1001"),  # an extension is not a phone number: unchanged
        ("anonymous", "anonymous"),
        ("", ""),
    ],
)
def test_e164(value: str, expected: str) -> None:
    assert _call("E164({TEL})", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+817075373713", "07075373713"),
        ("07075373713", "07075373713"),
        ("+81-3-1234-5678", "0312345678"),
        ("+442079460018", "+442079460018"),  # another country stays unambiguous
        ("unknown", "unknown"),
    ],
)
def test_national(value: str, expected: str) -> None:
    assert _call("NATIONAL({TEL})", value) == expected


def test_default_region_is_configurable() -> None:
    assert _call("E164({TEL})", "020 7946 0018", region="GB") == "+442079460018"
    assert _call("NATIONAL({TEL})", "+442079460018", region="GB") == "02079460018"
    assert _call("NATIONAL({TEL})", "+817075373713", region="jp") == "07075373713"


def test_digits() -> None:
    assert _call("DIGITS({TEL})", "+81 (070) ７５３７-3713") == "810707537" + "3713"


def test_phone_helpers_compose_with_other_functions() -> None:
    assert _call("MD5(E164({TEL}))", "07075373713") == _call("MD5({TEL})", "+817075373713")


def test_case_functions_are_unicode_aware() -> None:
    assert _call("UPPERCASE({TEL})", "straße ａｂｃ") == "STRASSE ＡＢＣ"
    assert _call("LOWERCASE({TEL})", "ÀÉ") == "àé"


def test_hash_of_empty_and_non_ascii() -> None:
    assert _call("MD5({TEL})", "") == "D41D8CD98F00B204E9800998ECF8427E"
    # hashes are taken over the UTF-8 bytes
    assert _call("SHA256({TEL})", "あ") == hashlib.sha256("あ".encode()).hexdigest().upper()
