"""The screen-pop profile pages (画面ポップアップ): every field of DESIGN §12.2 in the form,
errors next to their field in the admin's language with nothing saved, edit and delete,
the numbers seen in calls offered, and a custom lookup shown and kept."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from callbridge.models import ScreenPopProfile
from tests.agent_desktop.crm import SESSION, Crm, custom_lookup
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


def custom_form(token: str, **fields: str) -> dict[str, str]:
    """seed 002's カスタム連携 as an admin fills it in: a Basic login, a server search and
    the Google search of the manual on the incoming call."""
    base = {
        **form(token, 0, name="他社CRM", trigger="incoming", lookup_kind="custom"),
        "answer_delay_seconds": "0",
        "custom-auth_type": "basic",
        "custom-basic_username": "callbridge",
        "custom-basic_password": "s3cret",
        "custom-timeout_seconds": "4",
        "custom-card_wait_seconds": "2",
        "auth-method": "server_post",
        "auth-url": "https://crm.example.com/login",
        "auth-response_format": "SESSION = $.session",
        "auth-session_minutes": "20",
        "search-method": "server_get",
        "search-url": "https://crm.example.com/find?tel={TEL}&s={SESSION}",
        "search-headers": "Accept: application/json",
        "search-response_format": "COMPANY = $.company\nNAME = $.name",
        "incoming-method": "browser_get",
        "incoming-url": "https://www.google.com/search?q={TEL}",
        "disconnect-method": "server_post",
        "disconnect-url": "https://crm.example.com/end",
        "disconnect-body": "tel={TEL}&name={NAME}",
        "disconnect-answered_only": "1",
    }
    return {**base, **fields}


def field_errors(page: str) -> dict[str, list[str]]:
    """The errors a form page shows, by field, also those named ``search-url``."""
    found: dict[str, list[str]] = {}
    for name, message in re.findall(r'<div class="error" id="e-([a-z_.-]+)">(.*?)</div>', page):
        found.setdefault(name, []).append(html.unescape(re.sub("<[^>]+>", "", message)).strip())
    return found


LOOKUP = {
    "kind": "custom",
    "auth_type": "basic",
    "oauth_account_id": None,
    "basic_username": "callbridge",
    "basic_password_set": True,
    "bearer_token_set": False,
    "timeout_seconds": 4.0,
    "card_wait_seconds": 2.0,
    "accesses": {
        "auth": {
            "method": "server_post",
            "url": "https://crm.example.com/login",
            "headers": "",
            "body": "",
            "response_format": "SESSION = $.session",
            "session_minutes": 20,
        },
        "search": {
            "method": "server_get",
            "url": "https://crm.example.com/find?tel={TEL}&s={SESSION}",
            "headers": "Accept: application/json",
            "body": "",
            "response_format": "COMPANY = $.company\nNAME = $.name",
        },
        "incoming": {
            "method": "browser_get",
            "url": "https://www.google.com/search?q={TEL}",
            "headers": "",
            "body": "",
        },
        "disconnect": {
            "method": "server_post",
            "url": "https://crm.example.com/end",
            "headers": "",
            "body": "tel={TEL}&name={NAME}",
            "answered_only": True,
        },
    },
}


async def test_a_custom_lookup_is_edited_on_the_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await signed_in(app, client)
    api = bearer(await make_token(app))
    new = await client.get("/screen-pops/new")
    for label in (
        "callbridge が送信するリクエストの認証",
        "連携タイムアウト時間(秒)",
        "認証アクセス",
        "検索アクセス",
        "着信時アクセス",
        "応答時アクセス",
        "切断時アクセス",
        "クリック時アクセス",
        "セッション維持時間(分)",
        "応答した時のみ切断時アクセスを実行する",
        "OS コマンドがない理由:callbridge はサーバーで動き、",
        "HTTP GET(エージェントのブラウザーで開く)",
        "HTTP POST(内部処理:callbridge が送信)",
    ):
        assert label in new.text, label
    # auth and search are read by callbridge: only its own methods are offered for them.
    search_methods = re.search(r'<select id="f-search-method".*?</select>', new.text, re.S)
    assert search_methods is not None
    assert re.findall(r'<option value="([a-z_]*)"', search_methods.group(0)) == [
        "",
        "server_get",
        "server_post",
    ]

    # Every fault at once, each next to its field in Japanese, with its position.
    bad = await client.post(
        "/screen-pops/new",
        data=custom_form(
            token,
            answer_delay_seconds="61",
            **{
                "incoming-url": "https://www.google.com/search?q={TELL}",
                "auth-session_minutes": "0",
                "click-url": "https://crm.example.com/memo",
            },
        ),
    )
    assert bad.status_code == 422
    assert "保存していません。下記の項目を修正してください。" in bad.text
    errors = field_errors(bad.text)
    assert errors == {
        "answer_delay_seconds": ["60以下にしてください。"],
        "auth-session_minutes": ["1以上にしてください。"],
        "click-method": [errors["click-method"][0]],
    }
    assert "使用しない" not in errors["click-method"][0]
    # With the types right, the templates are checked: the unknown variable at its position.
    bad = await client.post(
        "/screen-pops/new",
        data=custom_form(
            token,
            **{
                "incoming-url": "https://www.google.com/search?q={TELL}",
                "search-response_format": "",
                "incoming-headers": "X-Agent: {EXT}",
            },
        ),
    )
    assert bad.status_code == 422
    errors = field_errors(bad.text)
    assert errors["search-response_format"] == ["この項目は必須です。"]
    assert 'value="s3cret"' not in bad.text  # a typed secret is not shown back
    assert await stored(app) == 0
    bad = await client.post(
        "/screen-pops/new",
        data=custom_form(
            token,
            **{
                "incoming-url": "https://www.google.com/search?q={TELL}",
                "incoming-headers": "X-Agent: {EXT}",
            },
        ),
    )
    assert bad.status_code == 422
    errors = field_errors(bad.text)
    assert errors.keys() == {"incoming-url", "incoming-headers"}
    assert errors["incoming-url"] == ["不明な変数 {TELL} です。{TEL} のことですか？ (32 文字目)"]
    assert '<code class="snippet">' in bad.text
    assert "https://www.google.com/search?q={TELL}</textarea>" in bad.text  # kept as typed
    assert await stored(app) == 0

    created = await client.post("/screen-pops/new", data=custom_form(token))
    assert created.status_code == 303, created.text
    profile_id = created.headers["location"].split("/")[2].split("?")[0]
    body = await read(client, api, profile_id)
    assert body["lookup"] == LOOKUP
    assert body["warnings"] == []
    page = await client.get(created.headers["location"])
    assert "保存しました。" in page.text
    assert '<option value="custom" selected>' in page.text
    assert '<option value="basic" selected>' in page.text
    assert 'id="f-custom-basic_password" name="custom-basic_password" value=""' in page.text
    assert "暗号化して保存しています。変更しない場合は空欄のままにしてください。" in page.text
    assert "https://www.google.com/search?q={TEL}</textarea>" in page.text
    assert 'name="disconnect-answered_only" value="1" checked' in page.text
    assert '<details class="access" id="access-click">' in page.text  # not used: closed
    assert '<details class="access" id="access-search" open>' in page.text

    # Edit: the password left empty is kept; an access emptied is no longer used; a
    # refused edit changes nothing.
    refused = await client.post(
        f"/screen-pops/{profile_id}",
        data=custom_form(token, **{"custom-basic_password": "", "search-url": ""}),
    )
    assert refused.status_code == 422
    assert field_errors(refused.text) == {"search-url": ["この項目は必須です。"]}
    assert "暗号化して保存しています。" in refused.text  # still said: one is stored
    assert (await read(client, api, profile_id))["lookup"] == LOOKUP
    edited = await client.post(
        f"/screen-pops/{profile_id}",
        data=custom_form(
            token,
            **{
                "custom-basic_password": "",
                "disconnect-method": "",
                "disconnect-url": "",
                "disconnect-body": "",
                "search-url": "https://crm.example.com/v2/find?tel={TEL}&s={SESSION}",
            },
        ),
    )
    assert edited.status_code == 200, edited.text
    assert "保存しました。" in edited.text
    after = (await read(client, api, profile_id))["lookup"]
    accesses = dict(LOOKUP["accesses"])  # type: ignore[call-overload]
    del accesses["disconnect"]
    accesses["search"] = {
        **accesses["search"],
        "url": "https://crm.example.com/v2/find?tel={TEL}&s={SESSION}",
    }
    assert after == {**LOOKUP, "accesses": accesses}
    async with app.state.runtime.sessionmaker() as session:
        row = await session.get(ScreenPopProfile, int(profile_id))
        assert row is not None and row.basic_password_encrypted is not None
        secret = app.state.runtime.secrets.decrypt(row.basic_password_encrypted)
        assert secret == "s3cret"
    assert "カスタム連携" in (await client.get("/screen-pops")).text


async def test_custom_lookup_errors_in_english(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await signed_in(app, client, "en")
    no_method = await client.post(
        "/screen-pops/new", data=custom_form(token, **{"search-method": ""})
    )
    assert no_method.status_code == 422
    assert "Nothing was saved: correct the fields marked below." in no_method.text
    assert field_errors(no_method.text) == {
        "search-method": ["Choose a method, or empty this access's fields if it is not used."]
    }
    bad = await client.post(
        "/screen-pops/new",
        data=custom_form(
            token,
            **{"incoming-url": "https://x.example.com/?pw={APW}", "custom-basic_password": ""},
        ),
    )
    assert bad.status_code == 422
    assert field_errors(bad.text) == {
        "incoming-url": [
            "{APW} (the agent's password) is not available: callbridge never holds passwords "
            "in clear. Use an OAuth account or a bearer token instead. (position 26)"
        ],
        "custom-basic_password": ["Basic authentication needs a password."],
    }
    assert "Why no OS command" in bad.text
    assert await stored(app) == 0


async def test_the_test_panel_shows_the_requests_and_the_pop(
    app: FastAPI, client: httpx.AsyncClient, crm: Crm
) -> None:
    token = await signed_in(app, client)
    api = bearer(await make_token(app))
    lookup = custom_lookup(
        crm,
        incoming={"method": "browser_get", "url": "https://crm.example.jp/customer/{EXT_ID}"},
        disconnect={"method": "server_post", "url": f"{crm.base_url}/log", "body": "tel={TEL}"},
    )
    created = await client.post(
        "/api/v1/screen-pops",
        json={"name": "他社CRM", "lookup": lookup, "strip_prefixes": ["+81"]},
        headers=api,
    )
    assert created.status_code == 201, created.text
    profile_id = created.json()["id"]
    page = await client.get(f"/screen-pops/{profile_id}")
    assert "この設定をテスト" in page.text
    assert f'hx-post="/screen-pops/{profile_id}/test"' in page.text

    tested = await client.post(
        f"/screen-pops/{profile_id}/test", data={"csrf_token": token, "tel": "+81312345678"}
    )
    assert tested.status_code == 200, tested.text
    shown = tested.text
    # The lookup's own requests were sent: the CRM received the login and the search.
    assert [r["path"] for r in crm.received] == ["/login", "/customers"]
    assert crm.received[1]["query"] == {"tel": "0312345678", "session": SESSION}
    assert "認証アクセス · HTTP POST(内部処理:callbridge が送信)" in shown
    assert "検索アクセス · HTTP GET(内部処理:callbridge が送信)" in shown
    assert "(送信しました)" in shown
    assert f"GET {crm.base_url}/customers?tel=0312345678&amp;session=[redacted]" in shown
    assert "<dt>{NAME}</dt><dd>山田 太郎</dd>" in shown
    # The others are expanded only: the disconnect access would write to the CRM.
    assert (
        f"POST {crm.base_url}/log\nAuthorization: Basic [redacted]\n\ntel=0312345678</pre>" in shown
    )
    assert "(CRM のデータを変えうるため送信していません)" in shown
    assert "(エージェントのブラウザーで開くもので、テストでは開きません)" in shown
    # The pop: the search values on the card and the incoming access's page.
    assert '<dd id="pop-tel">0312345678</dd>' in shown
    assert '<dd id="pop-company">山田商事</dd>' in shown
    assert '<dd id="pop-name">山田 太郎</dd>' in shown
    assert "https://crm.example.jp/customer/C-1001</code>" in shown
    assert SESSION not in shown and "pa55word" not in shown

    # A CRM that fails: the card still appears, saying the lookup failed.
    failing = {**lookup["accesses"]["search"], "url": f"{crm.base_url}/garbage"}
    patched = await client.patch(
        f"/api/v1/screen-pops/{profile_id}",
        json={"lookup": {**lookup, "accesses": {**lookup["accesses"], "search": failing}}},
        headers=api,
    )
    assert patched.status_code == 200, patched.text
    client.cookies.set("cb_lang", "en")
    failed = await client.post(
        f"/screen-pops/{profile_id}/test", data={"csrf_token": token, "tel": "0312345678"}
    )
    assert failed.status_code == 200
    assert "The lookup failed; the card still appears and says so:" in failed.text
    assert '<dd id="pop-tel">0312345678</dd>' in failed.text
    assert "Search access · HTTP GET (sent by callbridge, 内部処理)" in failed.text
    # The card's error in the admin's language, the CRM's words verbatim in a <code>.
    assert (
        '<span class="pop-error">search: The response is not JSON, so JSONPath cannot run: '
        "<code>Expecting value: line 1 column 1 (char 0)</code></span>" in failed.text
    )
    client.cookies.set("cb_lang", "ja")
    failed = await client.post(
        f"/screen-pops/{profile_id}/test", data={"csrf_token": token, "tel": "0312345678"}
    )
    assert (
        '<span class="pop-error">検索アクセス: '
        "レスポンスが JSON ではないため JSONPath を実行できません: "
        "<code>Expecting value: line 1 column 1 (char 0)</code></span>" in failed.text
    )
