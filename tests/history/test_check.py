"""設定確認 against the sandbox (DESIGN §11.5): correct, and each problem named."""

from __future__ import annotations

import pytest

from tests.history.conftest import Live, make_link

pytestmark = pytest.mark.e2e


async def check(live: Live, link_id: int, language: str = "ja") -> dict[str, object]:
    response = await live.http.post(
        f"/api/v1/history-links/{link_id}/check",
        headers={**live.admin, "Accept-Language": language},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_correct_setup(connected: Live) -> None:
    live = connected
    link = await make_link(live, field_mappings=[{"field": "CallDisposition", "default": "完了"}])
    assert await check(live, link["id"]) == {
        "ok": True,
        "messages": [{"field": "", "message": "正しく設定されています"}],
    }
    assert (await check(live, link["id"], "en"))["messages"] == [
        {"field": "", "message": "Configured correctly"}
    ]
    # Without a language asked for (a token, no cookie, no Accept-Language): Japanese.
    response = await live.http.post(f"/api/v1/history-links/{link['id']}/check", headers=live.admin)
    assert response.json()["messages"] == [{"field": "", "message": "正しく設定されています"}]


async def test_each_problem_is_named(connected: Live) -> None:
    live = connected
    link = await make_link(
        live,
        phone_numbers=[],
        fallback_record="001000000000000AAA",
        objects=[
            {"api_name": "Contact", "tab_name": "取引先責任者", "key_prefix": "001", "priority": 1},
            {"api_name": "Nothing__c", "tab_name": "無し", "key_prefix": "a0Z", "priority": 2},
        ],
        field_mappings=[{"field": "Missing__c", "default": "x"}],
    )
    task = live.sandbox.state.schema.get("Task")
    assert task is not None
    removed = task.remove_field("B_NaisenFrom__c")
    try:
        result = await check(live, link["id"])
        english = await check(live, link["id"], "en")
    finally:
        assert removed is not None
        task.add_field(removed)
    assert result["ok"] is False
    messages = [(m["field"], m["message"]) for m in result["messages"]]  # type: ignore[attr-defined]
    assert messages == [
        ("phone_numbers", "電話番号設定が不足しています"),
        (
            "objects.0.key_prefix",
            "オブジェクト Contact が不正です (キープレフィックスは 003 で、001 ではありません)",
        ),
        (
            "objects.1.api_name",
            "オブジェクト Nothing__c が不正です (NOT_FOUND: The requested resource does not exist)",
        ),
        ("task_fields", "活動の項目 B_NaisenFrom__c が不正です (存在しないか、参照できません)"),
        ("task_fields", "活動の項目 Missing__c が不正です (存在しないか、参照できません)"),
        (
            "fallback_record",
            # 「<項目>が不正です」 (DESIGN §11.5): no space between the item and が.
            "紐付け先特定不可レコードが不正です (NOT_FOUND: The requested resource does not exist)",
        ),
    ]
    assert [m["message"] for m in english["messages"]][:2] == [  # type: ignore[index]
        "Phone number settings are missing",
        "Object Contact is invalid (its key prefix is 003, not 001)",
    ]
