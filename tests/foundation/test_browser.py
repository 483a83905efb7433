"""The new-user journey in a real browser: first-run setup, sign-in, create a PBX token."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.browser


def test_first_run_setup_and_token_in_chromium(
    live_server, browser, caplog: pytest.LogCaptureFixture
) -> None:
    # The server announced the one-time setup link in its log when it started.
    records = caplog.get_records("setup")
    links = [m for r in records if (m := re.search(r"setup\?token=\S+", r.getMessage()))]
    assert links, "no setup link in the log"
    setup_path = "/" + links[-1].group(0)

    page = browser.new_page(locale="en-US")
    page.goto(live_server.base_url + setup_path)
    page.fill("#f-username", "founder")
    page.fill("#f-password", "short")
    page.fill("#f-password_confirm", "short")
    page.click("button[type=submit]")
    # Validation error shown next to the field, nothing created.
    assert "at least 8 characters" in page.inner_text(".field.invalid .error")

    page.fill("#f-password", "a long passphrase")
    page.fill("#f-password_confirm", "a long passphrase")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.base_url + "/")
    assert page.inner_text("h1") == "Dashboard"

    page.click("nav >> text=API tokens")
    page.fill("#f-name", "PBX main site")
    page.select_option("#f-scope", "pbx")
    page.click("text=Create token")
    token = page.inner_text("[data-testid=new-token]").strip()
    assert token.startswith("cbp_")
    assert "PBX main site" in page.inner_text("#tokens")

    # The token shown works against the API with the pbx scope (and only that scope).
    answer = httpx.get(
        live_server.base_url + "/api/v1/users", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403

    # Signing out and in again through the form works; the setup link is spent.
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(live_server.base_url + setup_path)
    assert "not valid" in page.inner_text(".banner.error")
    page.goto(live_server.base_url + "/tokens")
    page.wait_for_url(re.compile(r".*/login\?next=%2Ftokens$"))
    page.fill("#f-username", "founder")
    page.fill("#f-password", "a long passphrase")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.base_url + "/tokens")
    page.close()


def test_japanese_ui_from_accept_language(live_server, browser) -> None:
    page = browser.new_page(locale="ja-JP", extra_http_headers={"Accept-Language": "ja"})
    page.goto(live_server.base_url + "/login")
    assert page.inner_text("h1") == "サインイン"
    page.close()
