"""No English sentence reaches a Japanese page: every catalogue message renders in
Japanese, and the error and warning paths an admin meets while configuring (save errors,
save warnings, the IVR test panel, the call timeline, Settings, OAuth) are rendered in
``ja`` and searched for ASCII-only sentences."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Literal

import httpx
import pytest
import respx
from fastapi import FastAPI
from pydantic import AnyUrl, BaseModel, Field, ValidationError

import callbridge.app  # imports every feature, so the catalogue is complete
from callbridge.admin.rendering import form_errors
from callbridge.i18n import translations
from callbridge.messages import CATALOGUE, Message
from tests.call_actions.test_pages import form as rule
from tests.calls.conftest import post_event, wait_until_processed
from tests.helpers import bearer, csrf_from, make_token, make_user, sign_in
from tests.history.test_api import FALLBACK
from tests.history.test_api import _account as history_account
from tests.history.test_pages import form as history_form
from tests.ivr.conftest import CRM, add_account, create_ivr, mocked_crm, simple_ivr
from tests.ivr.test_pages import form as ivr_form

assert callbridge.app

# Three or more English words in a row (a sentence or most of one).
_ENGLISH = re.compile(r"[A-Za-z][a-z]+(?:'[a-z]+)?(?:[ ,;:]+[A-Za-z][a-z]*(?:'[a-z]+)?){2,}")
# What an admin typed or a server sent is shown as it is: code, wire text, form values.
_VERBATIM = re.compile(r"(?is)<(script|style|textarea|pre|code|option)\b.*?</\1>")
_PARAM = re.compile(r"\{([a-z][a-z0-9_]*)\}")
# Names that are English in Japanese too.
PROPER_NAMES = frozenset({"Proof Key for Code Exchange"})


def english_sentences(page: str) -> list[str]:
    """The ASCII-only sentences a person reads on ``page`` (tags and attributes left out)."""
    text = html.unescape(re.sub(r"(?s)<[^>]+>", "\n", _VERBATIM.sub("\n", page)))
    found = (m.group() for line in text.splitlines() for m in _ENGLISH.finditer(line))
    return [sentence for sentence in found if sentence not in PROPER_NAMES]


def test_the_detector_finds_english() -> None:
    assert english_sentences("<p>不明な変数 {TELNAM} です。</p>") == []
    assert english_sentences("<div>Read ¥ as a backslash.</div>") == ["as a backslash"]
    assert english_sentences("<li>不一致: the body contains /x/</li>") == ["the body contains"]
    verbatim = '<pre>GET https://x.example</pre><p title="Some English words">日本語</p>'
    assert english_sentences(verbatim) == []


def test_every_catalogue_message_renders_in_japanese() -> None:
    gettext = translations("ja").gettext
    english = []
    for code, text in CATALOGUE.items():
        params = {name: "X" for name in _PARAM.findall(text)}
        rendered = Message(code, **params).render(gettext)
        found = english_sentences(f"<p>{html.escape(rendered)}</p>")
        if found and code != "text":
            english.append(f"{code}: {rendered!r}")
    assert not english, "English in Japanese messages:\n" + "\n".join(english)


@pytest.fixture
def crm() -> Iterator[respx.MockRouter]:
    with mocked_crm() as router:
        yield router


@pytest.fixture
async def pbx_headers(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="pbx", name="pbx"))


@pytest.fixture
async def ja(app: FastAPI, client: httpx.AsyncClient) -> str:
    """An administrator's browser in Japanese; returns a CSRF token for forms."""
    await make_user(app)
    await sign_in(client)
    client.cookies.set("cb_lang", "ja")
    return csrf_from((await client.get("/call-actions/new")).text)


def japanese(page: httpx.Response) -> str:
    assert 'lang="ja"' in page.text
    assert english_sentences(page.text) == [], page.request.url
    return page.text


