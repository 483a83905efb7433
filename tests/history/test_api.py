"""/api/v1/history-links: every field of seed 001 §3, validation naming the field, nothing
half-saved, the status semantics of seed 001 (§11.3) one transition at a time."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from callbridge.models import AuditEntry, HistoryLink
from tests.helpers import bearer, make_token

FALLBACK = "0012v000032fR15AAE"


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="admin"))


async def _account(app: FastAPI, provider: str) -> int:
    from callbridge.models.oauth_account import OAuthAccount

    async with app.state.runtime.sessionmaker() as session:
        account = OAuthAccount(
            name=f"acct-{provider}",
            provider=provider,
            grant_type="password",
            client_id="x",
            login_url="https://login.salesforce.com",
        )
        session.add(account)
        await session.commit()
        return int(account.id)


@pytest.fixture
async def account_id(app: FastAPI) -> int:
    return await _account(app, "salesforce")


def body(account_id: int, **fields: Any) -> dict[str, Any]:
    return {"name": "窓口", "oauth_account_id": account_id, "fallback_record": FALLBACK, **fields}


async def links_stored(app: FastAPI) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(HistoryLink)) or 0)


async def test_defaults_and_every_field(
    client: httpx.AsyncClient, admin: dict[str, str], account_id: int
) -> None:
    response = await client.post("/api/v1/history-links", json=body(account_id), headers=admin)
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["status"] == "disabled" and link["api_consent"] is False
    assert link["on_multiple"] == "fallback" and link["on_no_match"] == "fallback"
    assert link["activity"] == "task" and link["language"] == "ja"
    assert [(o["api_name"], o["key_prefix"], o["priority"]) for o in link["objects"]] == [
        ("Contact", "003", 1),
        ("Account", "001", 2),
        ("Lead", "00Q", 3),
    ]
    assert link["search_retries"] == 3 and link["retry_minutes"] == 5.0
    assert link["subject_template"] == (
        "{DIRECTION_LABEL} {TEL} {DATE-YYYY}/{DATE-MM}/{DATE-DD} {DATE-HH}:{DATE-II}"
    )
    assert link["warnings"] == []
    same_name = await client.post("/api/v1/history-links", json=body(account_id), headers=admin)
    assert same_name.status_code == 422
    assert same_name.json()["detail"][0]["loc"] == ["body", "name"]
    assert same_name.json()["detail"][0]["msg"] == "Another history link is named '窓口'"
    assert same_name.json()["detail"][0]["code"] == "name_taken"
    full = body(
        account_id,
        name="第二窓口",
        fallback_record=f"https://ap15.lightning.force.com/lightning/r/Account/{FALLBACK}/view",
        api_consent=True,
        memo="m" * 500,
        on_multiple="all",
        on_no_match="unlinked",
        activity="case_and_task",
        status="paused",
        objects=[
            {"api_name": "Lead", "tab_name": "リード", "key_prefix": "00Q", "priority": 2},
            {"api_name": "Custom__c", "tab_name": "顧客", "key_prefix": "a01", "priority": 1},
        ],
        phone_numbers=["0312345678", "201", "0312345678"],
        search_retries=1,
        retry_minutes=0.05,
        language="en",
        subject_template="{DIRECTION_LABEL} {TEL} {QUEUE}",
        field_mappings=[
            {
                "field": "CustomerType__c",
                "template": "{QUEUE}",
                "default": "一般",
                "conditions": [{"variable": "QUEUE", "equals": "vip", "value": "VIP"}],
            },
            {"field": "Status", "default": "Completed"},
        ],
        owner_from_agent=True,
    )
    response = await client.post("/api/v1/history-links", json=full, headers=admin)
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["fallback_record"] == FALLBACK
    assert link["warnings"] == [
        {
            "field": "fallback_record",
            "message": f"The URL was reduced to its record id {FALLBACK}.",
            "position": None,
            "code": "history_link_url_reduced",
        }
    ]
    assert [o["api_name"] for o in link["objects"]] == ["Custom__c", "Lead"]
    assert link["phone_numbers"] == ["0312345678", "201"]
    assert link["field_mappings"][0]["conditions"][0]["value"] == "VIP"
    got = await client.get(f"/api/v1/history-links/{link['id']}", headers=admin)
    assert got.json()["memo"] == "m" * 500 and got.json()["owner_from_agent"] is True
    listed = await client.get("/api/v1/history-links", headers=admin)
    assert listed.json()["total"] == 2


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        (
            {"fallback_record": "https://ap15.lightning.force.com/lightning/page/home"},
            ["body", "fallback_record"],
            "No Salesforce record id found",
        ),
        (
            {"objects": [{"api_name": "Contact", "key_prefix": "0031", "priority": 1}]},
            ["body", "objects", "0", "key_prefix"],
            "The key prefix must be exactly 3 letters or digits (got '0031')",
        ),
        (
            {"field_mappings": [{"field": "Colour", "default": "x"}]},
            ["body", "field_mappings", "0", "field"],
            "Colour is not a Task field",
        ),
        (
            {"status": "enabled"},
            ["body", "api_consent"],
            "API consent is required before the status can be 'enabled'",
        ),
        (
            {"memo": "x" * 501},
            ["body", "memo"],
            "String should have at most 500 characters",
        ),
        (
            {"subject_template": "{TEL} MD5({ID}"},
            ["body", "subject_template"],
            "MD5(",
        ),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    account_id: int,
    fields: dict[str, Any],
    loc: list[str],
    message: str,
) -> None:
    response = await client.post(
        "/api/v1/history-links", json=body(account_id, **fields), headers=admin
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [loc]
    assert message in detail[0]["msg"]
    assert await links_stored(app) == 0


async def test_an_account_that_is_not_salesforce(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    generic = await _account(app, "generic")
    response = await client.post("/api/v1/history-links", json=body(generic), headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "oauth_account_id"]
    assert "is not a Salesforce account" in response.json()["detail"][0]["msg"]
    assert response.json()["detail"][0]["code"] == "history_link_not_salesforce"
    missing = await client.post("/api/v1/history-links", json=body(9999), headers=admin)
    assert missing.json()["detail"][0]["msg"] == "OAuth account 9999 does not exist"
    assert await links_stored(app) == 0


async def test_a_bad_patch_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], account_id: int
) -> None:
    created = (
        await client.post("/api/v1/history-links", json=body(account_id), headers=admin)
    ).json()
    response = await client.patch(
        f"/api/v1/history-links/{created['id']}",
        json={"name": "新しい名前", "status": "enabled", "phone_numbers": ["1"]},
        headers=admin,
    )
    assert response.status_code == 422
    got = (await client.get(f"/api/v1/history-links/{created['id']}", headers=admin)).json()
    assert got["name"] == "窓口" and got["status"] == "disabled" and got["phone_numbers"] == []


async def test_status_changes_are_audited(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], account_id: int
) -> None:
    created = (
        await client.post(
            "/api/v1/history-links", json=body(account_id, api_consent=True), headers=admin
        )
    ).json()
    for status in ("enabled", "paused", "disabled", "enabled"):
        answer = await client.patch(
            f"/api/v1/history-links/{created['id']}", json={"status": status}, headers=admin
        )
        assert answer.status_code == 200, answer.text
    async with app.state.runtime.sessionmaker() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "history_link.status")
                .order_by(AuditEntry.id)
            )
        )
    assert [(e.details["old"], e.details["new"]) for e in entries] == [
        ("disabled", "enabled"),
        ("enabled", "paused"),
        ("paused", "disabled"),
        ("disabled", "enabled"),
    ]
    deleted = await client.delete(f"/api/v1/history-links/{created['id']}", headers=admin)
    assert deleted.status_code == 204
    assert await links_stored(app) == 0
