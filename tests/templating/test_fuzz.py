"""Fuzzing: the template compiler only ever returns a template or a TemplateError, and
expansion only ever returns text or a TemplateExpansionError."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callbridge.templating import (
    CompiledTemplate,
    Context,
    TemplateError,
    TemplateExpansionError,
    compile_template,
)

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_PIECES = [
    "{TEL}",
    "<TEL>",
    "{{",
    "}}",
    "{",
    "}",
    "MD5(",
    "SHA256(",
    "E164(",
    "DIGITS(",
    ")",
    "(",
    "'",
    '"',
    "\\",
    "?",
    "&",
    "=",
    "#",
    "/",
    " ",
    "q=",
    "SELECT ",
    "FIND {",
    "LIKE '",
    "%",
    "%2",
    "%41",
    "%2e",
    "..",
    "{OAUTH_INSTANCE_URL}",
    "{SVADDR}",
    "https://",
    "http://h",
    "ftp://",
    ":",
    "\n",
    "\r\n",
    "\r",
    "{APW}",
    "{DATE-YYYY}",
    "{DATE-XX}",
    "UPPERCASE(",
    "Account(",
    "{RESPONSE_X}",
    "{tel}",
    "<FOO>",
    "¥",
    "\ud800",
    "X-A: ",
    "[",
    "]",
    ",",
    "\x00",
    "\u3000",
    "+",
]
TEMPLATES = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=3)), max_size=25).map("".join),
)
VALUES = st.text(max_size=12)
SYSTEM_URLS = {"OAUTH_INSTANCE_URL": "https://acme.my.salesforce.com", "SVADDR": "https://cb/"}


def _compile(text: str, context: Context) -> CompiledTemplate | None:
    try:
        template = compile_template(text, context, response_names=(), extra_names={"X"})
    except TemplateError as exc:
        assert exc.errors, "a TemplateError always carries at least one error"
        for problem in exc.problems:
            assert 0 <= problem.position <= len(text)
        return None
    for problem in template.notices:
        assert 0 <= problem.position <= len(text)
        assert problem.severity == "warning"
    return template


@FUZZ
@given(text=TEMPLATES, value=VALUES, context=st.sampled_from(list(Context)))
def test_compile_and_expand_never_fail_otherwise(text: str, value: str, context: Context) -> None:
    template = _compile(text, context)
    if template is None:
        return
    values = {name: value for name in template.variables}
    try:
        expanded = template.expand(values, system_urls=SYSTEM_URLS)
    except TemplateExpansionError as exc:
        assert 0 <= exc.position <= len(text)
        return
    assert isinstance(expanded, str)
    expanded.encode("utf-8")  # always sendable
    if context is Context.BODY_JSON and text.strip():
        json.loads(expanded)
    if context is Context.HEADER:
        assert "\r" not in expanded
        assert expanded.count("\n") == text.replace("\r\n", "\n").replace("\r", "\n").count("\n")
    if context is Context.URL:
        assert not any(ch.isspace() or ord(ch) < 0x20 for ch in expanded)


@FUZZ
@given(text=st.text(max_size=200))
def test_compile_arbitrary_text_in_every_context(text: str) -> None:
    for context in Context:
        _compile(text, context)
