"""The manuals' patterns on the manuals' responses (seed 000 §2-§4)."""

from __future__ import annotations

from callbridge.patterns import compile_extractor, compile_pattern
from callbridge.templating import Context, compile_template
from tests.templating import seeds

LIMIT = 1.0


def test_example1_contact_id() -> None:
    pattern = compile_pattern(seeds.EXAMPLE1_PATTERN)
    result = pattern.extract(seeds.QUERY_RESPONSE, timeout=LIMIT, json_body=True)
    assert result.matched
    assert result.named == {"CONTACT_ID": seeds.CONTACT_ID}
    assert result.response_variables() == {"RESPONSE_CONTACT_ID": seeds.CONTACT_ID}


def test_example1_greedy_capture_is_hinted_and_shown_to_misbehave() -> None:
    pattern = compile_pattern(seeds.EXAMPLE1_PATTERN)
    [hint] = pattern.hints
    assert hint.code == "greedy_capture"
    assert hint.position == seeds.EXAMPLE1_PATTERN.index("(?P<")
    assert '[^"]*' in hint.message
    assert "JSONPath" in hint.message
    # the manual's pattern on two records captures across JSON structure...
    garbage = pattern.extract(seeds.QUERY_RESPONSE_TWO, timeout=LIMIT).named["CONTACT_ID"]
    assert garbage.startswith(seeds.CONTACT_ID + '","Name"')
    # ...while the suggested fixes pick the first record's Id
    fixed = compile_pattern('/"Id":"(?P<CONTACT_ID>[^"]*)",/')
    assert fixed.hints == ()
    assert fixed.extract(seeds.QUERY_RESPONSE_TWO, timeout=LIMIT).named == {
        "CONTACT_ID": seeds.CONTACT_ID
    }
    jsonpath = compile_extractor("CONTACT_ID = $.records[0].Id")
    assert jsonpath.extract(seeds.QUERY_RESPONSE_TWO, timeout=LIMIT).named == {
        "CONTACT_ID": seeds.CONTACT_ID
    }


def test_example2_case_id_from_the_compact_create_response() -> None:
    pattern = compile_pattern(seeds.EXAMPLE2_PATTERN)
    assert seeds.CASE_CREATED == '{"id":"5002v00002mPxwUAAS","success":true,"errors":[]}'
    result = pattern.extract(seeds.CASE_CREATED, timeout=LIMIT, json_body=True)
    assert result.named == {"CASE_ID": seeds.CASE_ID}
    # the manual prints the body with spaces; Salesforce sends it compact, which the
    # manual's pattern depends on
    assert not pattern.matches(seeds.CASE_CREATED_PRINTED, timeout=LIMIT)


def test_ivr_priority1_no_account_pattern_with_yen_signs() -> None:
    pattern = compile_pattern(seeds.IVR_NO_ACCOUNT_PATTERN)
    assert pattern.source == '"searchRecords":\\[\\]'
    assert [(n.code, n.position) for n in pattern.normalisations] == [
        ("backslash_lookalike", 17),
        ("backslash_lookalike", 19),
    ]
    assert pattern.matches(seeds.SOSL_EMPTY, timeout=LIMIT)
    assert not pattern.matches(seeds.SOSL_RESPONSE, timeout=LIMIT)


def test_ivr_priority2_name_and_tts() -> None:
    assert seeds.SOSL_RESPONSE == (
        '{"searchRecords":[{"attributes":{"type":"Account","url":'
        '"/services/data/v45.0/sobjects/Account/0012v00002uhRmWAAU"},'
        '"Id":"0012v00002uhRmWAAU","Name":"CDF 株式会社","Phone":"07075373713"}]}'
    )
    # response pattern "なし" (empty): matches everything and extracts nothing
    assert compile_pattern("").matches(seeds.SOSL_RESPONSE, timeout=LIMIT)

    extractor = compile_pattern(seeds.IVR_NAME_PATTERN)
    result = extractor.extract(seeds.SOSL_RESPONSE, timeout=LIMIT, json_body=True)
    assert result.named == {"NAME": "CDF 株式会社"}
    assert result.groups == ["CDF 株式会社"]
    variables = result.ivr_variables()
    assert variables == {"CODE1": "CDF 株式会社", "NAME": "CDF 株式会社"}

    tts = compile_template(seeds.IVR_TTS, Context.PLAIN, extra_names=variables)
    assert tts.expand(variables) == (
        "CDF 株式会社様、お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、"
        "しばらくお待ちください。"
    )


def test_ivr_priority2_on_the_no_record_response_extracts_nothing() -> None:
    result = compile_pattern(seeds.IVR_NAME_PATTERN).extract(seeds.SOSL_EMPTY, timeout=LIMIT)
    assert not result.matched
    assert result.named == {}
    assert result.ivr_variables() == {}