async def test_call_action_errors_and_warnings(client: httpx.AsyncClient, ja: str) -> None:
    refused = await client.post(
        "/call-actions/new",
        data=rule(
            ja,
            auth_type="oauth",
            url="https://x.example/{TELNAM}",
            headers="Content-Type application/json",
            condition_pattern="/a/g",
        ),
    )
    assert refused.status_code == 422
    text = japanese(refused)
    assert "不明な変数 {TELNAM} です。{TELNAME} のことですか？" in text
    assert "このルールの OAuth アカウントを選んでください。" in text
    saved = await client.post(
        "/call-actions/new",
        data=rule(
            ja,
            url="https://crm.example.com/services/data/v45.0/sobject s/Contact?q= SELECT Id",
            extract_pattern='/"Name":"(?P<NAME>.*)",¥s/',
            body='{"a": 1}',
            method="POST",
        ),
    )
    assert saved.status_code == 303
    edit = japanese(await client.get(saved.headers["location"]))
    assert "¥ をバックスラッシュ（\\）として読み取りました。" in edit
    assert "最長一致の .*" in edit
    assert "空白文字を" in edit


async def test_ivr_errors_warnings_and_test_panel(
    app: FastAPI, client: httpx.AsyncClient, ja: str, crm: respx.MockRouter
) -> None:
    admin = bearer(await make_token(app, "admin"))
    refused = await client.post(
        "/ivrs/new",
        data={**ivr_form(url=CRM + "/lookup?tel={TELL}"), "csrf_token": ja},
    )
    assert refused.status_code == 422
    assert "不明な変数 {TELL} です。" in japanese(refused)
    body = await create_ivr(client, admin, simple_ivr())
    ivr_id = body["id"]
    no_target = await client.post(
        f"/ivrs/{ivr_id}/responses/new",
        data={"csrf_token": ja, "priority": "3", "transfer_kind": "callcenter"},
    )
    assert no_target.status_code == 422
    japanese(no_target)
    typed = await client.post(
        f"/ivrs/{ivr_id}/responses/new",
        data={"csrf_token": ja, "priority": "first", "transfer_kind": "none"},
    )
    assert typed.status_code == 422
    assert "整数を入力してください。" in japanese(typed)
    saved = await client.post(
        f"/ivrs/{ivr_id}/responses/new",
        data={
            "csrf_token": ja,
            "priority": "3",
            "response_code": "200",
            "response_pattern": '/"searchRecords":¥[¥]/',
            "guidance_type": "tts",
            "guidance_text": "お電話ありがとうございます。",
            "transfer_kind": "callcenter",
            "transfer_target": "support",
        },
    )
    assert saved.status_code == 303
    assert "バックスラッシュ" in japanese(await client.get(saved.headers["location"]))
    crm.get(f"{CRM}/lookup").respond(200, text='{"found":true,"name":"CDF 株式会社"}')
    result = await client.post(
        f"/ivrs/{ivr_id}/test",
        data={"csrf_token": ja, "tel": "07075373713", "send": "1"},
        headers={"HX-Request": "true"},
    )
    assert result.status_code == 200
    assert "ボディにありません" in result.text
    assert english_sentences(result.text) == []


async def test_the_call_timeline(
    app: FastAPI,
    client: httpx.AsyncClient,
    ja: str,
    pbx_headers: dict[str, str],
    crm: respx.MockRouter,
) -> None:
    crm.get(f"{CRM}/lookup").respond(404, json=[{"errorCode": "NOT_FOUND", "message": "x"}])
    for condition in ("{TEL}", ""):
        created = await client.post(
            "/call-actions/new",
            data=rule(
                ja,
                url=CRM + "/lookup",
                extract_pattern='/"Id":"(?P<CONTACT_ID>[^"]*)"/',
                condition_code=condition,
                condition_pattern="^0120" if condition else "",
                memo="照会",
            ),
        )
        assert created.status_code == 303
    posted = await post_event(client, pbx_headers, event="queue", call_id="c-ja", tel="07075373713")
    assert posted.status_code == 202, posted.text
    await wait_until_processed(app, 1)
    timeline = japanese(await client.get("/calls/c-ja"))
    assert "条件に一致しませんでした" in timeline
    assert "HTTP 404: NOT_FOUND: x" in timeline


