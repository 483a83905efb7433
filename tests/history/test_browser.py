"""The history link in Chromium, against a live server and the sandbox Salesforce: an
administrator configures a link in the form, runs 設定確認, makes a call in the call
simulator, sees the row synced in 連携通話履歴, opens the activity in Salesforce and
plays the recording from its speaker link."""

from __future__ import annotations

import io
import re
import time
import wave

import httpx
import pytest
from playwright.sync_api import expect

from callbridge.sandbox import SandboxHandle
from callbridge.settings import Settings
from tests.call_actions.test_call_action_browser import PASSWORD, _prepare

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CALL_ID = "browser-history-1"
OWN_NUMBER = "0501234567"


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000)
    return buffer.getvalue()


def _wait_synced(api: httpx.Client, link_id: int) -> None:
    deadline = time.monotonic() + 30
    while True:  # readiness wait for the worker, not a timing assumption
        items = api.get(f"/api/v1/history-links/{link_id}/histories").json()["items"]
        if items and items[0]["state"] == "synced":
            return
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def test_history_link_in_chromium(
    settings: Settings, live_server, browser, sandbox: SandboxHandle
) -> None:
    base = live_server.base_url
    api = _prepare(settings, base, sandbox)
    assert api.patch("/api/v1/settings", json={"public_url": base}).status_code == 200
    fallback = next(
        a["Id"]
        for a in sandbox.state.records["Account"].values()
        if a["Name"] == "みなと物流株式会社"
    )
    takahashi = next(
        c for c in sandbox.state.records["Contact"].values() if c["LastName"] == "高橋"
    )
    page = browser.new_page(locale="en-US")
    try:
        page.goto(f"{base}/history-links")
        page.fill("#f-username", "admin")
        page.fill("#f-password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{base}/history-links")

        page.get_by_role("link", name="New history link").click()
        page.fill("#f-name", "Support line")
        page.select_option("#f-oauth_account_id", label="Sandbox")
        page.fill(
            "#f-fallback_record",
            f"https://ap15.lightning.force.com/lightning/r/Account/{fallback}/view",
        )
        page.select_option("#f-status", "enabled")
        # Without API consent: the error sits next to it, nothing is saved.
        page.fill("#f-more_numbers", OWN_NUMBER)
        page.locator("#save").click()
        expect(page.locator(".banner.error[role=alert]")).to_be_visible()
        expect(page.locator(".field.invalid")).to_contain_text(
            "API consent is required before the status can be 'enabled'"
        )
        assert api.get("/api/v1/history-links").json()["total"] == 0
        page.check("input[name=api_consent]")
        page.fill("#f-more_numbers", OWN_NUMBER)
        page.locator("#save").click()
        expect(page).to_have_url(re.compile(r"/history-links/\d+\?saved=1"))
        expect(page.locator(".banner.warning")).to_contain_text(
            f"The URL was reduced to its record id {fallback}."
        )
        link_id = int(page.url.split("/history-links/")[1].split("?")[0])

        page.get_by_role("button", name="Check settings").click()
        expect(page.locator("#check-result")).to_have_text("Configured correctly")

        page.goto(f"{base}/simulator")
        page.fill("#s-call_id", CALL_ID)
        page.fill("#s-tel", takahashi["MobilePhone"])
        page.fill("#s-called", OWN_NUMBER)
        page.fill("#s-agent_id", "A7")
        page.fill("#s-extension", "207")
        for event in ("incoming", "answer", "disconnect"):
            page.get_by_role("button", name=f"Send {event}").click()
            expect(page.locator(".banner.success")).to_contain_text(f"Sent {event}.")
        _wait_synced(api, link_id)
        pbx = api.post("/api/v1/tokens", json={"name": "pbx", "scope": "pbx"}).json()["token"]
        uploaded = httpx.put(
            f"{base}/api/v1/calls/{CALL_ID}/recording",
            content=_wav(),
            headers={"Authorization": f"Bearer {pbx}", "Content-Type": "audio/wav"},
        )
        assert uploaded.status_code == 201, uploaded.text

        page.goto(f"{base}/history-links/{link_id}/histories")
        row = page.locator(f"#histories tr[data-call='{CALL_ID}']")
        expect(row.locator(".state .badge")).to_have_text("synced")
        expect(row.locator("td.col-phone_from")).to_have_text(takahashi["MobilePhone"])
        expect(row.locator("td.col-naisen_to")).to_have_text("207")
        expect(row.locator("td.col-call_id")).to_be_hidden()  # hidden by default (seed 001)
        with page.expect_popup() as popup:
            row.get_by_role("link", name="Open activity").click()
        activity = popup.value
        expect(activity).to_have_url(re.compile(rf"^{sandbox.base_url}/lightning/r/Task/00T"))
        expect(activity.locator("tr[data-field=WhoId] td")).to_have_text(takahashi["Id"])
        expect(activity.locator("tr[data-field=B_NaisenTo__c] td")).to_have_text("207")
        with activity.expect_popup() as player:
            activity.get_by_role("link", name="Image").click()
        playback = player.value
        expect(playback).to_have_url(f"{base}/monitor_link/{CALL_ID}")
        expect(playback.locator("audio")).to_have_count(1)
    finally:
        page.context.close()
