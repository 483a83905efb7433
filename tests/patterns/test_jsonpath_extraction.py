"""JSONPath extractions: NAME = $.path lines returning decoded JSON values."""

from __future__ import annotations

import pytest

from callbridge.patterns import (
    CompiledPattern,
    ExtractionError,
    JSONPathExtractions,
    PatternError,
    compile_extractor,
    compile_jsonpath_extractions,
)
from tests.templating import seeds


def test_values_come_out_decoded() -> None:
    body = (
        '{"records":[{"Id":"003A","Name":"O\\"Brien \\u3042","Amount":12.5,"Vip":true,'
        '"Owner":null,"Tags":["a","b"]}]}'
    )
    extractions = compile_jsonpath_extractions(
        "ID = $.records[0].Id\nNAME=$.records[0].Name\n\n# comment\nAMOUNT = $.records[0].Amount\n"
        "VIP = $.records[0].Vip\nOWNER = $.records[0].Owner\nTAGS = $.records[0].Tags\n"
        "MISSING = $.records[5].Id"
    )
    result = extractions.extract(body, timeout=1.0)
    assert result.matched
    assert result.named == {
        "ID": "003A",
        "NAME": 'O"Brien あ',
        "AMOUNT": "12.5",
        "VIP": "true",
        "OWNER": "",
        "TAGS": '["a","b"]',
        "MISSING": "",
    }
    assert result.groups == list(result.named.values())


def test_seed_sosl_response() -> None:
    extractions = compile_jsonpath_extractions("NAME = $.searchRecords[0].Name")
    result = extractions.extract(seeds.SOSL_RESPONSE_PRINTED)  # spaces do not matter here
    assert result.ivr_variables() == {"CODE1": "CDF 株式会社", "NAME": "CDF 株式会社"}
    assert not extractions.extract(seeds.SOSL_EMPTY).matched


def test_filter_expressions() -> None:
    extractions = compile_jsonpath_extractions("ID = $.records[?@.Name == 'b'].Id")
    body = '{"records":[{"Id":"1","Name":"a"},{"Id":"2","Name":"b"}]}'
    assert extractions.extract(body).named == {"ID": "2"}


def test_non_json_response_is_a_clear_error() -> None:
    extractions = compile_jsonpath_extractions("ID = $.Id")
    with pytest.raises(ExtractionError) as raised:
        extractions.extract("<html>oops</html>")
    assert "not JSON" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("ID = $.a[", "jsonpath_syntax", 9),
        ("ID = $.a b", "jsonpath_syntax", 9),
        ("ID = $.a\nid = $.b", "jsonpath_name", 9),
        ("ID = $.a\nID = $.b", "jsonpath_duplicate", 9),
        ("ID = $.a\njust text", "jsonpath_line", 9),
        ("ID = records", "jsonpath_syntax", 5),
        ("", "jsonpath_empty", 0),
    ],
)
def test_errors_with_positions(text: str, code: str, position: int) -> None:
    with pytest.raises(PatternError) as raised:
        compile_jsonpath_extractions(text)
    assert (raised.value.problems[0].code, raised.value.position) == (code, position)


def test_compile_extractor_chooses_the_form() -> None:
    assert isinstance(compile_extractor("ID = $.records[0].Id"), JSONPathExtractions)
    assert isinstance(compile_extractor(seeds.EXAMPLE1_PATTERN), CompiledPattern)
    assert isinstance(compile_extractor(""), CompiledPattern)
    assert compile_extractor("  ID = $.id  \r\n").extract('{"id":"x"}', timeout=1).named == {
        "ID": "x"
    }
