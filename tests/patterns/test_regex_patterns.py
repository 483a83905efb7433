"""Pattern forms, validation with positions, extraction, decoding and time limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from callbridge.patterns import (
    Extraction,
    PatternError,
    PatternTimeout,
    compile_pattern,
    decode_json_string_content,
)

LIMIT = 1.0


def _error(text: str) -> tuple[str, int]:
    with pytest.raises(PatternError) as raised:
        compile_pattern(text)
    return raised.value.errors[0].code, raised.value.position


@pytest.mark.parametrize(
    "text",
    ["(?P<TEL>\\d+)", "(?<TEL>\\d+)", "(?'TEL'\\d+)", "/(?'TEL'\\d+)/", "/(?<TEL>¥d+)/u"],
)
def test_three_named_group_syntaxes_and_bare_patterns(text: str) -> None:
    pattern = compile_pattern(text)
    assert pattern.group_names == ("TEL",)
    assert pattern.extract("tel: 0707", timeout=LIMIT).named == {"TEL": "0707"}


def test_flags() -> None:
    assert compile_pattern("/abc/i").matches("xABCx", timeout=LIMIT)
    assert not compile_pattern("/abc/").matches("ABC", timeout=LIMIT)
    assert compile_pattern("/^b$/m").matches("a\nb\nc", timeout=LIMIT)
    assert compile_pattern("/a.b/s").matches("a\nb", timeout=LIMIT)
    assert not compile_pattern("/a.b/").matches("a\nb", timeout=LIMIT)
    assert compile_pattern("/a b # comment\n c/x").matches("abc", timeout=LIMIT)
    assert compile_pattern("/\\d+/u").extract("番号１２３", timeout=LIMIT).matched


def test_slashes_inside_the_pattern() -> None:
    pattern = compile_pattern('/"url":"(?P<URL>[^"]*)"/')
    body = '{"url":"/services/data/v45.0/sobjects/Account/001"}'
    assert pattern.extract(body, timeout=LIMIT).named == {
        "URL": "/services/data/v45.0/sobjects/Account/001"
    }
    assert compile_pattern("/a\\/b/").matches("a/b", timeout=LIMIT)


def test_backslash_lookalikes_are_read_as_backslash_and_reported() -> None:
    pattern = compile_pattern("/¥d+＼.¥d+/")
    assert pattern.source == "\\d+\\.\\d+"
    assert [n.position for n in pattern.normalisations] == [1, 4, 6]
    assert all(n.severity == "warning" for n in pattern.normalisations)


def test_surrounding_whitespace_is_removed_and_reported() -> None:
    pattern = compile_pattern("  /abc/i \n")
    assert pattern.flags == "i"
    assert [n.code for n in pattern.normalisations] == ["pattern_outer_space"]


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("/a(b/", "pattern_syntax", 4),
        ("/ab)c/", "pattern_syntax", 3),
        ("/[a-/", "pattern_syntax", 1),
        ("/abc/g", "pattern_flags", 5),
        ("/abc/U", "pattern_flags", 5),
        ("/abc/q", "pattern_flags", 5),
        ("/x/ ※メモ", "pattern_flags", 3),
        ("/abc", "pattern_unclosed", 4),
        ("/(?P<id>x)/", "pattern_group_name", 5),
        ("/(?'Contact'x)/", "pattern_group_name", 4),
        ("(?P<A>a)(?<A>b)", "pattern_duplicate_group", 11),
        ("a{99999999999}", "pattern_syntax", 2),
    ],
)
def test_invalid_patterns_report_the_fault_position(text: str, code: str, position: int) -> None:
    assert _error(text) == (code, position)


def test_error_positions_count_in_the_original_text() -> None:
    # ¥ and (?'N' are translated before compiling; positions still point into the input
    code, position = _error("  /(?'NAME'x)¥d(/")
    assert code == "pattern_syntax"
    assert position == len("  /(?'NAME'x)¥d(")


def test_group_name_error_suggests_a_variable_name() -> None:
    with pytest.raises(PatternError) as raised:
        compile_pattern("(?P<contact-id>x)")
    assert "such as CONTACT_ID" in raised.value.message


def test_empty_pattern_matches_everything_and_extracts_nothing() -> None:
    for text in ("", "  ", "//"):
        pattern = compile_pattern(text)
        assert pattern.is_empty
        assert pattern.matches("anything", timeout=LIMIT)
        assert pattern.extract("anything", timeout=LIMIT) == Extraction(True)


def test_extraction_returns_named_and_positional_groups_of_the_first_match() -> None:
    pattern = compile_pattern("/(\\w+)=(?P<VALUE>\\d+)(?:;(?P<EXTRA>x))?/")
    result = pattern.extract("a=1;b=2", timeout=LIMIT)
    assert result.named == {"VALUE": "1", "EXTRA": ""}
    assert result.groups == ["a", "1", ""]
    assert result.ivr_variables() == {
        "CODE1": "a",
        "CODE2": "1",
        "CODE3": "",
        "VALUE": "1",
        "EXTRA": "",
    }


def test_backreferences_by_name_in_pcre_spellings() -> None:
    for text in ("/(?'Q'[\"'])x\\k'Q'/", "/(?<Q>[\"'])x\\k<Q>/", "/(?P<Q>[\"'])x\\k{Q}/"):
        assert compile_pattern(text).matches("'x'", timeout=LIMIT)
        assert not compile_pattern(text).matches("'x\"", timeout=LIMIT)


def test_json_string_escapes_are_decoded_when_the_body_is_json() -> None:
    body = '{"Name":"O\\"Brien \\u3042\\/x","Raw":"C:\\\\tmp"}'
    pattern = compile_pattern('/"Name":"(?P<NAME>(?:[^"\\\\]|\\\\.)*)"/')
    assert pattern.extract(body, timeout=LIMIT, json_body=True).named == {"NAME": 'O"Brien あ/x'}
    assert pattern.extract(body, timeout=LIMIT, json_body=False).named == {
        "NAME": 'O\\"Brien \\u3042\\/x'
    }


def test_decode_keeps_text_that_is_not_json_string_content() -> None:
    assert decode_json_string_content('a\\"b') == 'a"b'
    assert decode_json_string_content("C:\\tmp\\x") == "C:\\tmp\\x"  # \x is no JSON escape
    assert decode_json_string_content('a","b\\n') == 'a","b\\n'  # spans two strings
    assert decode_json_string_content("plain") == "plain"


def test_catastrophic_pattern_fails_within_its_time_limit() -> None:
    pattern = compile_pattern("/(x+x+)+y/")
    started = time.perf_counter()
    with pytest.raises(PatternTimeout) as raised:
        pattern.matches("x" * 5000, timeout=0.05)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert "0.05 s" in str(raised.value)
    with pytest.raises(PatternTimeout):
        pattern.extract("x" * 5000, timeout=0.05)
    # the same pattern is fine on a short input
    assert pattern.matches("xxy", timeout=LIMIT)


class _SearchSpy:
    """Stands in for a compiled regex and records how it was asked to search."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.calls: list[dict[str, Any]] = []

    def search(self, text: str, **options: Any) -> Any:
        self.calls.append(options)
        return self.compiled.search(text, **options)


