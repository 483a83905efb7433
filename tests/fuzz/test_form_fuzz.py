"""Every admin form (every POST route of the UI), signed in as an admin, on SQLite and
PostgreSQL: with every field missing, each field missing in turn, and each field
oversized in turn (the other fields as the page offers them); no answer may be a 500.

The fields are the ones each page's form holds (read from the page itself); action
routes without a page of their own (delete, test, move...) get their fields empty and
oversized too. Deterministic: the same requests on every run.
"""

from __future__ import annotations

import html
import re
from typing import Any

from starlette.testclient import TestClient

from tests.fuzz.conftest import OUTBOUND, bearer_headers, csrf_field, seed, sign_in

OVERSIZED = "x" * 100_000
# Run last: they remove what the other forms edit, or end the session.
LAST = ("/delete", "/revoke", "/logout")
_FORM = re.compile(r"<form\b[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input\b([^>]*)>", re.I)
_TEXTAREA = re.compile(r"<textarea\b([^>]*)>(.*?)</textarea>", re.S | re.I)
_SELECT = re.compile(r"<select\b([^>]*)>(.*?)</select>", re.S | re.I)
_OPTION = re.compile(r"<option\b([^>]*)>", re.I)
_ATTR = re.compile(r'([a-zA-Z_:-]+)(?:="([^"]*)")?')


def _attrs(raw: str) -> dict[str, str]:
    return {name.lower(): html.unescape(value or "") for name, value in _ATTR.findall(raw)}


def form_fields(page: str, action: str) -> dict[str, str]:
    """The fields (with the values the page offers) of the form posting to ``action``."""
    fields: dict[str, str] = {}
    for match in _FORM.finditer(page):
        opening = page[match.start() : page.index(">", match.start()) + 1]
        target = _attrs(opening).get("action", "")
        if target and target.split("?")[0] != action:
            continue
        body = match.group(1)
        for raw in _INPUT.findall(body):
            attrs = _attrs(raw)
            if "name" not in attrs or attrs.get("type") in ("submit", "button", "file"):
                continue
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                continue
            fields.setdefault(attrs["name"], attrs.get("value", ""))
        for raw, text in _TEXTAREA.findall(body):
            if "name" in (attrs := _attrs(raw)):
                fields.setdefault(attrs["name"], html.unescape(text))
        for raw, options in _SELECT.findall(body):
            if "name" not in (attrs := _attrs(raw)):
                continue
            choices = [_attrs(o) for o in _OPTION.findall(options)]
            chosen = next((c for c in choices if "selected" in c), choices[0] if choices else {})
            fields.setdefault(attrs["name"], chosen.get("value", ""))
    return fields


def _post_routes(client: TestClient) -> list[str]:
    paths: list[str] = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        candidates = getattr(route, "effective_candidates", None)
        for candidate in (candidates() if callable(candidates) else candidates) or [route]:
            inner = getattr(candidate, "route", candidate)
            path = getattr(inner, "path", "")
            if "POST" in (getattr(inner, "methods", None) or ()) and path[:5] != "/api/":
                paths.append(path)
    order = {False: 1, True: 0}
    return sorted(
        dict.fromkeys(paths),
        key=lambda p: (p.endswith(LAST), order[p.endswith(OUTBOUND)]),
    )


def _concrete(path: str, seeds: dict[str, Any]) -> str:
    values = {
        "user_id": seeds["user_id"],
        "token_id": seeds["token_id"],
        "account_id": seeds["account_id"],
        "ivr_id": seeds["ivr_id"],
        "rule_id": seeds["rule_id"],
        "call_id": seeds["call_id"],
        "execution_id": seeds["execution_id"],
        "link_id": seeds["link_id"],
        "profile_id": seeds["profile_id"],
    }
    item = seeds["step_id"] if "/steps/" in path else seeds["response_id"]
    return path.format(item_id=item, **values)


def test_no_form_input_is_answered_500(served: TestClient) -> None:
    admin, pbx = bearer_headers(served)
    seeds = seed(served, admin, pbx)
    sign_in(served)
    failures: list[str] = []
    sent = 0
    for template in _post_routes(served):
        path = _concrete(template, seeds)
        page = served.get(path if not path.endswith(LAST) else "/", headers=HTML)
        offered = form_fields(page.text, path) if page.status_code == 200 else {}
        csrf = csrf_field(page.text) or csrf_field(served.get("/", headers=HTML).text)
        offered.pop("csrf_token", None)
        names = list(offered) or ["name", "value"]
        cases: list[dict[str, str]] = [{}]
        cases += [{k: v for k, v in offered.items() if k != name} for name in names]
        cases += [{**offered, name: OVERSIZED} for name in names]
        for fields in cases:
            response = served.post(
                path, data={**fields, **csrf}, headers=HTML, follow_redirects=False
            )
            sent += 1
            if response.status_code >= 500 and response.status_code not in (502, 503, 504):
                missing = sorted(set(offered) - set(fields))
                big = [k for k, v in fields.items() if v is OVERSIZED]
                failures.append(
                    f"POST {path} missing={missing} oversized={big}: {response.status_code}"
                )
    print(f"UI form fuzz: {sent} requests")
    assert not failures, f"{len(failures)} answers were 500:\n" + "\n".join(failures[:40])


HTML = {"Accept": "text/html"}
