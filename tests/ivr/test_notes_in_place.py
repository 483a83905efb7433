"""Save-time notes on the IVR page say where they belong the way the screen names it
(優先順位 1 · レスポンスパターン (17, 19 文字目)), once per place, and a 「なし」 pasted into a
response setting is reported after the save's redirect, as docs/ivr.md promises."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from tests.helpers import csrf_from, errors_by_field, make_user, sign_in
from tests.ivr.conftest import create_ivr, simple_ivr


def notes(html: str) -> list[str]:
    found = re.findall(r'<div class="warn-note">(.*?)</div>', html, re.S)
    return [re.sub(r"<[^>]+>", "", note) for note in found]


async def _signed_in(app: FastAPI, client: httpx.AsyncClient) -> str:
    await make_user(app)
    await sign_in(client)
    client.cookies.set("cb_lang", "ja")
    return csrf_from((await client.get("/ivrs")).text)


async def test_response_notes_name_the_priority_and_field_with_positions(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    await _signed_in(app, client)
    setting = {
        "priority": 1,
        "response_code": "200",
        "response_pattern": '/"searchRecords":¥[¥]/',
        "guidance": {"type": "tts", "text": "お電話ありがとうございます。"},
        "transfer": {"kind": "callcenter", "target": "support"},
    }
    body = await create_ivr(client, admin, simple_ivr(responses=[setting]))
    page = await client.get(f"/ivrs/{body['id']}")
    [note] = [n for n in notes(page.text) if "¥" in n]
    assert note.startswith("優先順位 1 · レスポンスパターン (17, 19 文字目): ")
    assert "responses.0" not in page.text


async def test_nashi_in_a_response_setting_is_reported_after_the_save(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    csrf = await _signed_in(app, client)
    body = await create_ivr(client, admin, simple_ivr(responses=[]))
    saved = await client.post(
        f"/ivrs/{body['id']}/responses/new",
        data={
            "csrf_token": csrf,
            "priority": "3",
            "response_code": "200",
            "response_pattern": "なし",
            "extract_pattern": "なし",
            "guidance_type": "tts",
            "guidance_text": "お電話ありがとうございます。",
            "transfer_kind": "callcenter",
            "transfer_target": "support",
        },
    )
    assert saved.status_code == 303
    page = await client.get(saved.headers["location"])
    shown = [n for n in notes(page.text) if "「なし」" in n]
    assert [n.split(": ")[0] for n in shown] == [
        "優先順位 3 · レスポンスパターン (0 文字目)",
        "優先順位 3 · 変数抽出パターン (0 文字目)",
    ]
    # Reported once: the stored setting is empty, so a later look shows no such note.
    again = await client.get(f"/ivrs/{body['id']}")
    assert not [n for n in notes(again.text) if "「なし」" in n]
    # A forged notes parameter shows nothing.
    forged = await client.get(f"/ivrs/{body['id']}?saved=1&notes=hello")
    assert forged.status_code == 200
    assert not [n for n in notes(forged.text) if "「なし」" in n]


async def test_ivr_forms_report_every_error_at_once(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    csrf = await _signed_in(app, client)
    client.cookies.set("cb_lang", "en")
    broken = {
        "csrf_token": csrf,
        "key": "lookup",
        "auth_type": "none",
        "url": "https://crm.example.com/lookup?name={TELNAM}",
        "method": "POST",
        "timeout_seconds": "120",
        "headers": "Content-Type application/json",
        "body": '{"tel": "{TEL}"}',
        "max_digits": "0",
        "digits_pattern": "/[0-9/",
    }
    created = await client.post("/ivrs/new", data=broken)
    assert created.status_code == 422
    expected = ["digits_pattern", "headers", "timeout_seconds", "url"]
    assert sorted(errors_by_field(created.text)) == expected
    body = await create_ivr(client, admin, simple_ivr(responses=[]))
    edited = await client.post(f"/ivrs/{body['id']}", data=broken)
    assert edited.status_code == 422
    assert sorted(errors_by_field(edited.text)) == expected
    setting = await client.post(
        f"/ivrs/{body['id']}/responses/new",
        data={
            "csrf_token": csrf,
            "priority": "first",
            "response_code": "200",
            "response_pattern": "/[/",
            "guidance_type": "tts",
            "guidance_text": "{CODE1}様",
            "transfer_kind": "callcenter",
            "transfer_target": "support",
        },
    )
    assert setting.status_code == 422
    errors = errors_by_field(setting.text)
    assert sorted(errors) == ["guidance_text", "priority", "response_pattern"]
