"""Validation: every problem with its position; what is and is not a reference."""

from __future__ import annotations

import pytest

from callbridge.templating import Context, TemplateError, compile_template


def _problems(text: str, context: Context = Context.PLAIN, **kwargs: object) -> list[tuple]:
    with pytest.raises(TemplateError) as raised:
        compile_template(text, context, **kwargs)  # type: ignore[arg-type]
    return [(p.code, p.position, p.severity) for p in raised.value.problems]


def test_every_problem_is_reported_with_its_position() -> None:
    text = "{APW} {FOO} MD5({TEL} SHA1({TEL}) <APW>"
    assert _problems(text) == [
        ("refused_variable", 0, "error"),
        ("unknown_variable", 6, "error"),
        ("unbalanced_parenthesis", 12, "error"),
        ("unknown_function", 22, "error"),
        ("refused_variable", 34, "error"),
    ]


def test_apw_is_refused_with_the_reason() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template("https://crm.example.com/login?pw={APW}", Context.URL)
    [problem] = raised.value.problems
    assert problem.code == "refused_variable"
    assert problem.position == 33
    assert "never holds passwords" in problem.message
    assert "never holds passwords" in str(raised.value)


def test_session_id_is_refused_too() -> None:
    assert _problems("{SFSID}")[0][0] == "refused_variable"


def test_unknown_variable_suggests_a_close_name() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template("{TELNAEM}", Context.PLAIN)
    assert "Did you mean {TELNAME}?" in raised.value.problems[0].message


def test_crm_value_names_point_to_response_variables() -> None:
    with pytest.raises(TemplateError) as raised:
        compile_template("{COMPANY}", Context.PLAIN)
    assert "{RESPONSE_COMPANY}" in raised.value.problems[0].message


def test_extra_names_and_lenient_unknown_names() -> None:
    assert compile_template("{CODE1}", Context.PLAIN, extra_names={"CODE1"}).variables == {"CODE1"}
    lenient = compile_template("{CUSTOMER_NO}", Context.PLAIN, unknown_names="warning")
    assert [w.code for w in lenient.warnings] == ["unknown_variable"]
    assert lenient.expand({"CUSTOMER_NO": "42"}) == "42"


def test_response_variables_are_checked_against_producible_names() -> None:
    text = "{RESPONSE_CONTACT_ID}/{RESPONSE_CASE_ID}"
    unchecked = compile_template(text, Context.PLAIN)
    assert unchecked.warnings == ()
    assert unchecked.response_names == {"CONTACT_ID", "CASE_ID"}
    checked = compile_template(text, Context.PLAIN, response_names={"RESPONSE_CONTACT_ID"})
    assert [(w.code, w.position) for w in checked.warnings] == [("unknown_response_variable", 22)]
    also = compile_template(text, Context.PLAIN, response_names={"CONTACT_ID", "CASE_ID"})
    assert also.warnings == ()


def test_text_that_is_not_a_reference_stays_literal() -> None:
    text = '{"a": {"b": [1, 2]}, "c": "{ TEL }", "d": "{tel2}", "e": "<b>"}'
    template = compile_template(text, Context.PLAIN)
    assert template.is_static
    assert template.expand({}) == text


def test_angle_brackets_are_the_same_reference() -> None:
    template = compile_template("<TEL>/{TEL}", Context.PLAIN)
    assert template.expand({"TEL": "1"}) == "1/1"
    typo = compile_template("<TELL>", Context.PLAIN)
    assert typo.expand({}) == "<TELL>"
    assert [w.code for w in typo.warnings] == ["unknown_angle_variable"]


def test_lowercase_reference_is_literal_with_a_warning() -> None:
    template = compile_template("{tel}", Context.PLAIN)
    assert template.expand({"TEL": "1"}) == "{tel}"
    assert [w.code for w in template.warnings] == ["lowercase_variable"]


def test_unclosed_reference_warns() -> None:
    template = compile_template("x {TEL y", Context.PLAIN)
    assert [(w.code, w.position) for w in template.warnings] == [("unclosed_variable", 2)]


def test_words_followed_by_parenthesis_are_literal_unless_functions() -> None:
    text = "SELECT COUNT() FROM Account RETURNING Account(Id, Name) WHERE x IN ('{TEL}')"
    template = compile_template(text, Context.PLAIN)
    assert template.expand({"TEL": "1"}) == text.replace("{TEL}", "1")


def test_function_names_are_case_sensitive() -> None:
    template = compile_template("md5({TEL})", Context.PLAIN)
    assert template.expand({"TEL": "1"}) == "md5(1)"
    assert [w.code for w in template.warnings] == ["function_case"]


def test_unknown_upper_case_function_of_a_variable_is_an_error() -> None:
    assert _problems("BASE64({TEL})") == [("unknown_function", 0, "error")]
    assert _problems("x SHA1(MD5({TEL}))") == [("unknown_function", 2, "error")]


def test_unbalanced_parenthesis_position() -> None:
    assert _problems("abc UPPERCASE(MD5({TEL})") == [("unbalanced_parenthesis", 4, "error")]


def test_parentheses_inside_function_arguments_balance() -> None:
    template = compile_template("UPPERCASE(a(b){TEL}c)", Context.PLAIN)
    assert template.expand({"TEL": "x"}) == "A(B)XC"


def test_functions_nest_and_arguments_expand_first() -> None:
    template = compile_template("LOWERCASE(MD5(UPPERCASE({TELNAME})))", Context.PLAIN)
    import hashlib

    expected = hashlib.md5(b"ABC", usedforsecurity=False).hexdigest().lower()
    assert template.expand({"TELNAME": "abc"}) == expected


def test_literal_only_functions_are_computed_once() -> None:
    template = compile_template("MD5(abc)", Context.PLAIN)
    assert template.is_static


def test_variables_lists_names_inside_functions() -> None:
    template = compile_template("MD5({TEL}{DATE-YYYY}) {RESPONSE_X}", Context.PLAIN)
    assert template.variables == {"TEL", "DATE-YYYY", "RESPONSE_X"}


def test_unknown_date_part_is_an_unknown_variable() -> None:
    assert _problems("{DATE-YY}")[0][:2] == ("unknown_variable", 0)


def test_unknown_context_is_rejected() -> None:
    with pytest.raises(ValueError):
        compile_template("x", "sql")
