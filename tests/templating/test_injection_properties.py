"""Property tests of the injection guarantee (DESIGN §4): whatever a value contains, it
cannot change the structure of what it is inserted into."""

from __future__ import annotations

import json
import re
from typing import NamedTuple
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callbridge.templating import Context, TemplateExpansionError, compile_template
from tests.templating import seeds

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_NASTY = [
    "'",
    '"',
    "\\",
    "{",
    "}",
    "&",
    "#",
    "%",
    "+",
    "?",
    "/",
    ":",
    "\r",
    "\n",
    "\r\n",
    " ",
    "=",
    ";",
    "_",
    "*",
    "(",
    ")",
    "[",
    "]",
    "~",
    "^",
    "!",
    "|",
    "-",
    ".",
    "..",
    "@",
    "<",
    ">",
    "\t",
    "\x00",
    "\x7f",
    "\u2028",
    "\u3000",
    "%2e",
    "%0d%0a",
    " OR ",
    "AND NOT",
    "{TEL}",
    "\\'",
    "\\\\",
    "\\u0027",
    "https://evil.example/",
    "山田",
    "😀",
]
VALUES = st.lists(st.one_of(st.sampled_from(_NASTY), st.text(max_size=4)), max_size=8).map("".join)
BASE = "{OAUTH_INSTANCE_URL}/services/data/v62.0"

URL_TEMPLATES = [
    seeds.EXAMPLE1_URL,
    seeds.EXAMPLE3_URL,
    seeds.IVR_URL,
    "https://crm.example.com:8443/api/{TEL}/calls/x{ID}y?tel={TEL}&name={TELNAME}&k{ID}=v#top",
    "{SVADDR}monitor_link/{ID}?t={TEL}",
    BASE + "/query?q=SELECT Id FROM Contact WHERE Name LIKE '%{TELNAME}%' AND Phone = '{TEL}'",
    "https://h.example/p?a=UPPERCASE({TELNAME})&b=MD5({TEL})#frag-{ID}",
]


class Shape(NamedTuple):
    scheme: str
    host: str | None
    port: int | None
    segments: list[str]
    keys: list[str]
    fragment: str


def _shape(url: str) -> Shape:
    parts = urlsplit(url)
    keys = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
    return Shape(
        parts.scheme, parts.hostname, parts.port, parts.path.split("/"), keys, parts.fragment
    )


def _expand(text: str, value: str, context: Context = Context.URL) -> str:
    template = compile_template(text, context, unknown_names="warning")
    values = {"TEL": value, "TELNAME": value, "ID": value, "RESPONSE_CASE_ID": value}
    return template.expand(values, system_urls=seeds.SYSTEM_URLS)


def _literal_parts(a: list[str], b: list[str]) -> list[tuple[int, str]]:
    """Positions where two neutral expansions agree: those come from the template."""
    return [(i, x) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x == y]


@pytest.mark.parametrize("text", URL_TEMPLATES)
@PROPERTY
@given(value=VALUES)
def test_url_structure_survives_any_value(text: str, value: str) -> None:
    neutral_x, neutral_y = _shape(_expand(text, "x")), _shape(_expand(text, "y"))
    try:
        url = _expand(text, value)
    except TemplateExpansionError:
        # the only refusal these templates can give: a value forming a ./.. path segment
        assert value in (".", "..")
        return
    got = _shape(url)
    assert (got.scheme, got.host, got.port) == (
        neutral_x.scheme,
        neutral_x.host,
        neutral_x.port,
    )
    assert httpx.URL(url).host == neutral_x.host
    assert len(got.segments) == len(neutral_x.segments)
    for index, segment in _literal_parts(neutral_x.segments, neutral_y.segments):
        assert got.segments[index] == segment
    assert len(got.keys) == len(neutral_x.keys)
    for index, key in _literal_parts(neutral_x.keys, neutral_y.keys):
        assert got.keys[index] == key
    if neutral_x.fragment == neutral_y.fragment:
        assert got.fragment == neutral_x.fragment
    assert not any(ch.isspace() or ord(ch) < 0x20 for ch in url)


@PROPERTY
@given(value=VALUES)
def test_url_path_and_query_values_round_trip(value: str) -> None:
    assume(value not in (".", ".."))
    url = _expand("https://h.example/a/{TEL}/b?t={TELNAME}&u=1", value)
    parts = urlsplit(url)
    assert unquote(parts.path.split("/")[2]) == value
    assert parse_qs(parts.query, keep_blank_values=True) == {"t": [value], "u": ["1"]}


# --- SOQL / SOSL --------------------------------------------------------------------------

_SOQL_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "%": "%",
    "_": "_",
}


