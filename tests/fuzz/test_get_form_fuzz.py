"""Every GET form of the admin pages (the filters and searches of the list pages), signed
in as an admin, on SQLite and PostgreSQL, submitted the way a browser sends it:

1. with what each input lets an admin enter: dates in a date field (the first and last days
   of the calendar too), numbers in a number
   field, each option of a select, a checkbox on and off, Japanese text, a phone number
   or nothing in a text field; each field alone and the date fields together (one day,
   a range). The answer is a 200 page (a free-text field may also be answered with an
   error naming that field).
2. with what an admin can only put there by editing the URL: an impossible date, text or
   a 20-digit number in a number field, an option the select does not offer, a very
   long value, a NUL byte, invalid percent-encoding. The answer is a 4xx, or a 200 page
   showing an error. A free-text field has no impossible value: no 5xx is asked of it.

Never a 5xx. The forms and their inputs are read from the pages themselves (every page of
tests/pages.py, with the fuzz seeding so the lists are not empty); a text input is a date
field when its label or placeholder says so. Each case is sent in Japanese and English, and
when the page polls its own query with htmx (the calls list), as that poll too.
Deterministic: the same requests on every run; every failure is listed at the end.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.testclient import TestClient

from tests.fuzz.conftest import CLOSED, bearer_headers, seed, sign_in
from tests.fuzz.test_form_fuzz import HTML, _attrs
from tests.pages import Installation, page_routes

_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input\b([^>]*)>", re.I)
_SELECT = re.compile(r"<select\b([^>]*)>(.*?)</select>", re.S | re.I)
_OPTION = re.compile(r"<option\b([^>]*)>", re.I)
_LABEL = re.compile(r'<label\b[^>]*\bfor="([^"]+)"[^>]*>(.*?)</label>', re.S | re.I)
_WRAPPING_LABEL = re.compile(r"<label\b[^>]*>([^<]*)<(?:input|select)\b([^>]*)>", re.S | re.I)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# What each kind of input lets an admin enter.
GOOD = {
    "date": ["2026-12-04", "2026-01-31", "2024-02-29", "0001-01-01", "9999-12-31"],
    "datetime-local": ["2026-12-04T08:59", "2024-02-29T00:00"],
    "number": ["0", "1", "2147483647"],
    "text": ["山田 太郎", "03-1234-5678", "+81312345678", ""],
}
# The date fields together: one day, a range, the whole calendar.
DAY_PAIRS = [
    ("2026-12-04", "2026-12-04"),
    ("2026-01-31", "2026-12-04"),
    ("0001-01-01", "9999-12-31"),
]
LONG = "x" * 5000
# Put there by editing the URL. Raw: written into the query string as they are (invalid
# percent-encoding, which no browser would send for a typed value).
RAW_BAD = ["%ZZ", "%E3%81", "%"]
BAD = {
    "date": ["2026-13-45", "2026-02-30", "04/12/2026", "2026-12-04T08:59", LONG, "2026\x00"],
    "datetime-local": ["2026-13-45T25:61", "2026-12-04", LONG, "2026\x00"],
    "number": ["twelve", "-1", "9" * 20, "1e400", LONG, "1\x00"],
    "select": ["no-such-option", LONG, "\x00"],
    "checkbox": [LONG, "\x00"],
    "text": [LONG, "山田\x00", "\x00"],
}
# Kinds whose every value is constrained by the input: a wrong one must be refused.
CHECKED = ("date", "datetime-local", "number", "select", "checkbox")


@dataclass
class Input:
    name: str
    kind: str  # date, datetime-local, number, select, checkbox, text
    options: list[str] = field(default_factory=list)  # a select's values; a checkbox's value
    value: str = ""  # what the page offers


@dataclass
class Form:
    page: str
    action: str
    inputs: list[Input]
    polled: bool  # the page polls its own query with htmx


def _labels(page: str) -> dict[str, str]:
    found = {target: re.sub(r"<[^>]+>", "", text) for target, text in _LABEL.findall(page)}
    for text, raw in _WRAPPING_LABEL.findall(page):
        attrs = _attrs(raw)
        found.setdefault(attrs.get("id") or attrs.get("name", ""), text)
    return found


def _kind(attrs: dict[str, str], label: str) -> str:
    kind = attrs.get("type", "text").lower()
    if kind in ("date", "datetime-local", "number", "checkbox"):
        return kind
    if _DAY.match(attrs.get("placeholder", "")) or "(date)" in label:
        return "date"
    return "text"


def get_forms(page: str, path: str) -> list[Form]:
    """The GET forms of a page (a form without a method is one), with their inputs."""
    labels = _labels(page)
    forms = []
    polled = f'hx-get="{path}?' in page
    for raw, body in _FORM.findall(page):
        attrs = _attrs(raw)
        if attrs.get("method", "get").lower() != "get" or "hx-post" in attrs:
            continue
        inputs: list[Input] = []
        for raw_input in _INPUT.findall(body):
            a = _attrs(raw_input)
            if "name" not in a or a.get("type") in ("submit", "button", "reset", "image"):
                continue
            label = labels.get(a.get("id", ""), labels.get(a["name"], ""))
            kind = "hidden" if a.get("type") == "hidden" else _kind(a, label)
            value = a.get("value", "on" if kind == "checkbox" else "")
            inputs.append(Input(a["name"], kind, [value] if kind == "checkbox" else [], value))
        for raw_select, options in _SELECT.findall(body):
            a = _attrs(raw_select)
            if "name" in a:
                values = [_attrs(o).get("value", "") for o in _OPTION.findall(options)]
                inputs.append(Input(a["name"], "select", values, values[0] if values else ""))
        action = attrs.get("action", "") or path
        forms.append(Form(path, action.split("?")[0], inputs, polled))
    return forms


@dataclass
class Case:
    values: dict[str, str]  # the fields changed from what the page offers
    bad: str | None = None  # the field given a bad value
    strict: bool = True  # the answer must be a 200 page / refuse the bad value
    raw: bool = False  # the bad value goes into the query string as it is


def cases(form: Form) -> list[Case]:
    found: list[Case] = []
    visible = [i for i in form.inputs if i.kind != "hidden"]
    for item in visible:
        if item.kind == "select":
            good = item.options
        elif item.kind == "checkbox":
            good = [item.options[0], ""]  # on, off (not sent)
        else:
            good = GOOD[item.kind]
        found += [Case({item.name: value}, strict=item.kind in CHECKED) for value in good]
        found += [
            Case({item.name: value}, bad=item.name, strict=item.kind in CHECKED)
            for value in BAD[item.kind]
        ]
        found += [
            Case({item.name: value}, bad=item.name, strict=item.kind in CHECKED, raw=True)
            for value in RAW_BAD
        ]
    days = [i.name for i in visible if i.kind in ("date", "datetime-local")]
    if len(days) == 2:
        for first, last in DAY_PAIRS:
            values = {days[0]: first, days[1]: last}
            if any(i.kind == "datetime-local" for i in visible if i.name in days):
                values = {days[0]: f"{first}T00:00", days[1]: f"{last}T23:59"}
            found.append(Case(values))
    return found


def _query(form: Form, case: Case) -> str:
    fields = {i.name: i.value for i in form.inputs if i.kind not in ("checkbox",)}
    fields.update(case.values)
    parts = []
    for name, value in fields.items():
        if value == "" and _is_checkbox(form, name):
            continue  # an unchecked box is not sent
        raw = case.raw and name == case.bad
        parts.append(f"{quote(name)}={value if raw else quote(value, safe='')}")
    return "&".join(parts)


def _is_checkbox(form: Form, name: str) -> bool:
    return any(i.name == name and i.kind == "checkbox" for i in form.inputs)


def _shows_error(page: str, name: str) -> bool:
    return f'id="e-{name}"' in page or 'class="banner error"' in page


def _verdict(response: Any, case: Case) -> str | None:
    """What is wrong with the answer to a case; None when nothing is."""
    status = response.status_code
    if status >= 500:
        return f"{status}"
    if case.bad is None:
        if status == 200:
            return None
        if not case.strict and 400 <= status < 500 and _shows_error(response.text, *case.values):
            return None  # free text the page explains it cannot search for
        return f"{status}, not a 200 page"
    if not case.strict or 400 <= status < 500:
        return None
    if status == 200 and _shows_error(response.text, case.bad):
        return None
    return f"{status} without an error on {case.bad!r}"


def _describe(value: str) -> str:
    if value == LONG:
        return f"<{len(value)} characters>"
    return repr(value)


def test_no_get_form_input_is_answered_500(served: TestClient) -> None:
    app = served.app
    admin, pbx = bearer_headers(served)
    seeds = seed(served, admin, pbx)
    salesforce = served.post(
        "/api/v1/oauth-accounts",
        json={"name": "sf", "client_id": "c", "client_secret": "s", "token_url": f"{CLOSED}/t"},
        headers=admin,
    )
    assert salesforce.status_code == 201, salesforce.text
    link = served.post(
        "/api/v1/history-links",
        json={
            "name": "seed",
            "oauth_account_id": salesforce.json()["id"],
            "fallback_record": "0012v000032fR15AAE",
            "phone_numbers": ["0312345678"],
        },
        headers=admin,
    )
    assert link.status_code == 201, link.text
    made = Installation(
        account_id=seeds["account_id"],
        rule_id=seeds["rule_id"],
        ivr_id=seeds["ivr_id"],
        response_id=seeds["response_id"],
        step_id=seeds["step_id"],
        user_id=seeds["user_id"],
        link_id=link.json()["id"],
        screen_pop_id=seeds["profile_id"],
        call_id=seeds["call_id"],
        old_call_id="",
    )
    paths = made.paths()
    assert sorted(paths) == page_routes(app), "a page is missing from tests/pages.py"
    sign_in(served)
    forms: list[Form] = []
    served.cookies.set("cb_lang", "en")  # the labels say which text inputs take a date
    for path in paths.values():
        page = served.get(path, headers=HTML)
        if page.status_code == 200 and "text/html" in page.headers.get("content-type", ""):
            forms += get_forms(page.text, path)
    assert {f.action for f in forms} >= {"/calls", "/executions", "/audit"}, forms

    failures: dict[str, list[str]] = {}  # what was sent → how (language, htmx)
    sent = 0
    for form in forms:
        for case in cases(form):
            url = f"{form.action}?{_query(form, case)}"
            for language in ("ja", "en"):
                served.cookies.set("cb_lang", language)
                for htmx in (False, True) if form.polled else (False,):
                    headers = {**HTML, "HX-Request": "true"} if htmx else HTML
                    response = served.get(url, headers=headers, follow_redirects=False)
                    sent += 1
                    wrong = _verdict(response, case)
                    if wrong is not None:
                        values = {k: _describe(v) for k, v in case.values.items()}
                        raw = " as written" if case.raw else ""
                        key = f"GET {form.action} {values}{raw}: {wrong}"
                        failures.setdefault(key, []).append(language + (" htmx" if htmx else ""))
    # A list's page number edited into the address (the pager's links carry it): a page of
    # the list (the first for what is no page number, an empty one past the end), never an
    # error.
    for form in forms:
        for number in ("0", "-1", "two", "1e3", "9" * 20, " 2 "):
            response = served.get(form.action, params={"page": number}, headers=HTML)
            sent += 1
            if response.status_code != 200:
                key = f"GET {form.action} page={_describe(number)}: {response.status_code}"
                failures.setdefault(key, []).append("en")
    inputs = sum(len([i for i in f.inputs if i.kind != "hidden"]) for f in forms)
    print(f"GET form fuzz: {len(forms)} forms, {inputs} inputs, {sent} requests")
    listed = [f"{key} ({', '.join(how)})" for key, how in failures.items()]
    assert not listed, f"{len(listed)} wrong answers:\n" + "\n".join(listed)


def test_get_forms_are_read_from_the_page() -> None:
    page = html.unescape(
        '<label for="f-from">From (date)</label>'
        '<form method="get" action="/x"><input id="f-from" name="from">'
        '<label>Day <input type="date" name="day"></label>'
        '<select name="s"><option value="">Any</option><option value="a">A</option></select>'
        '<input type="checkbox" name="c" value="1"><button>Go</button></form>'
        '<form method="post" action="/y"><input name="z"></form>'
    )
    [form] = get_forms(page, "/x")
    kinds = {i.name: (i.kind, i.options) for i in form.inputs}
    assert kinds == {
        "from": ("date", []),
        "day": ("date", []),
        "s": ("select", ["", "a"]),
        "c": ("checkbox", ["1"]),
    }
