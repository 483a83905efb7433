"""Rules and IVRs stored before the request definition became one package (one set of
columns, schemas and compile for call actions, the IVR and its steps) are read, shown and
run the same after upgrading: nothing is lost, the secrets still decrypt."""

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
from callbridge.kit.crypto import SecretBox
from callbridge.settings import Settings
from tests.conftest import TEST_SECRET, reset_postgres_schema
from tests.helpers import bearer, make_token

# The head when the request definition package arrived.
BEFORE = "db0f4178d018"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
BOX = SecretBox(TEST_SECRET)


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


RULE: dict[str, Any] = {
    "id": 1,
    "event": "incoming",
    "execution_order": 1,
    "enabled": True,
    "condition_code": "{TEL}",
    "condition_pattern": "/^0/",
    "auth_type": "basic",
    "oauth_account_id": None,
    "basic_username": "crm-user",
    "basic_password_encrypted": BOX.encrypt("s3cret-pass"),
    "bearer_token_encrypted": None,
    "url": "https://crm.example/api/contacts?phone={TEL}",
    "method": "POST",
    "headers": "Content-Type: application/json\nX-Source: callbridge",
    "body": '{"phone": "{TEL}"}',
    "timeout_seconds": 7,
    "extract_pattern": '/"id":"(?P<CONTACT_ID>[^"]*)"/',
    "json_extractions": "OWNER = $.owner",
    "retry_non_idempotent": True,
    "stop_on_failure": True,
    "memo": "find the contact",
    "created_at": NOW,
    "updated_at": NOW,
}
IVR: dict[str, Any] = {
    "id": 1,
    "key": "front",
    "name": "Front desk",
    "revision": 3,
    "auth_type": "bearer",
    "oauth_account_id": None,
    "basic_username": "",
    "basic_password_encrypted": None,
    "bearer_token_encrypted": BOX.encrypt("tok-12345"),
    "url": "https://crm.example/api/accounts?phone={TEL}&code={DIGITS}",
    "method": "GET",
    "headers": "",
    "body": "",
    "timeout_seconds": 2.5,
    "extract_pattern": "ACCOUNT_ID = $.records[0].Id",
    "max_digits": 4,
    "digits_pattern": "/^[0-9]{4}$/",
    "pre_guidance": {"type": "tts", "text": "Please wait"},
    "on_error": {"guidance": None, "transfer": {"kind": "callcenter", "target": "100"}},
    "on_input_invalid": None,
    "on_no_match": None,
    "pbx_variables": ["BRANCH"],
    "memo": "",
    "created_at": NOW,
    "updated_at": NOW,
}
STEP: dict[str, Any] = {
    "id": 1,
    "ivr_id": 1,
    "position": 0,
    "name": "owner",
    "auth_type": None,
    "oauth_account_id": None,
    "url": "https://crm.example/api/owners/{RESPONSE_ACCOUNT_ID}?branch={BRANCH}",
    "method": "GET",
    "headers": "Accept: application/json",
    "body": "",
    "extract_pattern": "OWNER_EXT = $.ext",
    "condition_code": "{RESPONSE_ACCOUNT_ID}",
    "condition_pattern": "",
}
RESPONSE: dict[str, Any] = {
    "id": 1,
    "ivr_id": 1,
    "priority": 1,
    "response_code": "2xx",
    "response_pattern": "",
    "extract_pattern": "",
    "condition_code": "",
    "condition_pattern": "",
    "step": None,
    "guidance": {"type": "tts", "text": "Connecting you"},
    "transfer": {"kind": "extension", "target": "{RESPONSE_OWNER_EXT}"},
    "memo": "",
}


async def _store_old_rows(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:

            def insert(sync: Any) -> None:
                metadata = MetaData()
                for name, row in (
                    ("call_action", RULE),
                    ("ivr", IVR),
                    ("ivr_step", STEP),
                    ("ivr_response", RESPONSE),
                ):
                    sync.execute(Table(name, metadata, autoload_with=sync).insert(), [row])

            await connection.run_sync(insert)
    finally:
        await engine.dispose()


async def _read_through_the_api(url: str, tmp_path: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        secret_key=TEST_SECRET,
        public_url=None,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        headers = bearer(await make_token(app))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            rule = (await client.get("/api/v1/call-actions/1", headers=headers)).json()
            rule_test = (
                await client.post(
                    "/api/v1/call-actions/1/test",
                    headers=headers,
                    json={"variables": {"TEL": "0312345678"}, "send": False},
                )
            ).json()
            ivr = (await client.get("/api/v1/ivrs/front", headers=headers)).json()
            ivr_test = (
                await client.post(
                    "/api/v1/ivrs/front/test",
                    headers=headers,
                    json={"tel": "0312345678", "digits": "1234", "send": False},
                )
            ).json()
    return {"rule": rule, "rule_test": rule_test, "ivr": ivr, "ivr_test": ivr_test}


def test_rules_and_ivrs_made_before_read_and_run_the_same(
    old_database: str, tmp_path: Path
) -> None:
    command.upgrade(alembic_config(old_database), BEFORE)
    asyncio.run(_store_old_rows(old_database))
    upgrade_to_head(old_database)
    seen = asyncio.run(_read_through_the_api(old_database, tmp_path))

    rule = seen["rule"]
    for name in (
        "event",
        "enabled",
        "condition_code",
        "condition_pattern",
        "auth_type",
        "basic_username",
        "url",
        "method",
        "headers",
        "body",
        "timeout_seconds",
        "extract_pattern",
        "json_extractions",
        "retry_non_idempotent",
        "stop_on_failure",
        "memo",
    ):
        assert rule[name] == RULE[name], name
    assert rule["order"] == 1
    assert rule["basic_password_set"] is True
    assert rule["bearer_token_set"] is False
    assert rule["produces"] == ["RESPONSE_CONTACT_ID", "RESPONSE_OWNER"]
    assert rule["warnings"] == []
    # The stored password still decrypts (else the test answers a "config" error) and the
    # request carries Basic credentials.
    request = seen["rule_test"]["request"]
    assert seen["rule_test"]["error"] is None
    assert request["url"] == "https://crm.example/api/contacts?phone=0312345678"
    assert request["body"] == '{"phone": "0312345678"}'
    assert request["headers"]["Authorization"] == "Basic [redacted]"

    ivr = seen["ivr"]
    for name in (
        "key",
        "name",
        "revision",
        "auth_type",
        "url",
        "method",
        "timeout_seconds",
        "extract_pattern",
        "max_digits",
        "digits_pattern",
        "pre_guidance",
        "on_error",
        "pbx_variables",
    ):
        assert ivr[name] == IVR[name], name
    assert ivr["bearer_token_set"] is True
    assert ivr["basic_password_set"] is False
    step = ivr["steps"][0]
    assert {k: step[k] for k in step if k != "id"} == {
        k: STEP[k] for k in STEP if k not in ("id", "ivr_id", "position")
    }
    response = ivr["responses"][0]
    assert {k: response[k] for k in response if k != "id"} == {
        k: RESPONSE[k] for k in RESPONSE if k not in ("id", "ivr_id")
    }
    assert ivr["produces"] == ["RESPONSE_ACCOUNT_ID", "RESPONSE_OWNER_EXT"]
    assert ivr["warnings"] == []
    first = seen["ivr_test"]["request"]
    assert first["url"] == "https://crm.example/api/accounts?phone=0312345678&code=1234"
