"""The screen-pop profile pages in Chromium, against a live server and the sandbox
Salesforce: an administrator (Japanese UI) fills the form, sees an error next to its field
with nothing saved, corrects it and saves; the agent's console then pops the record found
with the profile's settings (ANI prefix removed, answer trigger)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from callbridge.sandbox import SandboxHandle, demo_account_fields
from callbridge.settings import Settings
from tests.agent_desktop.crm import SESSION, Crm
from tests.call_actions.conftest import make_tokens
from tests.helpers import bearer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "correct horse"


def _sign_in(browser: Browser, base: str, username: str, locale: str) -> Page:
    page = browser.new_context(locale=locale).new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def _event(base: str, pbx: str, event: str, **fields: str) -> None:
    answer = httpx.post(
        f"{base}/api/v1/call-events?wait=true",
        json={"event": event, **fields},
        headers=bearer(pbx),
        timeout=30,
    )
    assert answer.status_code in (200, 202), answer.text


def test_an_admin_configures_a_profile_and_the_agent_pops(
    settings: Settings, live_server, browser: Browser, sandbox: SandboxHandle
) -> None:
    base = live_server.base_url
    with ThreadPoolExecutor(1) as executor:
        admin_token, pbx = executor.submit(asyncio.run, make_tokens(settings)).result()
    api = httpx.Client(base_url=base, headers=bearer(admin_token), timeout=30)
    for body in (
        {"username": "admin", "password": PASSWORD, "role": "admin", "language": "ja"},
        {"username": "sato", "password": PASSWORD, "extension": "201"},
    ):
        assert api.post("/api/v1/users", json=body).status_code == 201
    account = api.post("/api/v1/oauth-accounts", json=demo_account_fields(sandbox.login_url, "SB"))
    assert account.status_code == 201, account.text
    connect = api.post(f"/api/v1/oauth-accounts/{account.json()['id']}/connect")
    assert connect.json()["status"] == "connected", connect.text
    # A call to the own number 0501234567 was seen: the form offers it.
    _event(base, pbx, "incoming", call_id="seen-1", tel="0311112222", called="0501234567")

    admin = _sign_in(browser, base, "admin", "ja-JP")
    admin.goto(f"{base}/screen-pops")
    expect(admin.locator("#no-profiles")).to_contain_text("画面ポップアップ設定はまだありません")
    expect(admin.locator("#where-pops-appear")).to_contain_text("2028-02-28")
    admin.get_by_role("link", name="画面ポップアップ設定の作成").first.click()
    expect(admin.locator("#lookup-salesforce")).to_be_visible()
    admin.select_option("#f-lookup_kind", "")
    expect(admin.locator("#lookup-salesforce")).to_be_hidden()
    admin.select_option("#f-lookup_kind", "salesforce")
    expect(admin.locator("#lookup-salesforce")).to_be_visible()

    admin.fill("#f-name", "受付")
    admin.select_option("#f-trigger", "answer")
    admin.fill("#f-answer_delay_seconds", "61")
    admin.fill("#f-strip_prefixes", "+81")
    admin.fill("#f-wrapup_reasons", "注文\n問い合わせ")
    admin.locator("#select-all").click()
    expect(admin.locator("input[name=phone_numbers][value='0501234567']")).to_be_checked()
    admin.select_option("#f-oauth_account_id", label="SB")
    admin.get_by_role("button", name="保存", exact=True).click()
    expect(admin.locator(".banner.error[role=alert]")).to_have_text(
        "保存していません。下記の項目を修正してください。"
    )
    expect(admin.locator("#e-answer_delay_seconds")).to_have_text("60以下にしてください。")
    assert api.get("/api/v1/screen-pops").json()["items"] == []
    # What was typed is still there; correct the delay and save.
    expect(admin.locator("#f-strip_prefixes")).to_have_value("+81")
    expect(admin.locator("#f-name")).to_have_value("受付")
    admin.fill("#f-answer_delay_seconds", "0")
    admin.get_by_role("button", name="保存", exact=True).click()
    expect(admin.locator(".banner.success")).to_have_text("保存しました。")
    (profile,) = api.get("/api/v1/screen-pops").json()["items"]
    assert (profile["trigger"], profile["strip_prefixes"]) == ("answer", ["+81"])
    assert profile["phone_numbers"] == ["0501234567"]
    assert profile["wrapup_reasons"] == ["注文", "問い合わせ"]
    admin.get_by_role("link", name="画面ポップアップ", exact=True).first.click()
    expect(admin.locator("#profiles")).to_contain_text("受付")

    agent = _sign_in(browser, base, "sato", "en-US")
    expect(agent).to_have_url(f"{base}/agent")
    expect(agent.locator("#agent-console[data-connected='1']")).to_have_count(1)
    contact_id = next(
        c["Id"] for c in sandbox.state.records["Contact"].values() if c["LastName"] == "鈴木"
    )
    call = {"call_id": "p-1", "tel": "+81312345678", "called": "0501234567", "extension": "201"}
    _event(base, pbx, "incoming", **call)  # the trigger is the answer: no card yet
    with agent.context.expect_page() as opened:
        _event(base, pbx, "answer", **call)
    card = agent.locator(".call-card[data-call-id='p-1']")
    expect(card.locator(".pop-number")).to_have_text("0312345678")
    expect(card.locator(".pop-match")).to_have_text("鈴木 一郎 (Contact)")
    expect(card.locator("select[name=wrapup] option")).to_have_count(3)
    assert opened.value.url == f"{sandbox.base_url}/lightning/r/Contact/{contact_id}/view"


def test_an_admin_builds_a_custom_lookup_and_tests_it(
    settings: Settings, live_server, browser: Browser, crm: Crm
) -> None:
    """seed 002's Google search (着信時アクセス HTTP GET ``https://www.google.com/search?q={TEL}``)
    and a search sent by callbridge, built on the page in Japanese; the test panel sends
    the search for a number and shows the request and the page the pop opens."""
    base = live_server.base_url
    with ThreadPoolExecutor(1) as executor:
        admin_token, _pbx = executor.submit(asyncio.run, make_tokens(settings)).result()
    api = httpx.Client(base_url=base, headers=bearer(admin_token), timeout=30)
    body = {"username": "admin", "password": PASSWORD, "role": "admin", "language": "ja"}
    assert api.post("/api/v1/users", json=body).status_code == 201

    admin = _sign_in(browser, base, "admin", "ja-JP")
    admin.goto(f"{base}/screen-pops/new")
    expect(admin.locator("#lookup-custom")).to_be_hidden()
    admin.select_option("#f-lookup_kind", "custom")
    expect(admin.locator("#lookup-custom")).to_be_visible()
    expect(admin.locator("#os-commands")).to_contain_text("OS コマンドがない理由")
    admin.fill("#f-name", "Google 検索")
    admin.fill("#f-strip_prefixes", "+81")
    admin.locator("#access-incoming summary").click()
    admin.select_option("#f-incoming-method", "browser_get")
    admin.fill("#f-incoming-url", "https://www.google.com/search?q={TEL}")
    admin.locator("#access-search summary").click()
    admin.select_option("#f-search-method", "server_get")
    admin.fill("#f-search-url", f"{crm.base_url}/customers?tel={{TEL}}&session={SESSION}")
    admin.get_by_role("button", name="保存", exact=True).click()
    # The search has no response format yet: said next to it, nothing saved.
    expect(admin.locator(".banner.error[role=alert]")).to_have_text(
        "保存していません。下記の項目を修正してください。"
    )
    expect(admin.locator("#e-search-response_format")).to_have_text("この項目は必須です。")
    assert api.get("/api/v1/screen-pops").json()["items"] == []
    expect(admin.locator("#f-incoming-url")).to_have_value("https://www.google.com/search?q={TEL}")
    admin.fill("#f-search-response_format", "COMPANY = $.company\nNAME = $.name")
    admin.get_by_role("button", name="保存", exact=True).click()
    expect(admin.locator(".banner.success")).to_have_text("保存しました。")
    (profile,) = api.get("/api/v1/screen-pops").json()["items"]
    assert profile["lookup"]["accesses"]["incoming"] == {
        "method": "browser_get",
        "url": "https://www.google.com/search?q={TEL}",
        "headers": "",
        "body": "",
    }
    assert profile["lookup"]["accesses"]["search"]["method"] == "server_get"

    # The test panel: a number in, the search request and the pop out.
    admin.fill("#t-tel", "+81312345678")
    admin.locator("#t-run").click()
    search = admin.locator("#tested-search")
    expect(search).to_contain_text("検索アクセス · HTTP GET(内部処理:callbridge が送信)")
    expect(search.locator("pre.wire").first).to_contain_text(
        f"GET {crm.base_url}/customers?tel=0312345678&session="
    )
    expect(admin.locator("#tested-incoming .opens")).to_have_text(
        "https://www.google.com/search?q=0312345678"
    )
    expect(admin.locator("#pop-name")).to_have_text("山田 太郎")
    expect(admin.locator("#pop-url a")).to_have_attribute(
        "href", "https://www.google.com/search?q=0312345678"
    )
    assert [r["path"] for r in crm.received] == ["/customers"]
    assert crm.received[0]["query"]["tel"] == "0312345678"
