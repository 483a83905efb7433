from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.helpers import bearer, make_token


async def _admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="admin"))


async def test_user_crud(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await _admin(app)
    created = await client.post(
        "/api/v1/users",
        json={
            "username": "sato",
            "password": "s3cret-pass",
            "role": "agent",
            "agent_id": "1001",
            "display_name": "佐藤 花子",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["username"] == "sato" and body["agent_id"] == "1001"
    assert "password" not in body and "password_hash" not in body
    user_id = body["id"]

    listed = (await client.get("/api/v1/users?limit=10", headers=headers)).json()
    assert listed["total"] == 1 and listed["items"][0]["display_name"] == "佐藤 花子"

    patched = await client.patch(
        f"/api/v1/users/{user_id}", json={"role": "supervisor"}, headers=headers
    )
    assert patched.json()["role"] == "supervisor"
    assert patched.json()["agent_id"] == "1001"

    assert (await client.delete(f"/api/v1/users/{user_id}", headers=headers)).status_code == 204
    assert (await client.get(f"/api/v1/users/{user_id}", headers=headers)).status_code == 404


async def test_duplicate_username_is_a_409(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await _admin(app)
    payload = {"username": "Tanaka", "password": "long enough", "role": "agent"}
    assert (await client.post("/api/v1/users", json=payload, headers=headers)).status_code == 201
    again = await client.post(
        "/api/v1/users", json={**payload, "username": "tanaka"}, headers=headers
    )
    assert again.status_code == 409
    assert "already taken" in again.json()["detail"]


async def test_validation_names_every_bad_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await _admin(app)
    response = await client.post(
        "/api/v1/users",
        json={"username": "a b", "password": "short", "role": "king"},
        headers=headers,
    )
    assert response.status_code == 422
    fields = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert fields == {("body", "username"), ("body", "password"), ("body", "role")}


async def test_the_last_admin_cannot_be_removed(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await _admin(app)
    admin = (
        await client.post(
            "/api/v1/users",
            json={"username": "root", "password": "long enough", "role": "admin"},
            headers=headers,
        )
    ).json()
    demoted = await client.patch(
        f"/api/v1/users/{admin['id']}", json={"role": "agent"}, headers=headers
    )
    assert demoted.status_code == 422
    assert demoted.json()["detail"][0]["loc"] == ["body", "role"]
    assert (await client.delete(f"/api/v1/users/{admin['id']}", headers=headers)).status_code == 422


async def test_list_pagination_bounds(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = await _admin(app)
    assert (await client.get("/api/v1/users?limit=501", headers=headers)).status_code == 422
    assert (await client.get("/api/v1/users?offset=-1", headers=headers)).status_code == 422
