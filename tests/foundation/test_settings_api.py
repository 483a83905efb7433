from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.helpers import bearer, make_token


async def test_defaults_then_changes(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app, scope="admin"))
    current = (await client.get("/api/v1/settings", headers=headers)).json()
    assert current == {
        "playback_auth": "admin",
        "retention_days": 90,
        "public_url": None,
        "timezone": "Asia/Tokyo",
        "max_recording_mb": 200,
    }
    changed = await client.patch(
        "/api/v1/settings",
        json={
            "public_url": "https://cti.example.co.jp",
            "retention_days": 30,
            "playback_auth": "url",
        },
        headers=headers,
    )
    assert changed.status_code == 200
    assert changed.json()["public_url"] == "https://cti.example.co.jp/"
    assert (await client.get("/api/v1/settings", headers=headers)).json()["retention_days"] == 30
    # null restores the default; public_url null clears it
    restored = await client.patch(
        "/api/v1/settings", json={"retention_days": None, "public_url": None}, headers=headers
    )
    assert restored.json()["retention_days"] == 90
    assert restored.json()["public_url"] is None


async def test_bad_settings_name_the_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(app, scope="admin"))
    response = await client.patch(
        "/api/v1/settings",
        json={
            "timezone": "Mars/Olympus",
            "retention_days": 0,
            "public_url": "ftp://x",
            "playback_auth": "none",
            "colour": "red",
        },
        headers=headers,
    )
    assert response.status_code == 422
    fields = {e["loc"][-1] for e in response.json()["detail"]}
    assert fields == {"timezone", "retention_days", "public_url", "playback_auth", "colour"}
    # nothing was changed
    assert (await client.get("/api/v1/settings", headers=headers)).json()["retention_days"] == 90


async def test_public_url_banner(app: FastAPI, client: httpx.AsyncClient) -> None:
    from tests.helpers import make_user, sign_in

    await make_user(app)
    await sign_in(client)
    assert "The public URL is not set" in (await client.get("/")).text
    headers = bearer(await make_token(app, scope="admin"))
    await client.patch(
        "/api/v1/settings", json={"public_url": "https://cti.example.jp/"}, headers=headers
    )
    assert "The public URL is not set" not in (await client.get("/")).text
