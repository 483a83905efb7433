"""The call-action pages in Chromium, against a live server and the sandbox Salesforce:
an administrator signs in through the sign-in form, creates the manual's example 1 in the
form, meets a template error next to its field, adds and reorders a second rule, sends
example 1 from the test panel, and follows a simulated call to its timeline."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from callbridge.sandbox import (
    SandboxHandle,
    demo_account_fields,
)
from callbridge.settings import Settings
from tests.call_actions.conftest import EXAMPLE_1, make_tokens
from tests.helpers import bearer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "correct horse"
TEL = "07075373713"
CALL_ID = "browser-call-1"
SECOND_MEMO = "API の上限を確認"
MISSPELT_URL = "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobjects/Contact/{TELNAM}"


def _prepare(settings: Settings, base_url: str, sandbox: SandboxHandle) -> httpx.Client:
    """An administrator to sign in as, and a Salesforce OAuth account connected to the
    sandbox (as the ``connected`` fixture does); returns an admin-token API client."""
    # Playwright's sync API owns this thread's event loop: use a thread of its own.
    with ThreadPoolExecutor(1) as executor:
        admin_token, _pbx = executor.submit(asyncio.run, make_tokens(settings)).result()
    api = httpx.Client(base_url=base_url, headers=bearer(admin_token), timeout=30)
    user = api.post(
        "/api/v1/users", json={"username": "admin", "password": PASSWORD, "role": "admin"}
    )
    assert user.status_code == 201, user.text
    account = api.post(
        "/api/v1/oauth-accounts",
        json=demo_account_fields(sandbox.login_url, "Sandbox"),
    )
    assert account.status_code == 201, account.text
    connect = api.post(f"/api/v1/oauth-accounts/{account.json()['id']}/connect")
    assert connect.status_code == 200 and connect.json()["status"] == "connected", connect.text
    return api


def _rules(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/api/v1/call-actions")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _fill_rule(page: Page, *, url: str, extract_pattern: str = "", memo: str = "") -> None:
    """The fields of an OAuth GET rule, typed into the open form."""
    page.select_option("#f-auth_type", "oauth")
    page.select_option("#f-oauth_account_id", label="Sandbox")
    page.fill("#f-url", url)
    page.select_option("#f-method", "GET")
    page.fill("#f-extract_pattern", extract_pattern)
    page.fill("#f-memo", memo)


def test_call_actions_in_chromium(
    settings: Settings, live_server, browser, sandbox: SandboxHandle
) -> None:
    base = live_server.base_url
    api = _prepare(settings, base, sandbox)
    contact_id = next(
        record["Id"]
        for record in sandbox.state.records["Contact"].values()
        if record.get("Phone") == TEL
    )
    page = browser.new_page(locale="en-US")
    try:
        # Signed in through the real form, back where we wanted to go.
        page.goto(f"{base}/call-actions")
        expect(page).to_have_url(f"{base}/login?next=%2Fcall-actions")
        page.fill("#f-username", "admin")
        page.fill("#f-password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{base}/call-actions")

        # Example 1 of the manual, pasted verbatim into the form.
        page.get_by_role("link", name="New call action").click()
        expect(page).to_have_url(f"{base}/call-actions/new")
        page.select_option("#f-event", "queue")
        _fill_rule(
            page,
            url=EXAMPLE_1["url"],
            extract_pattern=EXAMPLE_1["extract_pattern"],
            memo=EXAMPLE_1["memo"],
        )
        page.get_by_role("button", name="Save").click()
        expect(page).to_have_url(re.compile(r"/call-actions/\d+\?saved=1&warnings=1$"))
        expect(page.locator(".banner.success")).to_contain_text("Saved.")
        # The query's spaces are encoded, and the greedy capture is pointed out, next to
        # their fields.
        expect(page.locator("#f-url ~ .warn-note")).not_to_have_count(0)
        expect(page.locator("#f-extract_pattern ~ .warn-note")).not_to_have_count(0)
        [first] = _rules(api)
        assert (
            first["event"] == "queue" and first["extract_pattern"] == '/"Id":"(?P<CONTACT_ID>.*)",/'
        )

        page.get_by_role("link", name="All call actions").click()
        queue = page.locator("#event-queue")
        expect(queue.locator("tbody tr")).to_have_count(1)
        expect(queue.locator("tbody tr")).to_contain_text(EXAMPLE_1["memo"])
        expect(queue.locator("tbody tr .badge").first).to_have_text("{RESPONSE_CONTACT_ID}")
        expect(page.locator("#event-disconnect")).to_contain_text("No rules for this event.")

        # A misspelt variable: the error sits next to the URL field, nothing is stored.
        queue.get_by_role("link", name="Add a rule").click()
        expect(page.locator("#f-event")).to_have_value("queue")
        _fill_rule(page, url=MISSPELT_URL)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".banner.error[role=alert]")).to_contain_text("The rule was not saved")
        expect(page.locator("#f-url")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#e-url")).to_contain_text("{TELNAM}")
        expect(page.locator("#e-url")).to_contain_text("{TELNAME}")
        expect(page.locator("#e-url .pos")).to_have_text(
            f"(position {MISSPELT_URL.index('{TELNAM}')})"
        )
        expect(page.locator("#f-url")).to_have_value(MISSPELT_URL)
        assert [rule["id"] for rule in _rules(api)] == [first["id"]]

        # Corrected into a second rule of the same event: it runs after example 1.
        page.fill("#f-url", "{OAUTH_INSTANCE_URL}/services/data/v45.0/limits")
        page.fill("#f-memo", SECOND_MEMO)
        page.get_by_role("button", name="Save").click()
        expect(page).to_have_url(re.compile(r"/call-actions/\d+\?saved=1$"))
        second_id = int(page.url.split("/call-actions/")[1].split("?")[0])

        # Reordered in the list: the second rule moves up, and stays there.
        page.goto(f"{base}/call-actions")
        rows = page.locator("#event-queue tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text(EXAMPLE_1["memo"])
        expect(rows.nth(1)).to_contain_text(SECOND_MEMO)
        rows.nth(1).get_by_title("Move up").click()
        expect(rows.nth(0)).to_contain_text(SECOND_MEMO)
        expect(rows.nth(1)).to_contain_text(EXAMPLE_1["memo"])
        page.reload()
        expect(rows.nth(0)).to_contain_text(SECOND_MEMO)
        expect(rows.nth(1)).to_contain_text(EXAMPLE_1["memo"])
        expect(rows.nth(0).get_by_title("Move up")).to_be_disabled()
        expect(rows.nth(1).get_by_title("Move down")).to_be_disabled()
        assert [rule["id"] for rule in _rules(api) if rule["event"] == "queue"] == [
            second_id,
            first["id"],
        ]

        # The test panel sends example 1 to the sandbox: status and extracted variable.
        rows.nth(1).get_by_role("link", name="Edit / test").click()
        expect(page).to_have_url(f"{base}/call-actions/{first['id']}")
        panel = page.locator("#test-panel")
        panel.locator("#t-TEL").fill(TEL)
        panel.get_by_role("button", name="Send it").click()
        result = page.locator("#test-result")
        expect(result.locator("h3")).to_have_text(["Request", "Response", "Extracted variables"])
        expect(result.locator("pre.wire").nth(1)).to_have_text(re.compile(r"^\s*200\s"))
        expect(result.locator("dl.facts dt")).to_have_text(["{RESPONSE_CONTACT_ID}"])
        expect(result.locator("dl.facts dd")).to_have_text([contact_id])
        assert api.get(f"/api/v1/calls/{CALL_ID}").status_code == 404  # no call stored

        # The simulator sends a call's events; its timeline shows both rules, in order.
        page.goto(f"{base}/calls")
        page.get_by_role("link", name="Call simulator").click()
        expect(page).to_have_url(f"{base}/simulator")
        page.fill("#s-call_id", CALL_ID)
        page.fill("#s-tel", TEL)
        banner = page.locator(".banner.success")
        for event in ("incoming", "queue", "answer", "disconnect"):
            page.get_by_role("button", name=f"Send {event}").click()
            expect(banner).to_contain_text(f"Sent {event}.")
            expect(page.locator("#s-call_id")).to_have_value(CALL_ID)
        banner.get_by_role("link", name="Open the call").click()
        expect(page).to_have_url(f"{base}/calls/{CALL_ID}")
        timeline = page.locator("#timeline")
        expect(timeline.locator("ul.timeline > li > div > strong")).to_have_text(
            ["incoming", "queue", "answer", "disconnect"]
        )
        executions = timeline.locator("details.exec")
        expect(executions).to_have_count(2)
        expect(executions.nth(0).locator("summary")).to_contain_text("/services/data/v45.0/limits")
        expect(executions.nth(1).locator("summary")).to_contain_text(
            f"RESPONSE_CONTACT_ID={contact_id}"
        )
        expect(executions.nth(1).locator("summary .badge.ok")).to_have_text("200")
        expect(executions.nth(1).locator("summary a")).to_have_attribute(
            "href", f"/call-actions/{first['id']}"
        )
        expect(timeline.locator("dl.kv")).to_contain_text(contact_id)
    finally:
        page.close()
        api.close()