async def test_settings_and_oauth(app: FastAPI, client: httpx.AsyncClient, ja: str) -> None:
    page = await client.get("/settings")
    form = {
        "csrf_token": csrf_from(page.text),
        "timezone": "Mars/Olympus",
        "public_url": "",
        "playback_auth": "url",
        "retention_days": "30",
        "max_recording_mb": "100",
    }
    refused = await client.post("/settings", data=form)
    assert refused.status_code == 422
    assert "不明なタイムゾーン「Mars/Olympus」です" in japanese(refused)
    account_id = await add_account(app, status="not_connected", access_token=None)
    listing = japanese(await client.get("/oauth-accounts"))
    assert 'data-grant="authorization_code">認可コード<' in listing
    tested = await client.post(f"/oauth-accounts/{account_id}/test", data={"csrf_token": ja})
    assert "まだ接続されていません" in japanese(tested)


async def test_history_link_errors_and_warnings(
    app: FastAPI, client: httpx.AsyncClient, ja: str
) -> None:
    account_id = await history_account(app, "salesforce")
    refused = await client.post(
        "/history-links/new",
        data=history_form(
            ja,
            account_id,
            **{
                "objects-1-key_prefix": "0011",
                "objects-1-priority": "1",
                "status": "enabled",
                "mappings-0-field": "WhoId",
                "mappings-0-template": "{TELNAM}",
            },
        ),
    )
    assert refused.status_code == 422
    text = japanese(refused)
    assert "キープレフィックスは英数字ちょうど3文字です（入力値: 「0011」）" in text
    assert "優先順位 1 は別のオブジェクトで使われています" in text
    assert "状態を「enabled」にするには、API利用への同意が必要です" in text
    assert "WhoId はcallbridgeが設定する項目のため、割り当てられません" in text
    saved = await client.post(
        "/history-links/new",
        data=history_form(
            ja,
            account_id,
            fallback_record=f"https://x.my.salesforce.com/lightning/r/Account/{FALLBACK}/view",
        ),
    )
    assert saved.status_code == 303
    edit = japanese(await client.get(saved.headers["location"]))
    assert f"URLをレコードID {FALLBACK} に置き換えました。" in edit


# A sample for each parameter a history reason takes; Salesforce's words stay English.
REASON_PARAMS: dict[str, object] = {
    "count": 2,
    "records": 200,
    "object": "Contact",
    "id": 7,
    "name": "sf-main",
    "salesforce": "FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone is not valid for this org",
    "detail": "JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
}


def history_reasons() -> list[Message]:
    """Every reason the history worker stores (nested ones wrap a Salesforce error)."""
    inner = Message("history_salesforce_error", salesforce="SERVER_UNAVAILABLE: down")
    reasons = []
    for code, text in CATALOGUE.items():
        if not code.startswith("history_") or code.startswith("history_link"):
            continue
        params: dict[str, object] = {
            name: inner if name == "reason" else REASON_PARAMS[name]
            for name in _PARAM.findall(text)
        }
        reasons.append(Message(code, **params))  # type: ignore[arg-type]
    return reasons


