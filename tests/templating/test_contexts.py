"""Per-context escaping rules and URL normalisation (DESIGN §4)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from callbridge.templating import (
    Context,
    TemplateError,
    TemplateExpansionError,
    body_context_for,
    compile_template,
)

SF = {"OAUTH_INSTANCE_URL": "https://acme.my.salesforce.com"}
BASE = "{OAUTH_INSTANCE_URL}/services/data/v62.0"


def _url(text: str, values: dict[str, str], **kwargs: object) -> str:
    return compile_template(text, Context.URL, **kwargs).expand(values, system_urls=SF)  # type: ignore[arg-type]


def _q(url: str) -> str:
    return parse_qs(urlsplit(url).query)["q"][0]


# --- URL structure ------------------------------------------------------------------------


def test_value_in_path_cannot_add_segments_or_query() -> None:
    url = _url(BASE + "/sobjects/Case/{RESPONSE_CASE_ID}", {"RESPONSE_CASE_ID": "a/b?c=d#e f"})
    assert (
        url
        == "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Case/a%2Fb%3Fc%3Dd%23e%20f"
    )


@pytest.mark.parametrize("value", [".", "..", "%2e%2E"])
def test_value_forming_a_dot_segment_is_refused(value: str) -> None:
    template = compile_template(BASE + "/sobjects/Case/{RESPONSE_CASE_ID}/x", Context.URL)
    if value.startswith("%"):
        # encoded by the escaper, so it is not a dot segment
        assert "%252e" in template.expand({"RESPONSE_CASE_ID": value}, system_urls=SF)
        return
    with pytest.raises(TemplateExpansionError) as raised:
        template.expand({"RESPONSE_CASE_ID": value}, system_urls=SF)
    assert "'.' or '..'" in raised.value.message


def test_dot_segment_check_sees_literal_dots_too() -> None:
    template = compile_template(BASE + "/a/.{ID}/b", Context.URL)
    with pytest.raises(TemplateExpansionError):
        template.expand({"ID": "."}, system_urls=SF)
    assert template.expand({"ID": "x"}, system_urls=SF).endswith("/a/.x/b")


def test_value_in_query_cannot_add_parameters() -> None:
    url = _url("https://crm.example.com/find?tel={TEL}&x=1", {"TEL": "1&admin=true#frag +"})
    assert parse_qsl(urlsplit(url).query) == [("tel", "1&admin=true#frag +"), ("x", "1")]
    assert urlsplit(url).fragment == ""


def test_system_urls_come_only_from_system_urls() -> None:
    template = compile_template("{SVADDR}monitor_link/{ID}", Context.URL)
    url = template.expand(
        {"ID": "1.2", "SVADDR": "https://evil.example"},
        system_urls={"SVADDR": "https://callbridge.example.jp/"},
    )
    assert url == "https://callbridge.example.jp/monitor_link/1.2"
    with pytest.raises(TemplateExpansionError) as raised:
        template.expand({"SVADDR": "https://evil.example/"})
    assert raised.value.position == 0


def test_system_url_must_be_http() -> None:
    template = compile_template("{OAUTH_INSTANCE_URL}/x", Context.URL)
    with pytest.raises(TemplateExpansionError):
        template.expand({}, system_urls={"OAUTH_INSTANCE_URL": "javascript:alert(1)"})


def test_sfapi_is_an_alias_and_double_slashes_are_avoided() -> None:
    template = compile_template("{SFAPI}/services/data/", Context.URL)
    urls = {"OAUTH_INSTANCE_URL": "https://acme.my.salesforce.com/"}
    assert template.expand({}, system_urls=urls) == "https://acme.my.salesforce.com/services/data/"


def test_system_url_elsewhere_is_an_ordinary_encoded_value() -> None:
    url = _url("https://crm.example.com/cb?back={SVADDR}", {})
    assert url == "https://crm.example.com/cb?back="
    template = compile_template("https://crm.example.com/cb?back={SVADDR}", Context.URL)
    url = template.expand({}, system_urls={"SVADDR": "https://cb.example/"})
    assert url == "https://crm.example.com/cb?back=https%3A%2F%2Fcb.example%2F"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("https://{TEL}.example.com/", "url_variable_host"),
        ("{TEL}/path", "url_variable_host"),
        ("ftp://files.example.com/{TEL}", "url_scheme"),
        ("crm.example.com/{TEL}", "url_not_absolute"),
    ],
)
def test_variables_cannot_decide_scheme_or_host(text: str, code: str) -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template(text, Context.URL)
    assert raised.value.errors[0].code == code


def test_relative_path_is_accepted() -> None:
    assert _url("/services/data/v62.0/sobjects/{ID}", {"ID": "x y"}) == (
        "/services/data/v62.0/sobjects/x%20y"
    )


def test_literal_normalisation_keeps_percent_escapes_and_plus() -> None:
    template = compile_template(
        "https://h.example/a b/%E3%81%82?q=a+b%20c d&e=100%&f= x ", Context.URL
    )
    assert template.expand({}) == "https://h.example/ab/%E3%81%82?q=a+b%20c%20d&e=100%25&f=x"
    codes = {n.code for n in template.normalisations}
    assert codes == {
        "url_outer_space",
        "url_path_space",
        "url_space_encoded",
        "url_percent_encoded",
        "url_space_trimmed",
    }


def test_pasted_line_breaks_are_removed() -> None:
    template = compile_template(
        "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobject\ns/case/\n", Context.URL
    )
    assert template.expand({}, system_urls=SF).endswith("/sobjects/case/")


def test_non_ascii_literal_is_percent_encoded() -> None:
    template = compile_template("https://h.example/検索?q=山田", Context.URL)
    assert template.expand({}) == ("https://h.example/%E6%A4%9C%E7%B4%A2?q=%E5%B1%B1%E7%94%B0")
    [note] = template.normalisations
    assert note.code == "url_char_encoded"
    assert note.position == 18


# --- SOQL and SOSL inside q= -------------------------------------------------------------


def test_soql_string_escapes_quote_and_backslash() -> None:
    url = _url(
        BASE + "/query?q=SELECT Id FROM Contact WHERE Name = '{TELNAME}'",
        {"TELNAME": 'O\'Brien \\ "x"\n'},
    )
    assert _q(url) == "SELECT Id FROM Contact WHERE Name = 'O\\'Brien \\\\ \\\"x\\\"\\n'"


def test_soql_like_escapes_wildcards_of_the_value_only() -> None:
    url = _url(
        BASE + "/query?q=SELECT Id FROM Contact WHERE Name LIKE '%{TELNAME}_'",
        {"TELNAME": "50%_off"},
    )
    assert _q(url) == "SELECT Id FROM Contact WHERE Name LIKE '%50\\%\\_off_'"


def test_like_wildcard_before_hex_letters_stays_a_wildcard() -> None:
    # '%Ac' would be a percent-escape of a byte that is not UTF-8: read as a literal %
    template = compile_template(
        BASE + "/query?q=SELECT Id FROM Account WHERE Name LIKE '%Acme%' AND Phone = '%E3%81%82'",
        Context.URL,
    )
    assert _q(template.expand({}, system_urls=SF)) == (
        "SELECT Id FROM Account WHERE Name LIKE '%Acme%' AND Phone = 'あ'"
    )
    assert "url_percent_encoded" in {n.code for n in template.normalisations}


def test_soql_with_encoded_quotes_in_the_template_is_lexed_decoded() -> None:
    url = _url(BASE + "/query?q=SELECT+Id+FROM+Contact+WHERE+Phone=%27{TEL}%27", {"TEL": "1'"})
    assert _q(url) == "SELECT Id FROM Contact WHERE Phone='1\\''"


def test_soql_value_outside_quotes_accepts_only_a_plain_token() -> None:
    template = compile_template(
        BASE + "/query?q=SELECT Id FROM Case LIMIT {N}", Context.URL, extra_names={"N"}
    )
    [warning] = template.warnings
    assert warning.code == "query_variable_unquoted"
    assert _q(template.expand({"N": "5"}, system_urls=SF)).endswith("LIMIT 5")
    with pytest.raises(TemplateExpansionError) as raised:
        template.expand({"N": "5 OFFSET 10"}, system_urls=SF)
    assert raised.value.position == template.text.index("{N}")
    assert "{N}" in str(raised.value)


def test_variable_after_a_backslash_is_an_error() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template(BASE + "/query?q=SELECT Id FROM A WHERE B = '\\{TEL}'", Context.URL)
    assert raised.value.errors[0].code == "variable_after_backslash"


def test_sosl_term_neutralises_operators_and_braces() -> None:
    template = compile_template(
        BASE + "/search/?q=FIND {{TEL}} IN PHONE FIELDS RETURNING Account(Id)", Context.URL
    )
    q = _q(template.expand({"TEL": "x} OR {y"}, system_urls=SF))
    assert q == 'FIND {"x\\} OR \\{y"} IN PHONE FIELDS RETURNING Account(Id)'
    q = _q(template.expand({"TEL": "OR"}, system_urls=SF))
    assert q == 'FIND {"OR"} IN PHONE FIELDS RETURNING Account(Id)'


def test_sosl_phrase_and_where_clause() -> None:
    template = compile_template(
        BASE + "/search/?q=FIND {\"{TELNAME}\"} RETURNING Contact(Id WHERE Phone = '{TEL}')",
        Context.URL,
    )
    q = _q(template.expand({"TELNAME": 'a "b" c', "TEL": "0'1"}, system_urls=SF))
    assert q == 'FIND {"a \\"b\\" c"} RETURNING Contact(Id WHERE Phone = \'0\\\'1\')'


def test_unclosed_soql_literal_warns() -> None:
    template = compile_template(BASE + "/query?q=SELECT Id FROM A WHERE B = '{TEL}", Context.URL)
    assert [w.code for w in template.warnings] == ["query_unclosed"]


def test_other_query_parameters_are_not_soql() -> None:
    url = _url("https://crm.example.com/x?query=SELECT '{TEL}'", {"TEL": "a'b c"})
    assert parse_qs(urlsplit(url).query)["query"] == ["SELECT 'a'b c'"]


# --- JSON ---------------------------------------------------------------------------------


def test_json_value_stays_inside_its_string() -> None:
    template = compile_template('{"a":"<{TEL}>","b":"{TELNAME}"}', Context.BODY_JSON)
    value = '"}, "admin": true, "x": "\\\u2028\x00'
    body = template.expand({"TEL": value, "TELNAME": "山田"})
    assert json.loads(body) == {"a": f"<{value}>", "b": "山田"}
    assert "山田" in body  # non-ASCII stays readable


def test_json_value_outside_a_string_becomes_a_json_string() -> None:
    template = compile_template('{"n": {TEL}, "list": [{TEL}]}', Context.BODY_JSON)
    assert json.loads(template.expand({"TEL": '1, "x": 2'})) == {
        "n": '1, "x": 2',
        "list": ['1, "x": 2'],
    }


def test_invalid_json_template_warns_at_save_and_fails_at_expansion() -> None:
    template = compile_template('{"Origin": "Phone",}', Context.BODY_JSON)
    [warning] = template.warnings
    assert warning.code == "body_not_json"
    assert warning.position == 19
    with pytest.raises(TemplateExpansionError) as raised:
        template.expand({})
    assert "not valid JSON" in raised.value.message


def test_empty_json_body_is_allowed() -> None:
    assert compile_template("  ", Context.BODY_JSON).expand({}) == "  "


def test_json_variable_after_backslash_is_an_error() -> None:
    with pytest.raises(TemplateError):
        compile_template('{"a":"\\{TEL}"}', Context.BODY_JSON)


def test_lone_surrogates_never_reach_the_wire() -> None:
    template = compile_template('{"a":"{TEL}"}', Context.BODY_JSON)
    body = template.expand({"TEL": "x\ud800y"})
    body.encode()
    assert json.loads(body) == {"a": "x\ufffdy"}
    url = compile_template("https://h.example/?q={TEL}", Context.URL).expand({"TEL": "\udfff"})
    assert url == "https://h.example/?q=%EF%BF%BD"


# --- headers, forms, XML, plain -------------------------------------------------------------


def test_header_value_cannot_add_a_header() -> None:
    template = compile_template("X-Caller: {TELNAME}\nX-Id: {ID}", Context.HEADER)
    pairs = template.expand_headers({"TELNAME": "a\r\nX-Admin: 1\rb\nc", "ID": "7"})
    assert pairs == [("X-Caller", "a  X-Admin: 1 b c"), ("X-Id", "7")]


def test_header_block_crlf_and_blank_lines() -> None:
    template = compile_template("A: 1\r\n\r\nB: {TEL}\r\n", Context.HEADER)
    assert template.expand_headers({"TEL": "2"}) == [("A", "1"), ("B", "2")]
    assert [n.code for n in template.normalisations] == ["header_line_break"]


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("X-{TEL}: 1", "header_name_variable", 2),
        ("A: 1\nnot a header", "header_line", 5),
        ("Bad Name: 1", "header_name", 0),
    ],
)
def test_header_errors(text: str, code: str, position: int) -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template(text, Context.HEADER)
    assert (raised.value.errors[0].code, raised.value.errors[0].position) == (code, position)


def test_expand_headers_needs_the_header_context() -> None:
    with pytest.raises(ValueError):
        compile_template("A: 1", Context.PLAIN).expand_headers({})


def test_form_body_values_are_encoded() -> None:
    template = compile_template("name={TELNAME}&tel={TEL}", Context.BODY_FORM)
    body = template.expand({"TELNAME": "山田 & 太郎=1", "TEL": "+81"})
    assert parse_qsl(body) == [("name", "山田 & 太郎=1"), ("tel", "+81")]


def test_form_body_q_parameter_gets_soql_escaping() -> None:
    template = compile_template("q=SELECT Id FROM A WHERE B = '{TEL}'", Context.BODY_FORM)
    body = template.expand({"TEL": "x'y"})
    assert parse_qs(body)["q"] == ["SELECT Id FROM A WHERE B = 'x\\'y'"]


def test_xml_body() -> None:
    template = compile_template("<ID>{ID}</ID><n a='{TELNAME}'/>", Context.BODY_XML)
    assert template.expand({"ID": "<x>&", "TELNAME": "'"}) == (
        "<ID>&lt;x&gt;&amp;</ID><n a='&apos;'/>"
    )


def test_plain_text_is_inserted_as_is() -> None:
    template = compile_template("{TELNAME}様 <TEL>", Context.PLAIN)
    assert template.expand({"TELNAME": "{TEL}'\"", "TEL": "1"}) == "{TEL}'\"様 1"


@pytest.mark.parametrize(
    ("content_type", "context"),
    [
        ("application/json", Context.BODY_JSON),
        ("application/json; charset=utf-8", Context.BODY_JSON),
        ("application/vnd.api+json", Context.BODY_JSON),
        ("Application/X-WWW-Form-Urlencoded", Context.BODY_FORM),
        ("text/xml", Context.BODY_XML),
        ("application/soap+xml", Context.BODY_XML),
        ("text/plain", Context.BODY_TEXT),
        (None, Context.BODY_TEXT),
        ("", Context.BODY_TEXT),
    ],
)
def test_body_context_for(content_type: str | None, context: Context) -> None:
    assert body_context_for(content_type) is context
