"""Fixtures for IVR tests: tokens, a mocked CRM, IVR and OAuth-account helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from callbridge.ivr.runtime import get_ivr_runtime
from callbridge.kit.time import utcnow
from callbridge.models import OAuthAccount
from tests.helpers import bearer, make_token
from tests.httpx2_mock import mocked_crm

CRM = "https://crm.example.com"


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "admin"))


@pytest.fixture
async def pbx(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "pbx", name="pbx"))


@pytest.fixture
def crm() -> Iterator[respx.MockRouter]:
    with mocked_crm() as router:
        yield router


async def create_ivr(
    client: httpx.AsyncClient, admin: dict[str, str], fields: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/api/v1/ivrs", json=fields, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def simple_ivr(key: str = "lookup", **fields: Any) -> dict[str, Any]:
    """A one-request IVR against the mocked CRM, without authentication."""
    base: dict[str, Any] = {
        "key": key,
        "url": CRM + "/lookup?tel={TEL}",
        "timeout_seconds": 2,
        "responses": [
            {
                "priority": 1,
                "response_code": "200",
                "response_pattern": '/"found":false/',
                "guidance": {"type": "tts", "text": "お電話ありがとうございます。"},
                "transfer": {"kind": "callcenter", "target": "general"},
            },
            {
                "priority": 2,
                "response_code": "200",
                "extract_pattern": '/"name":"(?P<NAME>[^"]*)"/',
                "guidance": {"type": "tts", "text": "{CODE1}様、お電話ありがとうございます。"},
                "transfer": {"kind": "callcenter", "target": "support"},
            },
        ],
    }
    base.update(fields)
    return base


async def add_account(
    app: FastAPI,
    *,
    status: str = "connected",
    instance_url: str = CRM,
    access_token: str | None = "access-token-1",
    detail: str = "",
) -> int:
    """An OAuth account stored as if it had been connected (or had lost its grant)."""
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        account = OAuthAccount(
            name=f"acct-{status}-{utcnow().timestamp()}",
            provider="salesforce",
            grant_type="authorization_code",
            login_url="https://login.salesforce.com",
            client_id="client",
            client_secret_enc=runtime.secrets.encrypt("secret"),
            refresh_token_enc=runtime.secrets.encrypt("refresh"),
            access_token_enc=runtime.secrets.encrypt(access_token) if access_token else None,
            status=status,
            status_detail=detail,
            instance_url=instance_url,
            token_version=1,
        )
        session.add(account)
        await session.commit()
        return int(account.id)


async def flush_logs(app: FastAPI) -> None:
    await get_ivr_runtime(app.state.runtime).writer.flush()
