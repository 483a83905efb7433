"""Ids are never handed out twice, on either database: a rule that names a deleted OAuth
account must not run with the account created after it, a stale API client must not
delete someone else's token, an agent's permissions must not move to a new user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from callbridge.db.migrate import alembic_config
from tests.helpers import bearer, make_token


@pytest.fixture
async def admin(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "admin"))


def _account(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "generic",
        "grant_type": "client_credentials",
        "token_url": "https://auth.example.com/token",
        "client_id": "client",
        "client_secret": "secret",
    }


def _rule(url: str, **fields: Any) -> dict[str, Any]:
    return {"event": "incoming", "url": url, **fields}


def _ivr(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "url": "https://crm.example.com/lookup?tel={TEL}",
        "responses": [{"priority": 1, "transfer": {"kind": "hangup"}}],
        "steps": [{"name": "more", "url": "https://crm.example.com/more"}],
    }


async def _create(client: httpx.AsyncClient, admin: dict[str, str], path: str, body: Any) -> Any:
    response = await client.post(path, json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def _delete(client: httpx.AsyncClient, admin: dict[str, str], path: str) -> None:
    response = await client.delete(path, headers=admin)
    assert response.status_code in (200, 204), response.text


async def test_a_deleted_oauth_accounts_id_is_never_reused(client, admin) -> None:
    base = "/api/v1/oauth-accounts"
    first = await _create(client, admin, base, _account("first"))
    last = await _create(client, admin, base, _account("last"))
    rule = await _create(
        client,
        admin,
        "/api/v1/call-actions",
        _rule("https://crm.example.com/x", auth_type="oauth", oauth_account_id=last["id"]),
    )
    await _delete(client, admin, f"{base}/{last['id']}")
    new = await _create(client, admin, base, _account("new"))
    assert new["id"] > last["id"] > first["id"]
    # The rule still names the deleted account, which stays absent.
    named = (await client.get(f"/api/v1/call-actions/{rule['id']}", headers=admin)).json()
    assert named["oauth_account_id"] == last["id"]
    assert (await client.get(f"{base}/{last['id']}", headers=admin)).status_code == 404


async def test_a_deleted_rules_id_is_never_reused(client, admin) -> None:
    base = "/api/v1/call-actions"
    await _create(client, admin, base, _rule("https://crm.example.com/a"))
    last = await _create(client, admin, base, _rule("https://crm.example.com/b"))
    await _delete(client, admin, f"{base}/{last['id']}")
    new = await _create(client, admin, base, _rule("https://crm.example.com/c"))
    assert new["id"] > last["id"]


async def test_a_deleted_ivrs_ids_are_never_reused(app, client, admin) -> None:
    await _create(client, admin, "/api/v1/ivrs", _ivr("first"))
    await _create(client, admin, "/api/v1/ivrs", _ivr("last"))
    before = await _ids(app)
    await _delete(client, admin, "/api/v1/ivrs/last")
    await _create(client, admin, "/api/v1/ivrs", _ivr("new"))
    after = await _ids(app)
    # The IVR, its response settings and its steps all get ids never seen before.
    for table in ("ivr", "ivr_response", "ivr_step"):
        assert min(after[table] - before[table]) > max(before[table]), table


async def _ids(app: FastAPI) -> dict[str, set[int]]:
    async with app.state.runtime.sessionmaker() as session:
        return {
            table: set((await session.execute(text(f"SELECT id FROM {table}"))).scalars())
            for table in ("ivr", "ivr_response", "ivr_step")
        }


async def test_a_deleted_users_id_is_never_reused(client, admin) -> None:
    base = "/api/v1/users"
    body = {"password": "correct horse", "role": "agent"}
    await _create(client, admin, base, {"username": "first", "agent_id": "1001", **body})
    last = await _create(client, admin, base, {"username": "last", "agent_id": "1002", **body})
    await _delete(client, admin, f"{base}/{last['id']}")
    new = await _create(client, admin, base, {"username": "new", **body})
    assert new["id"] > last["id"]
    assert (await client.get(f"{base}/{last['id']}", headers=admin)).status_code == 404


async def test_a_revoked_tokens_id_is_never_reused(client, admin) -> None:
    base = "/api/v1/tokens"
    last = await _create(client, admin, base, {"name": "pbx", "scope": "pbx"})
    await _delete(client, admin, f"{base}/{last['id']}")
    new = await _create(client, admin, base, {"name": "pbx again", "scope": "pbx"})
    assert new["id"] > last["id"]
    # A client repeating its DELETE of the old id does not revoke the new token.
    assert (await client.delete(f"{base}/{last['id']}", headers=admin)).status_code == 404
    assert (await client.get(f"{base}/{new['id']}", headers=admin)).status_code == 200


def test_the_migration_keeps_every_row_and_never_reuses_a_referenced_id(tmp_path: Path) -> None:
    """An existing SQLite database: the tables are rebuilt with their rows (and the rows
    that refer to them, which a cascading drop would have deleted), and the sequences
    start above the ids that rules and executions still name."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "5b7d2e91c4a0")
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    now = "'2026-01-01 00:00:00'"
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO user (id, username, password_hash, role, display_name, is_active, "
                f"created_at, updated_at) VALUES (4, 'agent', 'x', 'agent', '', 1, {now}, {now})"
            )
        )
        db.execute(
            text(
                "INSERT INTO user_session (token_hash, user_id, created_at, expires_at, "
                f"last_seen_at) VALUES ('h', 4, {now}, {now}, {now})"
            )
        )
        db.execute(
            text(
                "INSERT INTO oauth_account (id, name, provider, grant_type, client_id, scope, "
                "use_pkce, status, status_detail, token_type, token_version, created_at, "
                f"updated_at) VALUES (2, 'sf', 'salesforce', 'password', 'c', '', 0, "
                f"'connected', '', 'Bearer', 1, {now}, {now})"
            )
        )
        db.execute(
            text(
                "INSERT INTO ivr (id, key, name, revision, auth_type, oauth_account_id, "
                "basic_username, url, method, headers, body, timeout_seconds, extract_pattern, "
                "max_digits, digits_pattern, pbx_variables, memo, created_at, updated_at) "
                "VALUES (3, 'lookup', '', 1, 'oauth', 9, '', 'https://crm', 'GET', '', '', 10, "
                f"'', 0, '', '[]', '', {now}, {now})"
            )
        )
        db.execute(
            text(
                "INSERT INTO ivr_response (ivr_id, priority, response_code, response_pattern, "
                "extract_pattern, condition_code, condition_pattern, transfer, memo) "
                """VALUES (3, 1, '200', '', '', '', '', '{"kind": "hangup"}', '')"""
            )
        )
    command.upgrade(config, "head")
    with engine.begin() as db:
        assert db.execute(text("SELECT username FROM user")).scalars().all() == ["agent"]
        assert db.execute(text("SELECT user_id FROM user_session")).scalars().all() == [4]
        assert db.execute(text("SELECT ivr_id FROM ivr_response")).scalars().all() == [3]
        assert db.execute(text("SELECT status FROM oauth_account")).scalars().all() == ["connected"]
        sequences = dict(
            db.execute(text("SELECT name, seq FROM sqlite_sequence WHERE seq > 0")).all()
        )
        # The IVR names account 9, deleted before the upgrade: the next account gets 10.
        assert sequences == {"user": 4, "oauth_account": 9, "ivr": 3, "ivr_response": 1}
        db.execute(text("DELETE FROM user"))
        db.execute(
            text(
                "INSERT INTO user (username, password_hash, role, display_name, is_active, "
                f"created_at, updated_at) VALUES ('new', 'x', 'agent', '', 1, {now}, {now})"
            )
        )
        assert db.execute(text("SELECT id FROM user")).scalar() == 5
    engine.dispose()
