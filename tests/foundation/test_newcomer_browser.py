"""What a new administrator sees, in Chromium: the menu fits at 1280 and 1024 px in both
languages, only the chosen authentication's fields are shown, a typed My Domain URL chooses
"custom", the new token has a working copy button, every page has its icon, and a
screenshot of every page in both languages at 1280 px (kept under test-results/screens/)
shows no clipped control."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from callbridge.admin.rendering import NAV
from callbridge.app import create_app
from callbridge.settings import Settings
from tests.ivr.test_browser import _admin_token as admin_and_token
from tests.pages import Installation, crm_stub, populate
from tests.servers import running_server

pytestmark = pytest.mark.browser

SCREENS = Path(__file__).resolve().parents[2] / "test-results" / "screens"

# Controls whose text must be shown whole: not cut by their own box, by a scrolling or
# clipping ancestor, or by the window's edge.
CLIPPED_CONTROLS = """
() => {
  const selector = "header a, header button, nav a, main a.btn, main button, main input, "
    + "main select, main textarea, main label, main th, main .card, main .badge";
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || el.closest("[hidden]")) continue;
    const name = (el.innerText || el.value || el.name || el.tagName).trim().slice(0, 40);
    const typed = el.tagName === "INPUT" || el.tagName === "TEXTAREA";
    if (!typed && el.scrollWidth > el.clientWidth + 1) found.push(name + ": text overflows");
    if (box.left < -1 || box.right > width + 1) found.push(name + ": outside the window");
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (style.overflowX === "visible" && style.overflowY === "visible") continue;
      const outer = up.getBoundingClientRect();
      if (box.left < outer.left - 1 || box.right > outer.right + 1) {
        if (up.tagName !== "TD" && !up.classList.contains("table-wrap")) {
          found.push(name + ": cut by " + up.tagName.toLowerCase() + "." + up.className);
        }
      }
      break;
    }
  }
  return found;
}
"""


# Visible sentences written in English only (code, data and values excluded): on a Japanese
# page these are messages the catalogue does not translate yet.
ENGLISH_SENTENCES = """
() => {
  const skip = "code, pre, textarea, script, style, .secret, .wire, [hidden], select";
  const found = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.replace(/\\s+/g, " ").trim();
    if (!text || node.parentElement.closest(skip)) continue;
    if (/^[\\x20-\\x7e]+$/.test(text) && /[A-Za-z]{2,} [a-z]{2,} [a-z]{2,}/.test(text)) {
      found.add(text.slice(0, 160));
    }
  }
  return [...found];
}
"""


@dataclass
class Live:
    base: str
    installation: Installation


def _in_thread(work: Any) -> Any:
    """Playwright's sync API keeps an event loop running in this thread: use another one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _populate(base: str, token: str) -> Installation:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        return await populate(client, {"Authorization": f"Bearer {token}"})


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    token = _in_thread(admin_and_token(settings))
    with crm_stub(), running_server(create_app(settings)) as server:
        installation = _in_thread(_populate(server.base_url, token))
        yield Live(server.base_url, installation)


def _sign_in(browser: Any, live: Live, language: str, width: int = 1280) -> Any:
    context = browser.new_context(
        locale="ja-JP" if language == "ja" else "en-US",
        viewport={"width": width, "height": 900},
    )
    page = context.new_page()
    page.goto(live.base + "/login")
    page.fill("#f-username", "admin")
    page.fill("#f-password", "correct horse")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(live.base + "/")
    return page


def test_menu_fits_at_1280_and_1024_px(live: Live, browser: Any) -> None:
    for language in ("ja", "en"):
        for width in (1280, 1024):
            page = _sign_in(browser, live, language, width)
            assert page.get_attribute("html", "lang") == language
            labels = page.locator("header.top nav a").all_inner_texts()
            assert len(labels) == 1 + len([i for i in NAV if "admin" in i.roles]), labels
            if language == "ja":
                assert "設定" in labels
            problems = page.evaluate(CLIPPED_CONTROLS)
            assert problems == [], (language, width, problems)
            for link in page.locator("header.top nav a, header.top .who button").all():
                assert link.is_visible()
                box = link.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            page.context.close()


