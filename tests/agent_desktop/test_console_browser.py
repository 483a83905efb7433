"""The agent console in Chromium, against a live server and the sandbox Salesforce: two
agents signed in through the sign-in form; only the rung agent's console shows the card
and opens the record in a tab; no match opens the new-record form with the number; the
agent saves notes and a wrap-up reason on the card."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from callbridge.sandbox import SandboxHandle, demo_account_fields
from callbridge.settings import Settings
from tests.call_actions.conftest import make_tokens
from tests.helpers import bearer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "correct horse"


def _prepare(settings: Settings, base_url: str, sandbox: SandboxHandle) -> tuple[httpx.Client, str]:
    with ThreadPoolExecutor(1) as executor:
        admin_token, pbx_token = executor.submit(asyncio.run, make_tokens(settings)).result()
    api = httpx.Client(base_url=base_url, headers=bearer(admin_token), timeout=30)
    for username, extension in (("sato", "201"), ("kato", "202")):
        user = api.post(
            "/api/v1/users",
            json={"username": username, "password": PASSWORD, "extension": extension},
        )
        assert user.status_code == 201, user.text
    account = api.post("/api/v1/oauth-accounts", json=demo_account_fields(sandbox.login_url, "SB"))
    assert account.status_code == 201, account.text
    connect = api.post(f"/api/v1/oauth-accounts/{account.json()['id']}/connect")
    assert connect.json()["status"] == "connected", connect.text
    profile = api.post(
        "/api/v1/screen-pops",
        json={
            "name": "受付",
            "wrapup_reasons": ["注文", "問い合わせ"],
            "lookup": {"kind": "salesforce", "oauth_account_id": account.json()["id"]},
        },
    )
    assert profile.status_code == 201, profile.text
    return api, pbx_token


def _sign_in(browser: Browser, base: str, username: str) -> Page:
    page = browser.new_context(locale="en-US").new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/agent")
    # The stream is open (EventSource's "open"): events from now on reach the page.
    expect(page.locator("#agent-console[data-connected='1']")).to_have_count(1)
    return page


def _ring(base: str, pbx: str, call_id: str, tel: str, extension: str) -> None:
    event = {"call_id": call_id, "event": "incoming", "tel": tel, "extension": extension}
    answer = httpx.post(
        f"{base}/api/v1/call-events?wait=true", json=event, headers=bearer(pbx), timeout=30
    )
    assert answer.status_code in (200, 202), answer.text


def test_the_rung_agent_pops_and_saves_notes(
    settings: Settings, live_server, browser: Browser, sandbox: SandboxHandle
) -> None:
    base = live_server.base_url
    api, pbx = _prepare(settings, base, sandbox)
    sato = _sign_in(browser, base, "sato")
    kato = _sign_in(browser, base, "kato")

    contact_id = next(
        c["Id"] for c in sandbox.state.records["Contact"].values() if c["LastName"] == "鈴木"
    )
    with sato.context.expect_page() as opened:
        _ring(base, pbx, "b-1", "03-1234-5678", "201")
    card = sato.locator(".call-card[data-call-id='b-1']")
    expect(card.locator(".pop-number")).to_have_text("03-1234-5678")
    expect(card.locator(".pop-match")).to_have_text("鈴木 一郎 (Contact)")
    expect(card.locator(".pop-open")).to_have_text("Open the record")
    tab = opened.value
    assert tab.url == f"{sandbox.base_url}/lightning/r/Contact/{contact_id}/view"
    # kato's console was not rung.
    expect(kato.locator("#agent-waiting")).to_have_text("Waiting for calls…")
    expect(kato.locator(".call-card")).to_have_count(0)

    card.locator("textarea[name=notes]").fill("折り返し希望")
    card.locator("select[name=wrapup]").select_option("注文")
    card.locator("button[type=submit]").click()
    expect(card.locator(".pop-notes-result")).to_have_text("Saved.")
    call = api.get("/api/v1/calls/b-1").json()
    assert call["variables"]["NOTES"] == "折り返し希望"
    assert call["variables"]["WRAPUP"] == "注文"

    with kato.context.expect_page() as opened:
        _ring(base, pbx, "b-2", "0120-999-999", "202")
    expect(kato.locator(".call-card[data-call-id='b-2'] .pop-open")).to_have_text(
        "New record with this number"
    )
    assert opened.value.url == (
        f"{sandbox.base_url}/lightning/o/Contact/new?defaultFieldValues="
        + quote("Phone=0120-999-999", safe="")
    )


# Chromium in a test does not block pop-ups and shows no desktop notifications on a
# screen: the test blocks ``window.open`` while ``window.blockPopups`` is set (as the
# browser's pop-up blocker does for an open no click started) and records every
# Notification the page creates (the real one, with notifications permission granted), so
# it can click it the way the agent would: by calling its onclick.
POPUP_BLOCKER_AND_NOTIFICATION_SPY = """
window.blockPopups = false;
window.notifications = [];
const realOpen = window.open.bind(window);
window.open = function (url, name) { return window.blockPopups ? null : realOpen(url, name); };
const RealNotification = window.Notification;
function Spy(title, options) {
  const made = new RealNotification(title, options);
  window.notifications.push(made);
  return made;
}
Object.defineProperty(Spy, "permission", { get: () => RealNotification.permission });
Spy.requestPermission = (callback) => RealNotification.requestPermission(callback);
window.Notification = Spy;
"""


def test_a_blocked_pop_shows_a_desktop_notification(
    settings: Settings, live_server, browser: Browser, sandbox: SandboxHandle
) -> None:
    base = live_server.base_url
    _api, pbx = _prepare(settings, base, sandbox)
    # Without the permission: the console offers the button; the browser's answer shows.
    asking = _sign_in(browser, base, "kato")
    expect(asking.locator("#agent-notify-button")).to_be_visible()
    asking.locator("#agent-notify-button").click()
    expect(asking.locator("#agent-notify-state")).to_have_text(
        "The browser blocks notifications for this site: allow them in the site settings "
        "(the icon at the left of the address bar)."
    )

    context = browser.new_context(locale="en-US")
    context.grant_permissions(["notifications"], origin=base)
    context.add_init_script(POPUP_BLOCKER_AND_NOTIFICATION_SPY)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", "sato")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#agent-console[data-connected='1']")).to_have_count(1)
    expect(page.locator("#agent-notify-button")).to_be_hidden()
    expect(page.locator("#agent-notify-state")).to_have_text(
        "Desktop notifications are on: when the browser blocks the new tab, a notification "
        "opens the record."
    )
    page.evaluate("window.blockPopups = true")
    contact_id = next(
        c["Id"] for c in sandbox.state.records["Contact"].values() if c["LastName"] == "鈴木"
    )
    _ring(base, pbx, "nt-1", "03-1234-5678", "201")
    card = page.locator(".call-card[data-call-id='nt-1']")
    expect(card.locator(".pop-blocked")).to_be_visible()
    expect(card).to_have_attribute("data-notified", "1")
    assert page.evaluate("window.notifications.map(n => [n.title, n.body, n.tag])") == [
        ["Call from 03-1234-5678", "鈴木 一郎\nClick to open the record.", "nt-1"]
    ]
    assert len(context.pages) == 1  # nothing opened yet
    # The agent clicks the notification: the record opens in the named tab.
    page.evaluate("window.blockPopups = false")
    with context.expect_page() as opened:
        page.evaluate("window.notifications[0].onclick()")
    assert opened.value.url == f"{sandbox.base_url}/lightning/r/Contact/{contact_id}/view"
    expect(card.locator(".pop-blocked")).to_be_hidden()


def test_the_seed_002_google_search_opens_with_the_number(
    settings: Settings, live_server, browser: Browser, sandbox: SandboxHandle
) -> None:
    """seed 002 §4 verbatim: an incoming access HTTP GET (browser_get)
    https://www.google.com/search?q={TEL}. The test never reaches the internet: the
    named tab's request to Google is intercepted (Playwright routing) and recorded."""
    base = live_server.base_url
    with ThreadPoolExecutor(1) as executor:
        admin_token, pbx = executor.submit(asyncio.run, make_tokens(settings)).result()
    api = httpx.Client(base_url=base, headers=bearer(admin_token), timeout=30)
    user = api.post(
        "/api/v1/users", json={"username": "sato", "password": PASSWORD, "extension": "201"}
    )
    assert user.status_code == 201, user.text
    google = {"method": "browser_get", "url": "https://www.google.com/search?q={TEL}"}
    profile = api.post(
        "/api/v1/screen-pops",
        json={"name": "Google", "lookup": {"kind": "custom", "accesses": {"incoming": google}}},
    )
    assert profile.status_code == 201, profile.text
    page = _sign_in(browser, base, "sato")
    requested: list[str] = []

    def google_stand_in(route) -> None:  # type: ignore[no-untyped-def]
        requested.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<title>stand-in</title>")

    page.context.route("https://www.google.com/**", google_stand_in)
    with page.context.expect_page() as opened:
        _ring(base, pbx, "g-1", "0312345678", "201")
    card = page.locator(".call-card[data-call-id='g-1']")
    expect(card.locator(".pop-number")).to_have_text("0312345678")
    expect(card.locator(".pop-open")).to_have_text("Open the CRM page")
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == "https://www.google.com/search?q=0312345678"
    assert requested == ["https://www.google.com/search?q=0312345678"]
