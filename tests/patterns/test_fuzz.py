"""Fuzzing: the pattern and JSONPath compilers only ever return a result or a
PatternError; matching only ever returns a result or a PatternTimeout/ExtractionError."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callbridge.patterns import (
    Extraction,
    ExtractionError,
    PatternError,
    PatternTimeout,
    compile_extractor,
    compile_jsonpath_extractions,
    compile_pattern,
)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_PIECES = [
    "/",
    "(",
    ")",
    "(?P<",
    "(?<",
    "(?'",
    "'",
    ">",
    "NAME",
    "name",
    "[",
    "]",
    "^",
    "\\",
    "¥",
    "＼",
    "{",
    "}",
    "*",
    "+",
    "?",
    ".",
    "|",
    "\\k<",
    "\\k'",
    "(?=",
    "(?<=",
    "(?i)",
    "$",
    "i",
    "m",
    "s",
    "x",
    "u",
    "g",
    '"',
    ",",
    " ",
    "\n",
    "#",
    "{2,}",
    "\\d",
    "\\p{",
    "(?#",
    "[[:alpha:]]",
    "\\g<1>",
    "\\1",
    "(?|",
    "(?>",
    "++",
    "(?R)",
]
PATTERNS = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=2)), max_size=20).map("".join),
)
_PATH_PIECES = [
    "$",
    ".",
    "..",
    "[",
    "]",
    "?",
    "@",
    "*",
    "'",
    '"',
    "0",
    "-1",
    ":",
    "==",
    "A",
    "=",
    " ",
    "\n",
    "length(",
    ")",
    "&&",
    "!",
    "ID ",
    "X=",
]
JSONPATHS = st.lists(
    st.one_of(st.sampled_from(_PATH_PIECES), st.text(max_size=2)), max_size=15
).map(lambda parts: "ID = " + "".join(parts))
BODIES = st.one_of(
    st.text(max_size=60),
    st.just('{"records":[{"Id":"1","Name":"a"}],"searchRecords":[]}'),
)


def _check_result(result: object) -> None:
    assert isinstance(result, Extraction)
    assert all(isinstance(v, str) for v in result.named.values())
    assert all(isinstance(v, str) for v in result.groups)


@FUZZ
@given(text=PATTERNS, subject=st.text(max_size=60))
def test_pattern_compiler_and_matching(text: str, subject: str) -> None:
    try:
        pattern = compile_pattern(text)
    except PatternError as exc:
        assert exc.errors
        assert 0 <= exc.position <= len(text)
        return
    for problem in pattern.normalisations + pattern.hints:
        assert 0 <= problem.position <= len(text)
    try:
        assert isinstance(pattern.matches(subject, timeout=0.05), bool)
        _check_result(pattern.extract(subject, timeout=0.05, json_body=True))
    except PatternTimeout:
        pass


@FUZZ
@given(text=JSONPATHS, body=BODIES)
def test_jsonpath_compiler_and_extraction(text: str, body: str) -> None:
    try:
        extractions = compile_jsonpath_extractions(text)
    except PatternError as exc:
        assert 0 <= exc.position <= len(text)
        return
    with contextlib.suppress(ExtractionError):
        _check_result(extractions.extract(body, timeout=0.05))


@FUZZ
@given(text=st.one_of(PATTERNS, JSONPATHS, st.text(max_size=80)))
def test_extractor_field_accepts_anything_or_says_why(text: str) -> None:
    try:
        compile_extractor(text)
    except PatternError as exc:
        assert exc.problems
