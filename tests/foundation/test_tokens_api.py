from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from callbridge.models import ApiToken
from tests.helpers import bearer, make_token


async def test_token_is_shown_once_and_stored_hashed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = bearer(await make_token(app, scope="admin"))
    created = await client.post(
        "/api/v1/tokens", json={"name": "PBX 本社", "scope": "pbx"}, headers=headers
    )
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("cbp_") and len(raw) > 40
    listed = (await client.get("/api/v1/tokens", headers=headers)).json()
    assert listed["total"] == 2
    assert all("token" not in item for item in listed["items"])
    assert raw not in str(listed)
    async with app.state.runtime.sessionmaker() as session:
        stored = (await session.scalars(select(ApiToken.token_hash))).all()
    assert raw not in stored


async def test_revoked_token_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app, scope="admin"))
    created = (
        await client.post(
            "/api/v1/tokens", json={"name": "temp", "scope": "admin"}, headers=headers
        )
    ).json()
    temp = bearer(created["token"])
    assert (await client.get("/api/v1/tokens", headers=temp)).status_code == 200
    assert (
        await client.delete(f"/api/v1/tokens/{created['id']}", headers=headers)
    ).status_code == 204
    assert (await client.get("/api/v1/tokens", headers=temp)).status_code == 401


async def test_bad_token_payloads(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app, scope="admin"))
    response = await client.post(
        "/api/v1/tokens", json={"name": "", "scope": "root"}, headers=headers
    )
    assert response.status_code == 422
    assert {e["loc"][-1] for e in response.json()["detail"]} == {"name", "scope"}
    not_json = await client.post(
        "/api/v1/tokens", content=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
