"""Agents (issue 20 §1): the extension in the API, the UI and the CLI; an agent who signs
in lands on the agent console."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from fastapi import FastAPI

from tests.foundation.test_cli import _run
from tests.helpers import bearer, csrf_from, errors_by_field, make_token, make_user, sign_in


async def test_extension_and_salesforce_user_id_in_the_api(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = bearer(await make_token(app, scope="admin"))
    created = await client.post(
        "/api/v1/users",
        json={
            "username": "sato",
            "password": "s3cret-pass",
            "role": "agent",
            "extension": "2001",
            "salesforce_user_id": "005000000000001AAA",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["extension"] == "2001"
    assert body["salesforce_user_id"] == "005000000000001AAA"

    patched = await client.patch(
        f"/api/v1/users/{body['id']}", json={"extension": "2002"}, headers=headers
    )
    assert patched.json()["extension"] == "2002"
    cleared = await client.patch(
        f"/api/v1/users/{body['id']}", json={"extension": ""}, headers=headers
    )
    assert cleared.json()["extension"] is None

    bad = await client.post(
        "/api/v1/users",
        json={"username": "kato", "password": "s3cret-pass", "extension": "20 01"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert [tuple(e["loc"]) for e in bad.json()["detail"]] == [("body", "extension")]


async def test_agent_lands_on_the_console(app: FastAPI, client: httpx.AsyncClient) -> None:
    await make_user(app, "agent1", role="agent", extension="2001")
    signed_in = await sign_in(client, "agent1")
    assert signed_in.status_code == 303
    landing = await client.get(signed_in.headers["location"])
    assert landing.status_code == 303 and landing.headers["location"] == "/agent"
    console = await client.get("/agent")
    assert console.status_code == 200
    assert "Calls ringing at extension 2001 appear here." in console.text


async def test_agent_without_extension_is_told_to_ask_for_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app, "agent2", role="agent")
    await sign_in(client, "agent2")
    console = await client.get("/agent", headers={"Accept-Language": "ja"})
    assert "内線番号が設定されていません" in console.text


async def test_user_form_saves_extension_and_salesforce_user_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    await sign_in(client)
    page = await client.get("/users/new")
    assert 'name="extension"' in page.text and 'name="salesforce_user_id"' in page.text
    form = {
        "csrf_token": csrf_from(page.text),
        "username": "ito",
        "password": "long enough",
        "role": "agent",
        "extension": "3001",
        "salesforce_user_id": "not-an-id",
    }
    refused = await client.post("/users/new", data=form)
    assert refused.status_code == 422
    assert list(errors_by_field(refused.text)) == ["salesforce_user_id"]
    saved = await client.post("/users/new", data={**form, "salesforce_user_id": "005000000000002"})
    assert saved.status_code == 303
    listing = await client.get("/users")
    assert "<td>3001</td>" in listing.text


def test_cli_creates_an_agent_with_an_extension(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    args = ["users", "create", "--username", "agent1", "--password", "long enough"]
    bad = _run([*args, "--extension", "20 01"], data_dir)
    assert bad.returncode == 1
    assert bad.stderr.startswith("callbridge: --extension:")
    ok = _run([*args, "--extension", "2001", "--salesforce-user-id", "005000000000001"], data_dir)
    assert ok.returncode == 0, ok.stderr
    with sqlite3.connect(data_dir / "callbridge.db") as db:
        row = db.execute(
            "SELECT role, extension, salesforce_user_id FROM user WHERE username = 'agent1'"
        ).fetchone()
    assert row == ("agent", "2001", "005000000000001")


async def test_call_center_definition_needs_an_https_public_url(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await make_user(app)
    await sign_in(client)
    refused = await client.get("/agent/callcenter.xml")
    assert refused.status_code == 409
    assert "Set an https public URL in the settings first" in refused.text
    headers = bearer(await make_token(app))
    patched = await client.patch(
        "/api/v1/settings", json={"public_url": "https://cti.example.jp/"}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    xml = await client.get("/agent/callcenter.xml")
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    assert (
        '<item sortOrder="2" name="reqAdapterUrl" label="CTI Adapter URL">'
        "https://cti.example.jp/agent/opencti</item>"
    ) in xml.text
