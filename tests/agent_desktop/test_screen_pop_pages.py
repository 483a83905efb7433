"""The screen-pop profile pages (画面ポップアップ): every field of DESIGN §12.2 in the form,
errors next to their field in the admin's language with nothing saved, edit and delete,
the numbers seen in calls offered, and a custom lookup shown and kept."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from callbridge.models import ScreenPopProfile
from tests.agent_desktop.test_screen_pops_api import _account
from tests.helpers import bearer, csrf_from, errors_by_field, make_token, make_user, sign_in


async def signed_in(app: FastAPI, client: httpx.AsyncClient, language: str = "ja") -> str:
    await make_user(app)
    assert (await sign_in(client)).status_code == 303
    client.cookies.set("cb_lang", language)
    return csrf_from((await client.get("/screen-pops/new")).text)


def form(token: str, account_id: int, **fields: str) -> dict[str, str]:
    base = {
        "csrf_token": token,
        "name": "受付",
        "enabled": "1",
        "trigger": "answer",
        "answer_delay_seconds": "3",
        "skip_internal": "1",
        "display_seconds": "45",
        "copy_number": "1",
        "anonymous_label": "番号非通知",
        "strip_prefixes": "+81, 0081",
        "wrapup_reasons": "折り返し\n解決\n",
        "more_numbers": "0312345678 0501234567",
        "lookup_kind": "salesforce",
        "oauth_account_id": str(account_id),
        "timeout_seconds": "4",
        "objects-0-api_name": "Contact",
        "objects-0-tab_name": "取引先責任者",
        "objects-0-key_prefix": "003",
        "objects-0-priority": "1",
        "objects-1-api_name": "Lead",
        "objects-1-tab_name": "リード",
        "objects-1-key_prefix": "00Q",
        "objects-1-priority": "2",
        "custom_accesses": "",
    }
    return {**base, **fields}


async def stored(app: FastAPI) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(ScreenPopProfile)) or 0)


async def read(client: httpx.AsyncClient, headers: dict[str, str], profile_id: str) -> Any:
    return (await client.get(f"/api/v1/screen-pops/{profile_id}", headers=headers)).json()


async def test_create_edit_delete_and_errors(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await signed_in(app, client)
    api = bearer(await make_token(app))
    account_id = await _account(app)
    page = await client.get("/screen-pops")
    assert "画面ポップアップ設定はまだありません。" in page.text
    assert "Salesforce は Open CTI を 2028-02-28 に廃止し" in page.text
    assert "既定はエージェントコンソール(/agent)です。" in page.text
    new = await client.get("/screen-pops/new")
    for label in (
        "応答時アクセス実行までの待機時間(秒)",
        "内線着信時はCTI連携しない",
        "非通知時の表示名",
        "CTI連携時に電話番号をクリップボードにコピーする",
        "ANI プレフィックス文字列の削除",
        "表示時間(秒)",
        "後処理理由(1 行に 1 つ)",
        "発信者の検索方法",
    ):
        assert label in new.text, label

    bad = await client.post(
        "/screen-pops/new",
        data=form(
            token,
            account_id,
            answer_delay_seconds="61",
            strip_prefixes="+81, 81-",
            display_seconds="ten",
        ),
    )
    assert bad.status_code == 422
    assert "保存していません。下記の項目を修正してください。" in bad.text
    errors = errors_by_field(bad.text)
    assert errors["answer_delay_seconds"] == ["60以下にしてください。"]
    assert errors["strip_prefixes"] == ["「81-」:使用できない文字が含まれています。"]
    assert errors["display_seconds"] == ["整数を入力してください。"]
    assert 'value="+81, 81-"' in bad.text and 'value="ten"' in bad.text  # kept as typed
    assert await stored(app) == 0

    no_account = await client.post(
        "/screen-pops/new", data=form(token, account_id, oauth_account_id="")
    )
    assert no_account.status_code == 422
    assert errors_by_field(no_account.text)["oauth_account_id"] == ["この項目は必須です。"]
    assert await stored(app) == 0

    created = await client.post("/screen-pops/new", data=form(token, account_id))
    assert created.status_code == 303, created.text
    profile_id = created.headers["location"].split("/")[2].split("?")[0]
    shown = await client.get(created.headers["location"])
    assert "保存しました。" in shown.text
    body = await read(client, api, profile_id)
    assert {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "受付",
        "enabled": True,
        "trigger": "answer",
        "phone_numbers": ["0312345678", "0501234567"],
        "answer_delay_seconds": 3,
        "skip_internal": True,
        "display_seconds": 45,
        "copy_number": True,
        "anonymous_label": "番号非通知",
        "strip_prefixes": ["+81", "0081"],
        "wrapup_reasons": ["折り返し", "解決"],
        "lookup": {
            "kind": "salesforce",
            "oauth_account_id": account_id,
            "objects": [
                {
                    "api_name": "Contact",
                    "tab_name": "取引先責任者",
                    "key_prefix": "003",
                    "priority": 1,
                },
                {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 2},
            ],
            "timeout_seconds": 4.0,
            "card_wait_seconds": 1.0,
        },
        "warnings": [],
    }
    # The stored numbers are offered as ticked boxes; the form shows every value back.
    assert 'value="0312345678" checked' in shown.text
    assert 'value="+81, 0081"' in shown.text

    same_name = await client.post(
        "/screen-pops/new", data=form(token, account_id, **{"objects-1-key_prefix": "00QQ"})
    )
    assert same_name.status_code == 422
    assert errors_by_field(same_name.text)["name"] == [
        "「受付」という名前の画面ポップアップ設定がすでにあります"
    ]
    assert "キープレフィックスは英数字ちょうど3文字です（入力値: 「00QQ」）" in same_name.text
    assert 'value="00QQ"' in same_name.text
    assert await stored(app) == 1

    # Edit: no lookup, unticked boxes, one number kept; a refused edit changes nothing.
    refused = await client.post(
        f"/screen-pops/{profile_id}",
        data=form(token, account_id, name="受付2", answer_delay_seconds="-1"),
    )
    assert refused.status_code == 422
    assert errors_by_field(refused.text)["answer_delay_seconds"] == ["0以上にしてください。"]
    assert (await read(client, api, profile_id))["name"] == "受付"
    edited_form = form(token, account_id, name="受付2", lookup_kind="", more_numbers="")
    for unticked in ("enabled", "copy_number", "skip_internal"):
        del edited_form[unticked]
    edited = await client.post(
        f"/screen-pops/{profile_id}", data={**edited_form, "phone_numbers": "0501234567"}
    )
    assert edited.status_code == 200, edited.text
    assert "保存しました。" in edited.text
    again = await read(client, api, profile_id)
    assert again["name"] == "受付2" and again["lookup"] is None
    assert again["phone_numbers"] == ["0501234567"]
    assert (again["enabled"], again["copy_number"], again["skip_internal"]) == (False, False, False)
    listing = await client.get("/screen-pops")
    assert "受付2" in listing.text and "検索なし" in listing.text and "無効" in listing.text

    deleted = await client.post(f"/screen-pops/{profile_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "削除しました。" in (await client.get(deleted.headers["location"])).text
    assert await stored(app) == 0


async def test_english_errors(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await signed_in(app, client, "en")
    account_id = await _account(app)
    bad = await client.post(
        "/screen-pops/new",
        data=form(token, account_id, answer_delay_seconds="61", strip_prefixes="x1"),
    )
    assert bad.status_code == 422
    assert "Nothing was saved: correct the fields marked below." in bad.text
    errors = errors_by_field(bad.text)
    assert errors["answer_delay_seconds"] == ["Must be at most 60."]
    assert errors["strip_prefixes"] == ["“x1”: Contains characters that are not allowed."]
    assert await stored(app) == 0


async def test_numbers_seen_in_calls_are_offered(app: FastAPI, client: httpx.AsyncClient) -> None:
    await signed_in(app, client)
    pbx = bearer(await make_token(app, scope="pbx", name="pbx"))
    event = {"call_id": "c1", "event": "incoming", "tel": "0901", "called": "0357000000"}
    answer = await client.post(
        "/api/v1/call-events?wait=true", json={**event, "extension": "201"}, headers=pbx
    )
    assert answer.status_code == 200, answer.text
    page = await client.get("/screen-pops/new")
    assert 'name="phone_numbers" value="0357000000"' in page.text
    assert 'name="phone_numbers" value="201"' in page.text


async def test_a_custom_lookup_is_shown(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await signed_in(app, client)
    accesses = {
        "search": {
            "method": "server_get",
            "url": "https://crm.example.com/find?tel={TEL}",
            "response_format": '/"name":"(?P<NAME>[^"]*)"/',
        },
        "incoming": {"method": "browser_get", "url": "https://www.google.com/search?q={TEL}"},
        "disconnect": {
            "method": "server_post",
            "url": "https://crm.example.com/end",
            "answered_only": True,
        },
    }
    async with app.state.runtime.sessionmaker() as session:
        profile = ScreenPopProfile(
            name="他社CRM",
            anonymous_label="非通知",
            lookup={"kind": "custom", "accesses": accesses},
        )
        session.add(profile)
        await session.commit()
        profile_id = profile.id
    page = await client.get(f"/screen-pops/{profile_id}")
    assert page.status_code == 200
    assert '<option value="custom" selected>' in page.text
    assert "検索アクセス" in page.text and "着信時アクセス" in page.text
    assert "切断時アクセス" in page.text and "応答した時のみ実行する" in page.text
    assert "https://www.google.com/search?q={TEL}" in page.text
    assert "HTTP GET(エージェントのブラウザーで開く)" in page.text
    assert "OS コマンドは提供しません" in page.text
    assert "カスタム連携" in (await client.get("/screen-pops")).text
    # The accesses travel with the form: a save sends them back unchanged.
    kept = hidden_value(page.text, "custom_accesses")
    assert json.loads(kept) == accesses
    posted = await client.post(
        f"/screen-pops/{profile_id}",
        data=form(token, 0, name="他社CRM", lookup_kind="custom", custom_accesses=kept),
    )
    assert posted.status_code == 200, posted.text
    assert "保存しました。" in posted.text
    async with app.state.runtime.sessionmaker() as session:
        stored_profile = await session.get(ScreenPopProfile, profile_id)
        assert stored_profile is not None
        assert stored_profile.lookup == {
            "kind": "custom",
            "accesses": {
                "search": {**accesses["search"], "headers": "", "body": ""},
                "incoming": {**accesses["incoming"], "headers": "", "body": ""},
                "disconnect": {**accesses["disconnect"], "headers": "", "body": ""},
            },
            "timeout_seconds": 5.0,
            "card_wait_seconds": 1.0,
        }
    # A fault in an access is shown next to the accesses, in the admin's language.
    apw = {**accesses, "incoming": {"method": "browser_get", "url": "https://x.jp/?pw={APW}"}}
    refused = await client.post(
        f"/screen-pops/{profile_id}",
        data=form(token, 0, name="他社CRM", lookup_kind="custom", custom_accesses=json.dumps(apw)),
    )
    assert refused.status_code == 422
    (said,) = errors_by_field(refused.text)["custom_accesses"]
    assert "{APW}（オペレーターのパスワード）は使えません。" in said


def hidden_value(page: str, name: str) -> str:
    """The value of a hidden input, unescaped."""
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, name
    return html.unescape(match.group(1))
