"""The Open CTI softphone inside a cross-site iframe, in Chromium: the page Salesforce
would show is stood in for by a parent page served from another loopback address
(127.0.0.2, a different site from callbridge's 127.0.0.1), so the browser does not send
callbridge's SameSite=Lax session cookie to the softphone, as inside Salesforce. The
agent gets a pairing code on /agent, types it into the softphone, and a ringing call pops
through ``sforce.opencti.screenPop`` with the record id."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Frame, Page, Request, expect

from callbridge.agent_desktop import router
from callbridge.sandbox import SandboxHandle
from callbridge.settings import Settings
from tests.agent_desktop.test_console_browser import _prepare, _ring, _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ORIGIN = "https://example.my.salesforce.com"
# Salesforce's own Open CTI script cannot be loaded offline: its address answers a
# STAND-IN that defines ``sforce.opencti`` and records every ``screenPop`` the page asks for.
STAND_IN_OPENCTI = """
window.screenPops = [];
window.sforce = {opencti: {
  SCREENPOP_TYPE: {SOBJECT: "sobject", NEW_RECORD_MODAL: "newRecordModal"},
  screenPop: function (args) { window.screenPops.push(args); }
}};
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """callbridge lets only Salesforce's domains frame the softphone: the stand-in parent
    site on 127.0.0.2 is allowed with CALLBRIDGE_SOFTPHONE_FRAME_ANCESTORS, as an admin
    would allow another origin (without it, Chromium refuses to show the softphone)."""
    return Settings(**{**settings.model_dump(), "softphone_frame_ancestors": "http://127.0.0.2:*"})