async def test_history_rows_and_backoff_reasons(
    app: FastAPI, client: httpx.AsyncClient, ja: str, pbx_headers: dict[str, str]
) -> None:
    """The 連携通話履歴 page and the links list show every stored reason in Japanese,
    Salesforce's own words verbatim (in a <code>); the API in the reader's language."""
    from sqlalchemy import select, update

    from callbridge.history.reasons import stored_reason
    from callbridge.models import Call, HistoryLink, HistoryRow

    account_id = await history_account(app, "salesforce")
    saved = await client.post("/history-links/new", data=history_form(ja, account_id))
    assert saved.status_code == 303
    link_id = int(saved.headers["location"].split("/")[2].split("?")[0])
    posted = await post_event(client, pbx_headers, event="incoming", call_id="h-ja", tel="0312")
    assert posted.status_code == 202, posted.text
    await wait_until_processed(app, 1)
    reasons = history_reasons()
    assert len(reasons) >= 19
    backoff = Message(
        "history_backoff.unavailable",
        reason=Message("history_outcome_unknown", reason=Message("deadline_passed")),
    )
    async with app.state.runtime.sessionmaker() as session:
        call_pk = await session.scalar(select(Call.id).where(Call.call_id == "h-ja"))
        assert call_pk is not None
        when = datetime(2026, 12, 4, 1, 0, tzinfo=UTC)
        for index, reason in enumerate(reasons):
            # One row per call and link: the other rows belong to links of their own.
            if index:
                other = HistoryLink(name=f"l{index}", oauth_account_id=account_id, objects=[])
                session.add(other)
                await session.flush()
                row_link = other.id
            else:
                row_link = link_id
            session.add(
                HistoryRow(
                    link_id=row_link,
                    call_pk=call_pk,
                    call_id="h-ja",
                    started_at=when,
                    ended_at=when,
                    state="failed",
                    task_ids=[],
                    **stored_reason(reason),
                )
            )
        stored = stored_reason(backoff)
        await session.execute(
            update(HistoryLink).values(
                backoff_reason=stored["reason"], backoff_reason_msg=stored["reason_msg"]
            )
        )
        await session.commit()
    shown = []
    for index in range(len(reasons)):
        target = link_id if index == 0 else link_id + index
        shown.append(japanese(await client.get(f"/history-links/{target}/histories")))
    listing = japanese(await client.get("/history-links"))
    waiting = (
        "Salesforce を利用できないため、後で再試行します: "
        "結果が不明です。再送の前に Salesforce に確認します: "
        "CRM が応答する前に期限を過ぎました"
    )
    assert waiting in listing and waiting in shown[0]
    everything = "".join(shown)
    assert "Salesforce のエラー: <code>FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone is not valid" in (
        everything
    )
    assert "Contact のレコードが 2 件一致したため、紐付け先特定不可レコードに紐付けました" in (
        everything
    )
    # The API: the reader's language, the stable English text by default, and the code.
    api = f"/api/v1/history-links/{link_id}/histories"
    [in_japanese] = (await client.get(api, headers={"X-CSRF-Token": ja})).json()["items"]
    client.cookies.set("cb_lang", "en")
    [in_english] = (await client.get(api, headers={"X-CSRF-Token": ja})).json()["items"]
    first = reasons[0]
    assert in_english["reason"] == first.text
    assert in_japanese["reason"] == first.render(translations("ja").gettext)
    assert in_japanese["reason"] != in_english["reason"]
    assert in_english["reason_code"] == first.code
    got = (await client.get(f"/api/v1/history-links/{link_id}")).json()
    assert got["backoff_reason"] == backoff.text
    assert got["backoff_reason_code"] == "history_backoff"
    assert "backoff_reason_msg" not in got


def test_pydantic_errors_render_in_japanese() -> None:
    """pydantic's own wording (English) never reaches a page: each error type a form can
    meet has its catalogue message; a validator's own text is shown as it is."""

    class Form(BaseModel):
        count: int = Field(ge=1)
        ratio: float
        on: bool
        name: str = Field(max_length=3)
        link: AnyUrl
        at: datetime
        kind: Literal["a", "b"]
        items: list[int] = Field(min_length=1)

    with pytest.raises(ValidationError) as raised:
        Form.model_validate(
            {
                "count": "x",
                "ratio": "y",
                "on": "maybe",
                "name": "long",
                "link": "no url",
                "at": "noon",
                "kind": "c",
                "items": [],
            }
        )
    gettext = translations("ja").gettext
    shown = form_errors(raised.value, gettext)
    assert shown == {
        "count": "整数を入力してください。",
        "ratio": "数値を入力してください。",
        "on": "はい・いいえのどちらかを選んでください。",
        "name": "長すぎます。3文字以下にしてください。",
        "link": "正しいURLを入力してください。",
        "at": "正しい日時を入力してください。",
        "kind": "選択肢から選んでください。",
        "items": "件数が足りません。1件以上にしてください。",
    }
