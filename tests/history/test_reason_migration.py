"""History rows and links stored while reasons were English text are shown in the
reader's language after upgrading: the sentences the worker wrote become their messages,
Salesforce's own words stay verbatim, and the English the API answered is unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import create_async_engine

from callbridge.app import create_app
from callbridge.db.migrate import alembic_config, upgrade_to_head
from callbridge.settings import Settings
from tests.conftest import TEST_SECRET, reset_postgres_schema
from tests.foundation.test_japanese_pages import english_sentences
from tests.helpers import bearer, make_token, make_user, sign_in

# The head before reasons were stored as catalogue messages.
BEFORE = "a4d82c6f1e39"
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)

RECONNECT = (
    "OAuth account 'sf-main' needs to be reconnected: the provider refused its refresh "
    "(invalid_grant). An administrator must click Connect on the OAuth accounts page"
)
# (state, the English reason the old worker stored, its code, the Japanese page's text)
OLD_REASONS: list[tuple[str, str, str, str]] = [
    (
        "synced",
        "2 Contact records matched: linked to the fallback record",
        "history_multiple",
        "Contact のレコードが 2 件一致したため、紐付け先特定不可レコードに紐付けました",
    ),
    (
        "no_match",
        "no record matched; nothing is created (on no match: skip)",
        "history_no_match",
        "一致するレコードがありません。活動は作成しません(レコードが一致しない場合: 作成しない)",
    ),
    (
        "searching",
        "no record matched yet; searching again",
        "history_searching",
        "まだ一致するレコードがありません。再検索します",
    ),
    (
        "failed",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: この番号の活動は登録できません",
        "history_salesforce_error",
        "Salesforce のエラー: FIELD_CUSTOM_VALIDATION_EXCEPTION: この番号の活動は登録できません",
    ),
    (
        "failed",
        "search failed: INVALID_FIELD: No such column 'Fax2' on sobject of type Contact",
        "history_search_failed",
        "検索に失敗しました: INVALID_FIELD: No such column 'Fax2' on sobject of type Contact",
    ),
    (
        "failed",
        "Case: REQUIRED_FIELD_MISSING: Required fields are missing: [Type]",
        "history_case_error",
        "ケース: REQUIRED_FIELD_MISSING: Required fields are missing: [Type]",
    ),
    (
        "waiting",
        "Salesforce unavailable, retried later: outcome unknown, checked before resending: "
        "the deadline passed before the CRM answered",
        "history_backoff",
        "Salesforce を利用できないため、後で再試行します: 結果が不明です。再送の前に "
        "Salesforce に確認します: the deadline passed before the CRM answered",
    ),
    (
        "waiting",
        f"waiting for the OAuth account: {RECONNECT}",
        "history_backoff",
        f"OAuth アカウントの再接続を待っています: {RECONNECT}",
    ),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres_schema(url)
    try:
        yield url
    finally:
        # The other tests of the session expect the schema at head.
        reset_postgres_schema(url)
        upgrade_to_head(url)


def _link(link_id: int, backoff_reason: str | None) -> dict[str, Any]:
    return {
        "id": link_id,
        "name": f"link {link_id}",
        "oauth_account_id": 99,
        "fallback_record": "",
        "api_consent": True,
        "memo": "",
        "on_multiple": "fallback",
        "on_no_match": "skip",
        "activity": "task",
        "status": "enabled",
        "objects": [],
        "phone_numbers": ["0501234567"],
        "search_retries": 3,
        "retry_minutes": 5.0,
        "language": "ja",
        "subject_template": "",
        "field_mappings": [],
        "owner_from_agent": False,
        "backoff_until": None,
        "backoff_count": 1 if backoff_reason else 0,
        "backoff_reason": backoff_reason,
        "created_at": NOW,
        "updated_at": NOW,
    }


def _row(index: int, state: str, reason: str) -> dict[str, Any]:
    return {
        "id": index + 1,
        "link_id": 1,
        "call_pk": index + 1,
        "call_id": f"old-{index}",
        "unique_id": None,
        "tel": "0312345678",
        "direction": "inbound",
        "phone_from": "0312345678",
        "phone_to": "0501234567",
        "started_at": NOW,
        "ended_at": NOW,
        "duration_seconds": 0,
        "values": {},
        "notes_dirty": False,
        "state": state,
        "reason": reason,
        "retry_count": 1,
        "due_at": NOW,
        "attempts": 0,
        "task_ids": [],
        "created_at": NOW,
    }


def _call(index: int) -> dict[str, Any]:
    return {
        "id": index + 1,
        "call_id": f"old-{index}",
        "tel": "0312345678",
        "called": "0501234567",
        "direction": "inbound",
        "started_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "event_count": 0,
        "error_count": 0,
    }


async def _store_old_rows(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:

            def insert(sync: Any) -> None:
                metadata = MetaData()
                table = {
                    name: Table(name, metadata, autoload_with=sync)
                    for name in ("call", "history_link", "history_row")
                }
                sync.execute(
                    table["history_link"].insert(),
                    [_link(1, f"waiting for the OAuth account: {RECONNECT}"), _link(2, None)],
                )
                sync.execute(table["call"].insert(), [_call(i) for i in range(len(OLD_REASONS))])
                sync.execute(
                    table["history_row"].insert(),
                    [
                        _row(i, state, reason)
                        for i, (state, reason, _c, _j) in enumerate(OLD_REASONS)
                    ],
                )

            await connection.run_sync(insert)
    finally:
        await engine.dispose()


async def _read(url: str, tmp_path: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        secret_key=TEST_SECRET,
        public_url=None,
        history_worker=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    seen: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        headers = bearer(await make_token(app))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = "/api/v1/history-links/1/histories?limit=100"
            for language in ("en", "ja"):
                answer = await client.get(api, headers={**headers, "Accept-Language": language})
                seen[f"rows_{language}"] = answer.json()["items"]
                link = await client.get(
                    "/api/v1/history-links/1", headers={**headers, "Accept-Language": language}
                )
                seen[f"link_{language}"] = link.json()
            await make_user(app)
            await sign_in(client)
            client.cookies.set("cb_lang", "ja")
            seen["page"] = (await client.get("/history-links/1/histories")).text
            seen["list"] = (await client.get("/history-links")).text
    return seen


def test_old_english_reasons_are_shown_in_the_readers_language(
    old_database: str, tmp_path: Path
) -> None:
    command.upgrade(alembic_config(old_database), BEFORE)
    asyncio.run(_store_old_rows(old_database))
    upgrade_to_head(old_database)
    seen = asyncio.run(_read(old_database, tmp_path))

    english = {row["call_id"]: row for row in seen["rows_en"]}
    japanese = {row["call_id"]: row for row in seen["rows_ja"]}
    for index, (_state, reason, code, shown) in enumerate(OLD_REASONS):
        call_id = f"old-{index}"
        # The English the API answered before, byte for byte; the code is new.
        assert english[call_id]["reason"] == reason
        assert english[call_id]["reason_code"] == code
        assert japanese[call_id]["reason"] == shown
        assert japanese[call_id]["reason_code"] == code
    assert seen["link_en"]["backoff_reason"] == f"waiting for the OAuth account: {RECONNECT}"
    assert (
        seen["link_ja"]["backoff_reason"] == f"OAuth アカウントの再接続を待っています: {RECONNECT}"
    )
    assert seen["link_ja"]["backoff_reason_code"] == "history_backoff"
    # The Japanese pages: Salesforce's (and an old failure's) own words verbatim in a
    # <code>, no other English sentence.
    for page in (seen["page"], seen["list"]):
        assert 'lang="ja"' in page
        assert english_sentences(page) == []
    assert (
        "検索に失敗しました: <code>INVALID_FIELD: No such column &#x27;Fax2&#x27; on sobject of "
        "type Contact</code>"
    ) in seen["page"]
    assert "まだ一致するレコードがありません。再検索します" in seen["page"]
    assert "OAuth アカウントの再接続を待っています: <code>" in seen["list"]