def test_only_the_chosen_authentication_fields_are_shown(live: Live, browser: Any) -> None:
    page = _sign_in(browser, live, "en")
    for path in ("/call-actions/new", f"/ivrs/{live.installation.ivr_id}"):
        page.goto(live.base + path)
        page.select_option("#f-auth_type", "oauth")
        assert page.is_visible("#f-oauth_account_id")
        for hidden in ("#f-basic_username", "#f-basic_password", "#f-bearer_token"):
            assert not page.is_visible(hidden), (path, hidden)
        page.select_option("#f-auth_type", "basic")
        assert page.is_visible("#f-basic_username") and page.is_visible("#f-basic_password")
        assert not page.is_visible("#f-bearer_token")
        assert not page.is_visible("#f-oauth_account_id")
        page.select_option("#f-auth_type", "bearer")
        assert page.is_visible("#f-bearer_token")
        assert not page.is_visible("#f-basic_username")
        page.select_option("#f-auth_type", "none")
        for hidden in ("#f-oauth_account_id", "#f-basic_username", "#f-bearer_token"):
            assert not page.is_visible(hidden), (path, hidden)
    page.context.close()


def test_typing_a_login_url_chooses_custom(live: Live, browser: Any) -> None:
    page = _sign_in(browser, live, "ja")
    page.goto(live.base + "/oauth-accounts/new")
    assert page.input_value("#f-login_choice") == "production"
    page.fill("#f-name", "サンドボックス")
    page.fill("#f-login_url", "http://127.0.0.1:8090")
    assert page.input_value("#f-login_choice") == "custom"
    page.fill("#f-client_id", "demo")
    page.fill("#f-client_secret", "secret")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/oauth-accounts/\d+\?saved=1$"))
    assert page.input_value("#f-login_choice") == "custom"
    assert page.input_value("#f-login_url") == "http://127.0.0.1:8090"
    page.context.close()


def test_copy_button_and_icon(live: Live, browser: Any) -> None:
    page = _sign_in(browser, live, "ja")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.base)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(live.base + "/tokens")
    page.fill("#f-name", "PBX 支社")
    page.click("form[action='/tokens'] button[type=submit]")
    expect(page.locator("#new-token-value")).to_be_visible()
    token = page.inner_text("#new-token-value").strip()
    assert token.startswith("cb")
    page.bring_to_front()  # the clipboard API answers only the focused page
    page.click("button[data-copy]")
    # The label changes once the clipboard has taken the token (an asynchronous write).
    expect(page.locator("button[data-copy]")).to_have_text("コピーしました")
    assert page.evaluate("navigator.clipboard.readText()") == token
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).status == 200
    assert missing == []
    page.context.close()


def test_screenshot_of_every_page_shows_no_clipped_control(live: Live, browser: Any) -> None:
    report: list[str] = []
    english: list[str] = []
    for language in ("ja", "en"):
        folder = SCREENS / language
        folder.mkdir(parents=True, exist_ok=True)
        signed_out = browser.new_context(
            locale="ja-JP" if language == "ja" else "en-US", viewport={"width": 1280, "height": 900}
        ).new_page()
        signed_out.goto(live.base + "/login")
        signed_out.screenshot(path=str(folder / "login.png"), full_page=True)
        report.extend(f"{language} /login: {p}" for p in signed_out.evaluate(CLIPPED_CONTROLS))
        signed_out.context.close()
        page = _sign_in(browser, live, language)
        for template, path in live.installation.paths().items():
            if template in ("/login", "/setup", "/oauth_client/callback"):
                continue
            page.goto(live.base + path)
            assert page.get_attribute("html", "lang") == language, path
            name = re.sub(r"[^a-z0-9]+", "-", template.lower()).strip("-") or "dashboard"
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
            problems = page.evaluate(CLIPPED_CONTROLS)
            report.extend(f"{language} {path}: {problem}" for problem in problems)
            if language == "ja":
                english.extend(f"{path}: {text}" for text in page.evaluate(ENGLISH_SENTENCES))
        page.context.close()
    (SCREENS / "clipped.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    # Kept for the message catalogue's work (every message in the admin's language).
    (SCREENS / "english-in-ja.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
    assert report == []
