from __future__ import annotations

import httpx

from tests.helpers import bearer, make_token, make_user, sign_in


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200


async def test_sign_in_and_dashboard(app, client: httpx.AsyncClient) -> None:
    await make_user(app)
    response = await sign_in(client)
    assert response.status_code == 303
    page = await client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.text


async def test_token_api(app, client: httpx.AsyncClient) -> None:
    token = await make_token(app)
    response = await client.post(
        "/api/v1/tokens", json={"name": "pbx", "scope": "pbx"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
