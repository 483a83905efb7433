"""Opening an edit page and pressing Save without changing anything changes nothing.

Every edit page of the admin UI, on SQLite and PostgreSQL: each object is created through
the API with rich values (Japanese text, templates with braces, CRLF in multi-line fields,
trailing spaces, a value other than the default for every option and checkbox, secrets
set, lists in an order of their own), read through the API, then its edit page is opened
and its form submitted exactly as a browser submits it (the values the page shows, checked
boxes only, each select's selected option, textareas decoded and with the line endings a
browser sends, hidden fields, the CSRF token). Read again through the API, the object must
be the same; every difference of every page is listed in one failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from starlette.testclient import TestClient

from callbridge.admin.rendering import keep_line_endings
from tests.fuzz.conftest import bearer_headers, sign_in
from tests.oauth_accounts.conftest import rsa_key_and_certificate

HTML = {"Accept": "text/html"}
CRM = "https://crm.example.com"

# Not the object's content: when it was last saved, and the IVR's revision (a counter of
# saves the PBX-facing cache is keyed on; a Save is a save even when nothing changed).
NOT_CONTENT = frozenset({"updated_at", "revision"})


# ---- the form as a browser submits it ------------------------------------------------


@dataclass
class _Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    submitter: tuple[str, str] | None = None


def _newlines_crlf(value: str) -> str:
    """What a browser does to every value it submits (application/x-www-form-urlencoded)."""
    return re.sub(r"\r\n|\r|\n", "\r\n", value)


class _FormReader(HTMLParser):
    """The successful controls of each form, as the HTML standard constructs the entry
    list: disabled controls and unchecked boxes are left out, a select without a selected
    option submits its first, a textarea loses the one newline after its start tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._form: _Form | None = None
        self._textarea: tuple[str, list[str]] | None = None
        self._select: tuple[str, list[tuple[str, bool, bool]]] | None = None
        self._option: tuple[dict[str, str], list[str]] | None = None

    def handle_starttag(self, tag: str, raw: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in raw}
        if tag == "form":
            self._form = _Form(attrs.get("action", ""), attrs.get("method", "get").lower())
            self.forms.append(self._form)
        if self._form is None:
            return
        name = attrs.get("name", "")
        disabled = "disabled" in attrs
        if tag == "input" and name and not disabled:
            kind = attrs.get("type", "text").lower()
            value = attrs.get("value", "")
            if kind in ("submit", "image", "button", "reset", "file"):
                if kind in ("submit", "image") and self._form.submitter is None:
                    self._form.submitter = (name, value)
                return
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self._form.fields.append((name, value or "on"))
                return
            if kind in ("text", "search", "tel", "password", "url", "email", "number"):
                value = value.replace("\r", "").replace("\n", "")  # value sanitization
            if kind in ("url", "email"):
                value = value.strip()
            if kind == "number" and not re.fullmatch(
                r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", value
            ):
                value = ""
            self._form.fields.append((name, value))
        elif tag == "button":
            kind = attrs.get("type", "submit").lower()
            if kind == "submit" and self._form.submitter is None:
                self._form.submitter = (name, attrs.get("value", "")) if name else ("", "")
        elif tag == "textarea" and name and not disabled:
            self._textarea = (name, [])
        elif tag == "select" and name and not disabled:
            self._select = (name, [])
        elif tag == "option" and self._select is not None:
            self._option = (attrs, [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)
        if self._option is not None:
            self._option[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None and self._form is not None:
            name, parts = self._textarea
            text = "".join(parts)
            self._form.fields.append((name, text[1:] if text.startswith("\n") else text))
            self._textarea = None
        elif tag == "option" and self._option is not None and self._select is not None:
            attrs, parts = self._option
            label = " ".join("".join(parts).split())
            value = attrs.get("value", label)
            self._select[1].append((value, "selected" in attrs, "disabled" in attrs))
            self._option = None
        elif tag == "select" and self._select is not None and self._form is not None:
            if self._option is not None:
                self.handle_endtag("option")
            name, options = self._select
            chosen = [v for v, selected, _ in options if selected]
            if not chosen:
                chosen = [v for v, _, disabled in options if not disabled][:1]
            self._form.fields += [(name, value) for value in chosen[-1:]]
            self._select = None
        elif tag == "form":
            self._form = None


def browser_form(page: str, action: str) -> list[tuple[str, str]]:
    """The fields a browser submits when Save is pressed on the form posting to ``action``
    (the page's own address when the form names none)."""
    reader = _FormReader()
    # The HTML tokenizer reads CR LF and a lone CR in the source as LF.
    reader.feed(page.replace("\r\n", "\n").replace("\r", "\n"))
    reader.close()
    forms = [f for f in reader.forms if f.method == "post" and f.action in ("", action)]
    assert forms, f"no form posting to {action}"
    form = forms[0]
    fields = list(form.fields)
    if form.submitter and form.submitter[0]:
        fields.append(form.submitter)
    return [(name, _newlines_crlf(value)) for name, value in fields]


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    """Every value that is not the same in ``after``, by its path."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in sorted(set(before) | set(after)):
            if key in NOT_CONTENT:
                continue
            if key not in after or key not in before:
                found.append(f"{where}.{key}: {before.get(key)!r} → {after.get(key)!r}")
            else:
                found += differences(before[key], after[key], f"{where}.{key}")
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after))
            for d in differences(b, a, f"{where}[{i}]")
        ]
    if before != after or type(before) is not type(after):
        return [f"{where or '.'}: {before!r} → {after!r}"]
    return []


# ---- the objects ---------------------------------------------------------------------

MEMO = "受付メモ：{TEL} 様\r\n２行目　全角スペース \r\n  字下げ\r\n"
HEADERS = "Content-Type: application/json\r\nX-Tel: {TEL}\r\nX-Sign: MD5({TEL})"
BODY = '{"Subject": "{TELNAME} 様", "Raw": "{{TEL}}", "Sig": "MD5({TEL})"}\r\n'


def _accounts() -> list[dict[str, Any]]:
    return [
        {
            "name": "Salesforce 本番 <main> & {TEL}",
            "provider": "salesforce",
            "grant_type": "authorization_code",
            "login_url": "https://test.salesforce.com",
            "revoke_url": "https://test.salesforce.com/services/oauth2/revoke",
            "client_id": "3MVG9 consumer key",
            "client_secret": "secret",
            "scope": "api refresh_token",
            "use_pkce": True,
            "max_in_flight": 7,
            "long_request_limit": 5,
        },
        {
            "name": "汎用 CRM",
            "provider": "generic",
            "grant_type": "client_credentials",
            "token_url": f"{CRM}/oauth/token",
            "authorize_url": f"{CRM}/oauth/authorize",
            "base_url": f"{CRM}/api",
            "client_id": "generic-client",
            "client_secret": "s3cret",
            "scope": "read write",
            "max_in_flight": 1,
            "long_request_limit": 0,
        },
        {
            "name": "パスワード",
            "provider": "salesforce",
            "grant_type": "password",
            "client_id": "pw-client",
            "client_secret": "pw-secret",
            "username": "integration@example.com",
            "password": "p@ss word",
        },
        {
            "name": "JWT",
            "provider": "salesforce",
            "grant_type": "jwt_bearer",
            "client_id": "jwt-client",
            "username": "jwt@example.com",
            "private_key": rsa_key_and_certificate()[0],
        },
    ]


def _rules(account_id: int) -> list[dict[str, Any]]:
    return [
        {
            "event": "answer",
            "order": 3,
            "enabled": False,
            "url": CRM + "/cases?tel={TEL}&name={TELNAME}",
            "method": "POST",
            "headers": HEADERS,
            "body": BODY,
            "auth_type": "basic",
            "basic_username": "ユーザー ",
            "basic_password": "パスワード",
            "condition_code": "{TEL}",
            "condition_pattern": "/^0\\d{9,10}$/",
            "timeout_seconds": 25,
            "extract_pattern": '/"id":"(?P<CASE_ID>[^"]*)"/',
            "retry_non_idempotent": True,
            "stop_on_failure": True,
            "memo": MEMO,
        },
        {
            "event": "answer",
            "order": 1,
            "url": CRM + "/contact?tel={TEL}",
            "auth_type": "bearer",
            "bearer_token": "tok",
            "extract_pattern": "CONTACT_ID = $.id\r\nOWNER = $.owner.name",
            "json_extractions": "NAME = $.name\r\nPHONE = $.phones[0]",
            "memo": "末尾に空白 ",
        },
        {
            "event": "disconnect",
            "order": 2,
            "url": CRM + "/log",
            "method": "PUT",
            "auth_type": "oauth",
            "oauth_account_id": account_id,
            "body": "tel={TEL}\n",
        },
        {"event": "incoming", "url": CRM + "/plain", "memo": "\n先頭の改行\n"},
    ]


def _ivrs(account_id: int) -> list[dict[str, Any]]:
    return [
        {
            "key": "main-ivr",
            "name": "受付 IVR ",
            "url": CRM + "/lookup?tel={TEL}",
            "method": "POST",
            "headers": HEADERS,
            "body": BODY,
            "auth_type": "bearer",
            "bearer_token": "ivr-token",
            "timeout_seconds": 2.5,
            "extract_pattern": '/"owner":"(?P<OWNER>[^"]*)"/',
            "max_digits": 4,
            "digits_pattern": "/^\\d{4}$/",
            "pre_guidance": {"type": "tts", "text": "ようこそ。{TEL} 様\r\nご用件をどうぞ。"},
            "on_error": {
                "guidance": {"type": "audio", "file": "error 音声.wav"},
                "transfer": {"kind": "extension", "target": "200"},
            },
            "on_input_invalid": {"transfer": {"kind": "hangup"}},
            "on_no_match": {
                "guidance": {"type": "tts", "text": "担当者におつなぎします。"},
                "transfer": {"kind": "ivr", "target": "other"},
            },
            "pbx_variables": ["BRANCH", "AREA_CODE"],
            "memo": MEMO,
            "responses": [
                {
                    "priority": 5,
                    "response_code": "2xx",
                    "response_pattern": '/"found":true/',
                    "extract_pattern": "/(?P<CODE1>\\d+)/",
                    "condition_code": "{RESPONSE_OWNER}",
                    "condition_pattern": "/./",
                    "step": "owner",
                    "guidance": {"type": "tts", "text": "{RESPONSE_OWNER} におつなぎします。"},
                    "transfer": {"kind": "callcenter", "target": "{RESPONSE_OWNER}"},
                    "memo": "優先 \r\n",
                },
                {
                    "priority": 20,
                    "response_code": "*",
                    "guidance": {"type": "audio", "file": "busy.wav"},
                    "transfer": {"kind": "external", "target": "0312345678"},
                },
                {"priority": 30, "response_code": "404", "transfer": {"kind": "end_rule"}},
            ],
            "steps": [
                {
                    "name": "owner",
                    "url": CRM + "/owner?tel={TEL}",
                    "method": "POST",
                    "headers": "X-Step: {TEL}\r\nX-Other: 2",
                    "body": BODY,
                    "auth_type": "oauth",
                    "oauth_account_id": account_id,
                    "extract_pattern": "OWNER_EXT = $.ext",
                    "condition_code": "{DIGITS}",
                    "condition_pattern": "/^1/",
                },
                {
                    "name": "contact",
                    "url": CRM + "/contact?tel={TEL}",
                    "auth_type": "none",
                },
                {"name": "audit", "url": CRM + "/audit"},
            ],
        },
        {"key": "plain", "url": CRM + "/plain", "memo": "一行目\n二行目\n"},
    ]


def _links(account_id: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "サポート窓口 {TEL}",
            "oauth_account_id": account_id,
            "fallback_record": "0012v000032fR15AAE",
            "api_consent": True,
            "memo": "メモ：{TEL}\r\n次の行 ",
            "on_multiple": "all",
            "on_no_match": "skip",
            "activity": "case_and_task",
            "status": "paused",
            "objects": [
                {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 1},
                {"api_name": "Custom__c", "tab_name": "独自", "key_prefix": "a01", "priority": 2},
                {"api_name": "Contact", "tab_name": "", "key_prefix": "003", "priority": 3},
            ],
            "phone_numbers": ["0312345679", "0312345678", "+81-3-1234-5670"],
            "search_retries": 0,
            "retry_minutes": 0.05,
            "language": "en",
            "subject_template": "{DIRECTION_LABEL} {TEL} 様 MD5({TEL}) {{TEL}}",
            "field_mappings": [
                {
                    "field": "Description",
                    "template": "{TEL}\r\n{TELNAME} ",
                    "default": "既定",
                    "conditions": [
                        {"variable": "RESPONSE_B", "equals": "1", "value": "一"},
                        {"variable": "RESPONSE_A", "equals": "", "value": "{TEL}"},
                    ],
                },
                {"field": "Custom_Id__c", "template": "{ID}"},
            ],
            "owner_from_agent": True,
        },
        {
            "name": "既定",
            "oauth_account_id": account_id,
            "fallback_record": "0012v000032fR15AAE",
            "memo": "一\n二",
            "retry_minutes": 12.5,
        },
    ]


def _screen_pops(account_id: int) -> list[dict[str, Any]]:
    access = {"method": "server_post", "url": CRM + "/a?tel={TEL}", "headers": HEADERS}
    return [
        {
            "name": "受付 <pop>",
            "enabled": False,
            "trigger": "answer",
            "phone_numbers": ["0312345679", "0312345678"],
            "answer_delay_seconds": 3,
            "skip_internal": False,
            "display_seconds": 45,
            "copy_number": True,
            "anonymous_label": "非通知（匿名）",
            "strip_prefixes": ["0081", "+81"],
            "wrapup_reasons": ["折り返し", "解決", "エスカレーション"],
            "lookup": {
                "kind": "salesforce",
                "oauth_account_id": account_id,
                "objects": [
                    {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 1},
                    {"api_name": "Contact", "tab_name": "", "key_prefix": "003", "priority": 2},
                ],
                "timeout_seconds": 2.5,
                "card_wait_seconds": 0,
            },
        },
        {
            "name": "カスタム",
            "lookup": {
                "kind": "custom",
                "auth_type": "basic",
                "basic_username": "crm user",
                "basic_password": "crm pass",
                "timeout_seconds": 12,
                "card_wait_seconds": 0.5,
                "accesses": {
                    "auth": {
                        **access,
                        "body": "user=a&pass=b\r\n",
                        "response_format": "TOKEN = $.token",
                        "session_minutes": 90,
                    },
                    "search": {
                        "method": "server_get",
                        "url": CRM + "/search?tel={TEL}",
                        "response_format": "NAME = $.name\r\nEXT_ID = $.id",
                    },
                    "incoming": {"method": "browser_get", "url": CRM + "/?q={TEL}"},
                    "answer": {
                        "method": "browser_post",
                        "url": CRM + "/answer",
                        "body": "tel={TEL}\nname={TELNAME}",
                    },
                    "disconnect": {**access, "body": BODY, "answered_only": True},
                    "click": {"method": "browser_get", "url": CRM + "/click/{EXT_ID}"},
                },
            },
        },
        {"name": "既定"},
    ]


USER = {
    "username": "suzuki",
    "password": "correct horse",
    "role": "supervisor",
    "agent_id": "1001",
    "display_name": "鈴木 一郎",
    "language": "en",
    "salesforce_user_id": "005000000000001AAA",
    "extension": "2001",
}
SETTINGS = {
    "playback_auth": "signed",
    "retention_days": 400,
    "public_url": "https://cb.example.com/base/",
    "timezone": "America/New_York",
    "max_recording_mb": 77,
}


@dataclass
class Edit:
    """An edit page and the API address that reads what it edits."""

    page: str
    api: str
    label: str


def _create(client: TestClient, admin: dict[str, str]) -> list[Edit]:
    def post(path: str, body: Any) -> Any:
        response = client.post(path, json=body, headers=admin)
        assert response.status_code == 201, (path, response.text)
        return response.json()

    edits: list[Edit] = []
    accounts = [post("/api/v1/oauth-accounts", body) for body in _accounts()]
    for account in accounts:
        edits.append(
            Edit(
                f"/oauth-accounts/{account['id']}",
                f"/api/v1/oauth-accounts/{account['id']}",
                account["name"],
            )
        )
    generic = accounts[1]["id"]
    salesforce = accounts[0]["id"]
    for body in _rules(generic):
        rule = post("/api/v1/call-actions", body)
        edits.append(
            Edit(f"/call-actions/{rule['id']}", f"/api/v1/call-actions/{rule['id']}", rule["url"])
        )
    for body in _ivrs(generic):
        ivr = post("/api/v1/ivrs", body)
        api = f"/api/v1/ivrs/{ivr['key']}"
        edits.append(Edit(f"/ivrs/{ivr['id']}", api, ivr["key"]))
        for kind in ("responses", "steps"):
            for item in ivr[kind]:
                edits.append(
                    Edit(f"/ivrs/{ivr['id']}/{kind}/{item['id']}", api, f"{ivr['key']} {kind}")
                )
    for body in _links(salesforce):
        link = post("/api/v1/history-links", body)
        edits.append(
            Edit(
                f"/history-links/{link['id']}", f"/api/v1/history-links/{link['id']}", link["name"]
            )
        )
    for body in _screen_pops(salesforce):
        profile = post("/api/v1/screen-pops", body)
        edits.append(
            Edit(
                f"/screen-pops/{profile['id']}",
                f"/api/v1/screen-pops/{profile['id']}",
                profile["name"],
            )
        )
    user = post("/api/v1/users", USER)
    inactive = post("/api/v1/users", {"username": "sato", "password": "correct horse"})
    patched = client.patch(
        f"/api/v1/users/{inactive['id']}", json={"is_active": False}, headers=admin
    )
    assert patched.status_code == 200, patched.text
    for made in (user, inactive):
        edits.append(
            Edit(f"/users/{made['id']}/edit", f"/api/v1/users/{made['id']}", made["username"])
        )
    patched = client.patch("/api/v1/settings", json=SETTINGS, headers=admin)
    assert patched.status_code == 200, patched.text
    edits.append(Edit("/settings", "/api/v1/settings", "system settings"))
    return edits


def _save_unchanged(client: TestClient, edit: Edit) -> str | None:
    """Open the page and press Save; what went wrong, if the save did not go through."""
    page = client.get(edit.page, headers=HTML)
    if page.status_code != 200:
        return f"GET {edit.page}: {page.status_code}"
    fields = browser_form(page.text, edit.page)
    saved = client.post(
        edit.page,
        content=urlencode(fields),
        headers={**HTML, "Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    said = re.findall(r'<div class="(?:error|banner error)"[^>]*>(.*?)</div>', saved.text, re.S)
    said = [" ".join(re.sub(r"<[^>]+>", " ", text).split()) for text in said]
    if saved.status_code == 200 and not said:
        return None  # the page shown saved
    if saved.status_code not in (302, 303):
        return f"POST {edit.page}: {saved.status_code} {said[:5]}"
    followed = client.get(saved.headers["location"], headers=HTML)
    if followed.status_code != 200:
        return f"GET {saved.headers['location']} after saving: {followed.status_code}"
    return None


def test_saving_an_edit_page_unchanged_changes_nothing(served: TestClient) -> None:
    admin, _ = bearer_headers(served)
    edits = _create(served, admin)
    sign_in(served)
    found: list[str] = []
    for edit in edits:
        before = served.get(edit.api, headers=admin)
        assert before.status_code == 200, before.text
        rules_before = served.get("/api/v1/call-actions", headers=admin).json()
        problem = _save_unchanged(served, edit)
        if problem:
            found.append(f"{edit.page} ({edit.label}): {problem}")
            continue
        after = served.get(edit.api, headers=admin).json()
        for difference in differences(before.json(), after):
            found.append(f"{edit.page} ({edit.label}) {difference}")
        rules_after = served.get("/api/v1/call-actions", headers=admin).json()
        order = [[r["id"], r["event"], r["order"]] for r in rules_before["items"]]
        if order != [[r["id"], r["event"], r["order"]] for r in rules_after["items"]]:
            found.append(f"{edit.page} reordered the call-action rules")
    pages = {re.sub(r"\d+", "{id}", e.page) for e in edits}
    print(f"edit round trip: {len(edits)} saves on {len(pages)} pages")
    assert not found, f"{len(found)} changes by saving unchanged:\n" + "\n".join(found)


def test_the_form_is_read_as_a_browser_reads_it() -> None:
    page = (
        '<form method="post" action="/other"><input name="x" value="no"></form>'
        '<form method="post">'
        '<input type="hidden" name="csrf_token" value="t">'
        '<input name="name" value="a &amp; b ">'
        '<input type="checkbox" name="on" value="1" checked>'
        '<input type="checkbox" name="off" value="1">'
        '<input name="gone" value="x" disabled>'
        '<select name="s"><option value="a">A</option>'
        '<option value="b" selected>B</option></select>'
        '<select name="first"><option>Any  one</option><option value="z">Z</option></select>'
        '<textarea name="t">\n{TEL}\r\n&lt;b&gt;&#13;\nend\n</textarea>'
        '<button type="submit" name="go" value="save">Save</button>'
        "</form>"
    )
    assert browser_form(page, "/edit") == [
        ("csrf_token", "t"),
        ("name", "a & b "),
        ("on", "1"),
        ("s", "b"),
        ("first", "Any one"),
        ("t", "{TEL}\r\n<b>\r\nend\r\n"),
        ("go", "save"),
    ]


def test_a_text_differing_only_in_line_breaks_keeps_the_saved_one() -> None:
    stored = {"body": "a\nb\n", "memo": "x\r\ny", "items": [{"t": "1\n2"}], "n": "keep"}
    sent = {"body": "a\r\nb\r\n", "memo": "x\r\ny", "items": [{"t": "1\r\n2"}], "n": "new\r\n"}
    assert keep_line_endings(sent, stored) == {
        "body": "a\nb\n",
        "memo": "x\r\ny",
        "items": [{"t": "1\n2"}],
        "n": "new\r\n",
    }