def _soql_split(q: str) -> tuple[list[str], list[str], str]:
    """(decoded string literals, raw literals, the text outside them) of a SOQL statement."""
    literals: list[str] = []
    raws: list[str] = []
    outside: list[str] = []
    i = 0
    while i < len(q):
        if q[i] != "'":
            outside.append(q[i])
            i += 1
            continue
        i += 1
        start = i
        current: list[str] = []
        while q[i] != "'":
            if q[i] == "\\":
                nxt = q[i + 1]
                if nxt == "u":
                    current.append(chr(int(q[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                current.append(_SOQL_ESCAPES[nxt])
                i += 2
                continue
            current.append(q[i])
            i += 1
        literals.append("".join(current))
        raws.append(q[start:i])
        outside.append("''")
        i += 1
    return literals, raws, "".join(outside)


_ESCAPED_PAIR = re.compile(r"\\.", re.DOTALL)


@PROPERTY
@given(tel=VALUES, name=VALUES)
def test_soql_literals_parse_back_to_the_values(tel: str, name: str) -> None:
    text = (
        BASE + "/query?q=SELECT Id FROM Contact WHERE Name LIKE '%{TELNAME}%' AND Phone = '{TEL}'"
    )
    template = compile_template(text, Context.URL)
    url = template.expand({"TEL": tel, "TELNAME": name}, system_urls=seeds.SYSTEM_URLS)
    q = parse_qs(urlsplit(url).query)["q"][0]
    literals, raws, outside = _soql_split(q)
    assert literals == [f"%{name}%", tel]
    assert outside == "SELECT Id FROM Contact WHERE Name LIKE '' AND Phone = ''"
    # inside LIKE only the template's own % remain wildcards; the value's are escaped
    wildcards = _ESCAPED_PAIR.sub("", raws[0])
    assert wildcards.count("%") == 2
    assert "_" not in wildcards


def _sosl_term(q: str) -> tuple[str, str]:
    """(the decoded FIND {…} term, the text after it)."""
    assert q.startswith("FIND {")
    i = len("FIND {")
    raw: list[str] = []
    while q[i] != "}":
        if q[i] == "\\":
            raw.append(q[i : i + 2])
            i += 2
        else:
            raw.append(q[i])
            i += 1
    term = raw
    if term and term[0] == '"':
        assert term[-1] == '"'
        term = term[1:-1]
    else:
        plain = "".join(term)
        assert not any(ch.isspace() for ch in plain)
        assert plain.upper() not in ("AND", "OR", "NOT")
    decoded = "".join(piece[-1] if piece.startswith("\\") else piece for piece in term)
    return decoded, q[i + 1 :]


@PROPERTY
@given(value=VALUES)
def test_sosl_search_term_parses_back_to_the_value(value: str) -> None:
    template = compile_template(seeds.IVR_URL, Context.URL)
    url = template.expand({"TEL": value}, system_urls=seeds.SYSTEM_URLS)
    q = parse_qs(urlsplit(url).query)["q"][0]
    term, rest = _sosl_term(q)
    assert term == value
    assert rest == " IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"


# --- bodies and headers -------------------------------------------------------------------


@PROPERTY
@given(a=VALUES, b=VALUES, c=VALUES)
def test_json_body_parses_and_contains_the_values(a: str, b: str, c: str) -> None:
    text = '{"a":"{TEL}","b":{TELNAME},"c":"x{ID}y","d":[{TEL}, "{TEL}"]}'
    body = compile_template(text, Context.BODY_JSON).expand({"TEL": a, "TELNAME": b, "ID": c})
    assert json.loads(body) == {"a": a, "b": b, "c": f"x{c}y", "d": [a, a]}


@PROPERTY
@given(a=VALUES, b=VALUES)
def test_headers_never_contain_cr_or_lf_from_values(a: str, b: str) -> None:
    template = compile_template("X-A: {TEL}\nX-B: pre {TELNAME} post", Context.HEADER)
    expanded = template.expand({"TEL": a, "TELNAME": b})
    assert "\r" not in expanded
    assert expanded.count("\n") == 1
    assert [name for name, _ in template.expand_headers({"TEL": a, "TELNAME": b})] == [
        "X-A",
        "X-B",
    ]


@PROPERTY
@given(a=VALUES, b=VALUES)
def test_form_body_round_trips(a: str, b: str) -> None:
    body = _expand("a={TEL}&b=x{TELNAME}y", a, Context.BODY_FORM)
    assert parse_qsl(body, keep_blank_values=True) == [("a", a), ("b", f"x{a}y")]
    body = compile_template("a={TEL}&b={TELNAME}", Context.BODY_FORM).expand(
        {"TEL": a, "TELNAME": b}
    )
    assert parse_qsl(body, keep_blank_values=True) == [("a", a), ("b", b)]


@PROPERTY
@given(a=VALUES, b=VALUES)
def test_xml_body_parses_and_contains_the_values(a: str, b: str) -> None:
    assume(not any(ord(ch) < 0x20 or 0xFFFE <= ord(ch) <= 0xFFFF for ch in a + b))
    body = compile_template('<r a="{TEL}">{TELNAME}</r>', Context.BODY_XML).expand(
        {"TEL": a, "TELNAME": b}
    )
    root = ElementTree.fromstring(body)
    assert root.attrib == {"a": a}
    assert (root.text or "") == b
    assert list(root) == []