def test_matching_keeps_the_gil() -> None:
    # With a timeout and no ``concurrent`` the regex module gives up the GIL for the
    # match; on the event loop's thread every IVR answer would then wait to get it back
    # from whichever thread holds it (the SQLite writer's, up to 5 ms).
    pattern = compile_pattern('/"Name":"(?P<NAME>.*)",/')
    spy = _SearchSpy(pattern._regex)
    pattern._regex = spy  # type: ignore[assignment]
    assert pattern.matches('{"Name":"CDF","Phone":"1"}', timeout=LIMIT)
    assert pattern.extract('{"Name":"CDF","Phone":"1"}', timeout=LIMIT).named == {"NAME": "CDF"}
    assert spy.calls == [{"timeout": LIMIT, "concurrent": False}] * 2


def test_greedy_hint_variants() -> None:
    assert compile_pattern("/'(?P<A>.+)'/").hints
    assert compile_pattern('/"x":"(.*)"/').hints
    assert not compile_pattern('/"x":"(.*?)"/').hints
    assert not compile_pattern("/(?P<A>.*)$/").hints


def test_plain_text_patterns_are_found_as_text_without_the_engine() -> None:
    # No operator, a backslash only before punctuation, flags among m s u: the pattern is
    # a text, found with str search (no backtracking, so no time limit to read a clock for).
    body = '{"totalSize":0,"searchRecords":[]}'
    for text in ('/"searchRecords":¥[¥]/', '"searchRecords":\\[\\]', '/"searchRecords":¥[¥]/msu'):
        pattern = compile_pattern(text)
        spy = _SearchSpy(pattern._regex)
        pattern._regex = spy  # type: ignore[assignment]
        assert pattern.matches(body, timeout=LIMIT)
        assert not pattern.matches('{"searchRecords":[{"Id":"1"}]}', timeout=LIMIT)
        assert pattern.extract(body, timeout=LIMIT) == Extraction(True)
        assert not pattern.extract("{}", timeout=LIMIT).matched
        assert spy.calls == []


def test_plain_text_search_finds_what_the_engine_finds() -> None:
    texts = ["a.b", "a\\.b", "a\\/b", "x\\d", "(ab)", "a|b", "ab*", "/AB/i", "/a b/x", "é\\-\\\\"]
    bodies = ["a.b", "axb", "a/b", "x1", "ab", "b", "a", "xAB", "ab", "é-\\", "E-\\"]
    for text in texts:
        pattern = compile_pattern(text)
        assert pattern._regex is not None
        for body in bodies:
            expected = pattern._regex.search(body) is not None
            assert pattern.matches(body, timeout=LIMIT) is expected, (text, body)


def test_only_plain_text_skips_the_time_limit() -> None:
    for text in ("a.b", "x\\d", "(ab)", "a|b", "ab*", "a{2}", "/AB/i", "/a b/x", "[ab]", "^a"):
        pattern = compile_pattern(text)
        spy = _SearchSpy(pattern._regex)
        pattern._regex = spy  # type: ignore[assignment]
        pattern.matches("ab", timeout=LIMIT)
        assert spy.calls == [{"timeout": LIMIT, "concurrent": False}], text


def test_plain_text_search_stays_fast_on_a_large_hostile_response() -> None:
    # The worst case for a naive text search: a long needle that almost matches
    # everywhere in the largest response kept (5 MiB).
    pattern = compile_pattern("/" + "a" * 200 + "b/")
    started = time.perf_counter()
    assert not pattern.matches("a" * (5 * 1024 * 1024), timeout=LIMIT)
    assert time.perf_counter() - started < 1.0