@contextmanager
def parent_site(softphone_url: str) -> Iterator[str]:
    """A page on http://127.0.0.2 holding the softphone in an iframe, as Salesforce's
    utility bar holds it."""
    body = (
        "<!doctype html><title>Salesforce (stand-in)</title>"
        f'<iframe id="softphone" src="{html.escape(softphone_url)}" width="400" height="600">'
        "</iframe>"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/lightning/page/home"
    finally:
        server.shutdown()
        server.server_close()


def _softphone(page: Page, base: str) -> Frame:
    """The iframe's document (``goto``/``reload`` wait for the iframes' load too)."""
    frame = page.frame(url=lambda url: url.startswith(f"{base}/agent/opencti"))
    assert frame is not None
    return frame


def test_the_softphone_signs_in_with_a_code_inside_a_cross_site_iframe(
    settings: Settings,
    live_server,
    browser: Browser,
    sandbox: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = live_server.base_url
    api, pbx = _prepare(settings, base, sandbox)
    console = _sign_in(browser, base, "sato")
    context = console.context
    context.route(
        f"{ORIGIN}/support/api/59.0/lightning/opencti_min.js",
        lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=STAND_IN_OPENCTI
        ),
    )
    softphone_requests: list[Request] = []
    context.on(
        "request",
        lambda r: softphone_requests.append(r) if "/agent/opencti" in r.url else None,
    )

    console.get_by_role("button", name="Connect Salesforce softphone").click()
    code = console.locator("#softphone-pairing-code").inner_text()
    expect(console.locator("#softphone-code-expiry")).to_contain_text(
        "Enter it in the softphone within 5 minutes"
    )

    softphone_url = f"{base}/agent/opencti?mode=Lightning&sfdcIframeOrigin={quote(ORIGIN, safe='')}"
    with parent_site(softphone_url) as salesforce:
        page = context.new_page()
        page.goto(salesforce)
        frame = _softphone(page, base)
        # The context holds the agent's session cookie for 127.0.0.1, yet the iframe's
        # request went without it: the browser treats the parent as another site.
        assert "cb_session" not in (softphone_requests[-1].header_value("cookie") or "")
        signin = frame.locator("#softphone-signin")
        expect(signin).to_be_visible()
        expect(signin).to_contain_text("click “Connect Salesforce softphone”")
        expect(frame.locator("#agent-opencti-note")).to_contain_text(
            "retires Open CTI on 2028-02-28"
        )

        frame.locator("#softphone-code-input").fill("WRONG-CODE0")
        frame.get_by_role("button", name="Connect", exact=True).click()
        expect(frame.locator("#softphone-pair-error")).to_have_text(
            "This code is unknown, expired or already used: get a new code on the agent "
            "console (/agent)."
        )
        frame.locator("#softphone-code-input").fill(code)
        frame.get_by_role("button", name="Connect", exact=True).click()
        expect(frame.locator("#agent-console[data-connected='1']")).to_have_count(1)
        expect(frame.locator("#softphone-user")).to_have_text("Signed in as sato.")
        expect(frame.locator("#agent-line")).to_have_text(
            "Calls ringing at extension 201 appear here."
        )
        # This Chromium blocks third-party storage (as private windows and stricter settings
        # do): localStorage is denied inside the iframe, the token is kept in memory, and
        # the page says a reload will ask for a new code.
        assert (
            frame.evaluate(
                "(() => { try { localStorage.length; return 'allowed'; }"
                " catch (e) { return 'denied'; } })()"
            )
            == "denied"
        )
        expect(frame.locator("#softphone-no-storage")).to_be_visible()

        contact_id = next(
            c["Id"] for c in sandbox.state.records["Contact"].values() if c["LastName"] == "鈴木"
        )
        _ring(base, pbx, "sp-1", "03-1234-5678", "201")
        expect(frame.locator(".call-card[data-call-id='sp-1'] .pop-match")).to_have_text(
            "鈴木 一郎 (Contact)"
        )
        frame.wait_for_function("window.screenPops.length === 1")
        assert frame.evaluate("window.screenPops") == [
            {"type": "sobject", "params": {"recordId": contact_id}}
        ]
        # Notes from the card, sent with the softphone's token.
        card = frame.locator(".call-card[data-call-id='sp-1']")
        card.locator("textarea[name=notes]").fill("Salesforce から")
        card.locator("button[type=submit]").click()
        expect(card.locator(".pop-notes-result")).to_have_text("Saved.")
        assert api.get("/api/v1/calls/sp-1").json()["variables"]["NOTES"] == "Salesforce から"

        # The administrator revokes it: the stream ends and the softphone asks for a code.
        monkeypatch.setattr(router, "HEARTBEAT_SECONDS", 0.2)
        # A call wakes the stream, whose next wait is then the short heartbeat.
        _ring(base, pbx, "sp-2", "0120-999-999", "201")
        frame.wait_for_function("window.screenPops.length === 2")
        assert frame.evaluate("window.screenPops[1].type") == "newRecordModal"
        user_id = next(
            u["id"] for u in api.get("/api/v1/users").json()["items"] if u["username"] == "sato"
        )
        assert api.delete(f"/api/v1/users/{user_id}/softphone-tokens").json() == {"revoked": 1}
        expect(frame.locator("#softphone-pair-error")).to_have_text(
            "The softphone was signed out (expired or revoked): enter a new code from the "
            "agent console (/agent)."
        )
        expect(signin).to_be_visible()

        # A new code; then the softphone's own sign-out button revokes its token.
        console.get_by_role("button", name="Connect Salesforce softphone").click()
        expect(console.locator("#softphone-pairing-code")).not_to_have_text(code)
        frame.locator("#softphone-code-input").fill(
            console.locator("#softphone-pairing-code").inner_text()
        )
        frame.get_by_role("button", name="Connect", exact=True).click()
        expect(frame.locator("#agent-console[data-connected='1']")).to_have_count(1)
        with page.expect_response(lambda r: r.request.method == "DELETE") as signed_out:
            frame.get_by_role("button", name="Sign out").click()
        assert signed_out.value.status == 204
        expect(frame.locator("#softphone-pair-error")).to_have_text("Signed out.")
        token = signed_out.value.request.header_value("authorization")
        assert token and token.startswith("Bearer ")
        refused = httpx.get(f"{base}/api/v1/agent/events", headers={"Authorization": token})
        assert refused.status_code == 401

        # Reloaded, the cross-site softphone asks for a code again (nothing was stored).
        page.reload()
        expect(_softphone(page, base).locator("#softphone-signin")).to_be_visible()


def test_the_softphone_keeps_its_token_where_storage_is_allowed(
    settings: Settings, live_server, browser: Browser, sandbox: SandboxHandle
) -> None:
    """Where the browser allows callbridge's storage (here: the softphone page opened on
    callbridge's own site), the token survives a reload and signs in without a code."""
    base = live_server.base_url
    _prepare(settings, base, sandbox)
    console = _sign_in(browser, base, "sato")
    console.get_by_role("button", name="Connect Salesforce softphone").click()
    code = console.locator("#softphone-pairing-code").inner_text()
    page = console.context.new_page()
    page.goto(f"{base}/agent/opencti")
    page.locator("#softphone-code-input").fill(code)
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("#agent-console[data-connected='1']")).to_have_count(1)
    expect(page.locator("#softphone-no-storage")).to_be_hidden()
    stored = page.evaluate("JSON.parse(localStorage.getItem('callbridge.softphone'))")
    assert stored["username"] == "sato" and stored["extension"] == "201"
    page.reload()
    expect(page.locator("#agent-console[data-connected='1']")).to_have_count(1)
    expect(page.locator("#softphone-signin")).to_be_hidden()
    expect(page.locator("#softphone-user")).to_have_text("Signed in as sato.")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#softphone-signin")).to_be_visible()
    assert page.evaluate("localStorage.getItem('callbridge.softphone')") is None
