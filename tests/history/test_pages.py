"""The history link pages: the form with every field, errors next to their field and
nothing saved, the objects table (add, edit, delete), numbers, mappings, the history list."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from callbridge.models import HistoryLink
from tests.helpers import csrf_from, make_user, sign_in
from tests.history.test_api import FALLBACK, _account


async def signed_in(app: FastAPI, client: httpx.AsyncClient) -> str:
    await make_user(app)
    assert (await sign_in(client)).status_code == 303
    client.headers["Accept-Language"] = "ja"
    return csrf_from((await client.get("/history-links/new")).text)


def form(token: str, account_id: int, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": token,
        "name": "サポート",
        "oauth_account_id": str(account_id),
        "fallback_record": FALLBACK,
        "memo": "",
        "on_multiple": "fallback",
        "on_no_match": "fallback",
        "activity": "task",
        "status": "disabled",
        "search_retries": "3",
        "retry_minutes": "5",
        "language": "ja",
        "subject_template": "{DIRECTION_LABEL} {TEL}",
        "objects-0-api_name": "Contact",
        "objects-0-tab_name": "取引先責任者",
        "objects-0-key_prefix": "003",
        "objects-0-priority": "1",
        "objects-1-api_name": "Account",
        "objects-1-tab_name": "取引先",
        "objects-1-key_prefix": "001",
        "objects-1-priority": "2",
        "more_numbers": "0312345678 201",
        "mappings-0-field": "CallDisposition",
        "mappings-0-template": "{QUEUE}",
        "mappings-0-default": "なし",
        "mappings-0-conditions": "QUEUE=vip => VIP対応",
    }
    return {**base, **fields}


async def stored(app: FastAPI) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(HistoryLink)) or 0)


async def test_create_edit_and_errors(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await signed_in(app, client)
    account_id = await _account(app, "salesforce")
    bad = await client.post(
        "/history-links/new",
        data=form(token, account_id, **{"objects-1-key_prefix": "0011", "status": "enabled"}),
    )
    assert bad.status_code == 422
    assert "保存していません。下記の項目を修正してください。" in bad.text
    assert "キープレフィックスは英数字ちょうど3文字です（入力値: 「0011」）" in bad.text
    assert "状態を「enabled」にするには、API利用への同意が必要です" in bad.text
    assert 'value="0011"' in bad.text  # what was typed is kept
    assert await stored(app) == 0
    created = await client.post(
        "/history-links/new",
        data=form(
            token,
            account_id,
            fallback_record=f"https://ap15.lightning.force.com/lightning/r/Account/{FALLBACK}/view",
        ),
    )
    assert created.status_code == 303
    page = await client.get(created.headers["location"])
    assert f"URLをレコードID {FALLBACK} に置き換えました。" in page.text
    listed = await client.get(
        f"/api/v1/history-links/{created.headers['location'].split('/')[2].split('?')[0]}",
        headers={"X-CSRF-Token": token},
    )
    link = listed.json()
    assert [o["api_name"] for o in link["objects"]] == ["Contact", "Account"]
    assert link["phone_numbers"] == ["0312345678", "201"]
    assert link["field_mappings"] == [
        {
            "field": "CallDisposition",
            "template": "{QUEUE}",
            "default": "なし",
            "conditions": [{"variable": "QUEUE", "equals": "vip", "value": "VIP対応"}],
        }
    ]
    # Delete Account, add Lead, keep the numbers ticked.
    edited = await client.post(
        f"/history-links/{link['id']}",
        data=form(
            token,
            account_id,
            **{
                "objects-1-delete": "1",
                "objects-2-api_name": "Lead",
                "objects-2-key_prefix": "00Q",
                "objects-2-priority": "3",
                "more_numbers": "",
                "phone_numbers": "0312345678",
            },
        ),
    )
    assert edited.status_code == 200, edited.text
    assert "保存しました。" in edited.text
    again = (
        await client.get(f"/api/v1/history-links/{link['id']}", headers={"X-CSRF-Token": token})
    ).json()
    assert [o["api_name"] for o in again["objects"]] == ["Contact", "Lead"]
    assert again["phone_numbers"] == ["0312345678"]
    histories = await client.get(f"/history-links/{link['id']}/histories")
    assert histories.status_code == 200
    assert "連携通話履歴" in histories.text and "連携通話履歴はありません。" in histories.text
    assert "リクエストID" in histories.text and "リトライ予定" in histories.text
    listing = await client.get("/history-links")
    assert "サポート" in listing.text and "無効" in listing.text
