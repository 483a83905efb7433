"""The manuals' worked examples expand exactly as the manuals say (seed 000, seed 002)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx

from callbridge.templating import Context, body_context_for, compile_template
from tests.templating import seeds


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_example1_url_is_read_by_salesforce_as_the_intended_soql() -> None:
    template = compile_template(seeds.EXAMPLE1_URL, Context.URL)
    url = template.expand({"TEL": seeds.TEL}, system_urls=seeds.SYSTEM_URLS)

    assert url == (
        "https://acme.my.salesforce.com/services/data/v45.0/query"
        "?q=SELECT+Id,Name%20FROM%20Contact%20WHERE%20Phone%20='07075373713'"
    )
    assert _query(url) == {"q": ["SELECT Id,Name FROM Contact WHERE Phone ='07075373713'"]}
    # httpx sends the path and query exactly as built (nothing re-encoded or lost)
    assert httpx.URL(url).raw_path.decode() == url.removeprefix(seeds.INSTANCE_URL)


def test_example1_reports_what_was_normalised() -> None:
    template = compile_template(seeds.EXAMPLE1_URL, Context.URL)
    codes = {n.code: n.position for n in template.normalisations}
    assert codes["url_space_trimmed"] == seeds.EXAMPLE1_URL.index("q= ") + 2
    assert codes["url_space_encoded"] == seeds.EXAMPLE1_URL.index(" FROM")
    assert template.warnings == ()
    assert template.variables == {"OAUTH_INSTANCE_URL", "TEL"}


def test_example1_quote_in_the_number_cannot_end_the_literal() -> None:
    template = compile_template(seeds.EXAMPLE1_URL, Context.URL)
    url = template.expand({"TEL": "0' OR Name != '"}, system_urls=seeds.SYSTEM_URLS)
    assert _query(url) == {"q": ["SELECT Id,Name FROM Contact WHERE Phone ='0\\' OR Name != \\''"]}


def test_example2_url_header_and_body() -> None:
    url = compile_template(seeds.EXAMPLE2_URL, Context.URL)
    assert url.expand({}, system_urls=seeds.SYSTEM_URLS) == (
        "https://acme.my.salesforce.com/services/data/v45.0/sobjects/case/"
    )
    [removed] = url.normalisations
    assert removed.code == "url_path_space"
    assert removed.position == seeds.EXAMPLE2_URL.index("t s/") + 1

    headers = compile_template(seeds.EXAMPLE2_HEADERS, Context.HEADER)
    pairs = headers.expand_headers({})
    assert pairs == [("Content-Type", "application/json")]

    body = compile_template(
        seeds.EXAMPLE2_BODY, body_context_for(pairs[0][1]), response_names={"CONTACT_ID"}
    )
    assert body.context is Context.BODY_JSON
    assert body.warnings == ()
    expanded = body.expand({"RESPONSE_CONTACT_ID": seeds.CONTACT_ID})
    assert expanded == '{"Origin": "Phone","ContactId":"0032v00003AbCdEAAU"}'
    assert json.loads(expanded) == {"Origin": "Phone", "ContactId": seeds.CONTACT_ID}


def test_example2_warns_when_no_earlier_step_extracts_contact_id() -> None:
    body = compile_template(seeds.EXAMPLE2_BODY, Context.BODY_JSON, response_names=set())
    [warning] = body.warnings
    assert warning.code == "unknown_response_variable"
    assert warning.severity == "warning"
    assert warning.position == seeds.EXAMPLE2_BODY.index("{RESPONSE_CONTACT_ID}")
    # and at run time the missing value expands to an empty string
    assert json.loads(body.expand({}))["ContactId"] == ""


def test_example3_url_and_body() -> None:
    url = compile_template(seeds.EXAMPLE3_URL, Context.URL, response_names={"CASE_ID"})
    assert url.expand({"RESPONSE_CASE_ID": seeds.CASE_ID}, system_urls=seeds.SYSTEM_URLS) == (
        "https://acme.my.salesforce.com/services/data/v45.0/sobjects/case/5002v00002mPxwUAAS"
    )
    assert [n.code for n in url.normalisations] == ["url_path_space"]

    body = compile_template(seeds.EXAMPLE3_BODY, Context.BODY_JSON)
    expanded = body.expand({"RESPONSE_CONTACT_ID": seeds.CONTACT_ID, "ID": "1700000000.42"})
    assert json.loads(expanded) == {
        "Origin": "Phone",
        "Subject": "コールセンターへの着信です ",
        "ContactId": seeds.CONTACT_ID,
        "Description": "https://sXXXXXXXXXXXX.u.biztel.jp:8000/monitor_link/1700000000.42",
    }


def test_ivr_sosl_url() -> None:
    template = compile_template(seeds.IVR_URL, Context.URL)
    url = template.expand({"TEL": seeds.TEL}, system_urls=seeds.SYSTEM_URLS)
    assert url == (
        "https://acme.my.salesforce.com/services/data/v45.0/search"
        "?q=FIND%20%7B07075373713%7D%20IN%20PHONE%20FIELDS%20RETURNING%20Account(Id,%20Name,"
        "%20Phone)"
    )
    assert _query(url) == {
        "q": ["FIND {07075373713} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"]
    }
    assert httpx.URL(url).raw_path.decode() == url.removeprefix(seeds.INSTANCE_URL)
    codes = [n.code for n in template.normalisations]
    assert codes == ["url_path_space", "url_space_encoded", "url_char_encoded"]


def test_ivr_sosl_url_escapes_reserved_characters_of_the_number() -> None:
    template = compile_template(seeds.IVR_URL, Context.URL)
    url = template.expand({"TEL": "070-7537-3713"}, system_urls=seeds.SYSTEM_URLS)
    assert _query(url)["q"] == [
        "FIND {070\\-7537\\-3713} IN PHONE FIELDS RETURNING Account(Id, Name, Phone)"
    ]


def test_ivr_tts_with_the_extracted_company_name() -> None:
    tts = compile_template(seeds.IVR_TTS, Context.PLAIN, extra_names={"NAME", "CODE1"})
    assert tts.expand({"NAME": "CDF 株式会社", "CODE1": "CDF 株式会社"}) == (
        "CDF 株式会社様、お電話ありがとうございます。 只今、オペレータへお繋ぎしておりますので、"
        "しばらくお待ちください。"
    )


def test_double_braces_yield_literal_braces() -> None:
    template = compile_template("{{TEL}}", Context.PLAIN)
    assert template.expand({"TEL": seeds.TEL}) == "{07075373713}"


def test_seed002_google_search_url() -> None:
    template = compile_template("https://www.google.com/search?q={TEL}", Context.URL)
    assert template.expand({"TEL": seeds.TEL}) == ("https://www.google.com/search?q=07075373713")
    assert template.expand({"TEL": "+81 70"}) == "https://www.google.com/search?q=%2B81%2070"


def test_seed002_functions_upper_case_hex() -> None:
    # The manual prints this digest under "MD5(abc)"; it is SHA256("abc").
    assert compile_template("SHA256(abc)", Context.PLAIN).expand({}) == (
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    )
    assert compile_template("MD5(abc)", Context.PLAIN).expand({}) == (
        "900150983CD24FB0D6963F7D28E17F72"
    )
    md5 = compile_template("MD5({AID}{DATE-YYYY})", Context.PLAIN)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    expected = hashlib.md5(b"agent012026", usedforsecurity=False).hexdigest().upper()
    assert md5.expand({"AID": "agent01"}, now=now) == expected
    assert compile_template("LOWERCASE({AID})", Context.PLAIN).expand({"AID": "AGENT"}) == "agent"
    assert compile_template("UPPERCASE({AID})", Context.PLAIN).expand({"AID": "agent"}) == "AGENT"


def test_seed002_date_variables_in_the_configured_time_zone() -> None:
    template = compile_template(
        "{DATE-YYYY}-{DATE-MM}-{DATE-DD} {DATE-HH}:{DATE-II}:{DATE-SS}", Context.PLAIN
    )
    now = datetime(2026, 11, 25, 15, 30, 5, tzinfo=UTC)
    tokyo = timezone(timedelta(hours=9), "JST")
    assert template.expand({}, now=now, tz=tokyo) == "2026-11-26 00:30:05"
    assert template.expand({}, now=now) == "2026-11-25 15:30:05"
