"""MONITOR_LINK({ID}) in a rule: the playback link as agents get it, signed when
recordings are played through signed links."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI

from tests.helpers import bearer, make_token

BODY = '{"Origin": "Phone","Description": "MONITOR_LINK({ID})"}'


async def _expanded_description(client: httpx.AsyncClient, admin: dict[str, str]) -> str:
    rule = await client.post(
        "/api/v1/call-actions",
        headers=admin,
        json={
            "event": "disconnect",
            "order": 1,
            "auth_type": "none",
            "url": "https://crm.example.com/cases/1",
            "method": "PATCH",
            "headers": "Content-Type: application/json",
            "body": BODY,
        },
    )
    assert rule.status_code == 201, rule.text
    result = await client.post(
        f"/api/v1/call-actions/{rule.json()['id']}/test",
        headers=admin,
        json={"variables": {"ID": "1700000000.42"}},
    )
    assert result.status_code == 200, result.text
    return str(json.loads(result.json()["request"]["body"])["Description"])


async def test_plain_link_in_the_admin_mode(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = bearer(await make_token(app, scope="admin"))
    await client.patch(
        "/api/v1/settings",
        headers=admin,
        json={"public_url": "https://cti.example.jp/", "playback_auth": "admin"},
    )
    link = await _expanded_description(client, admin)
    assert link == "https://cti.example.jp/monitor_link/1700000000.42"


async def test_signed_link_opens_the_recording_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = bearer(await make_token(app, scope="admin"))
    await client.patch(
        "/api/v1/settings",
        headers=admin,
        json={"public_url": "https://cti.example.jp/", "playback_auth": "signed"},
    )
    link = await _expanded_description(client, admin)
    parts = urlsplit(link)
    assert parts.path == "/monitor_link/1700000000.42"
    assert set(parse_qs(parts.query)) == {"exp", "kid", "sig"}
    # The link is accepted without an account (no recording yet: the 404 page, not a
    # sign-in redirect or a 403).
    page = await client.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 404
