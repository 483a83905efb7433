"""Shared by the fuzz tests: an app served in-process (lifespan running), seeded objects
for the operations that name one, and outbound requests kept on loopback."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from callbridge.app import create_app
from callbridge.settings import Settings
from tests.helpers import make_token, make_user

CLOSED = "http://127.0.0.1:9"
# Operations that send a request to what an object names: run first, on the seeded
# objects (loopback), before the fuzzing of other operations may have changed them.
OUTBOUND = ("/test", "/connect", "/check", "/histories", "/retry", "/rerun", "/invoke")


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise socket.gaierror(socket.EAI_NONAME, "not resolved in the fuzz test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def served(settings: Settings, loopback_only: None) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def seed(client: TestClient, admin: dict[str, str], pbx: dict[str, str]) -> dict[str, Any]:
    def post(path: str, body: Any, headers: dict[str, str] = admin) -> Any:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201, 202), (path, response.text)
        return response.json()

    account = post(
        "/api/v1/oauth-accounts",
        {
            "name": "seed",
            "provider": "generic",
            "grant_type": "client_credentials",
            "token_url": f"{CLOSED}/token",
            "client_id": "c",
            "client_secret": "s",
        },
    )
    rule = post("/api/v1/call-actions", {"event": "incoming", "url": f"{CLOSED}/rule"})
    ivr = post(
        "/api/v1/ivrs",
        {
            "key": "seed",
            "url": f"{CLOSED}/ivr",
            "timeout_seconds": 1,
            "responses": [{"priority": 1, "transfer": {"kind": "hangup"}}],
            "steps": [{"name": "more", "url": f"{CLOSED}/step"}],
        },
    )
    user = post(
        "/api/v1/users", {"username": "agent", "password": "correct horse", "role": "agent"}
    )
    token = post("/api/v1/tokens", {"name": "other", "scope": "pbx"})
    profile = post(
        "/api/v1/screen-pops",
        {
            "name": "seed",
            "lookup": {
                "kind": "custom",
                "accesses": {
                    "search": {
                        "method": "server_get",
                        "url": f"{CLOSED}/search?tel={{TEL}}",
                        "response_format": "NAME = $.name",
                    },
                    "incoming": {"method": "browser_get", "url": f"{CLOSED}/?q={{TEL}}"},
                },
            },
        },
    )
    post("/api/v1/call-events", {"event": "incoming", "call_id": "seed-call"}, pbx)
    return {
        "account_id": account["id"],
        "rule_id": rule["id"],
        "key": "seed",
        "ivr_id": ivr["id"],
        "response_id": ivr["responses"][0]["id"],
        "step_id": ivr["steps"][0]["id"],
        "user_id": user["id"],
        "token_id": token["id"],
        "call_id": "seed-call",
        "execution_id": 1,
        "link_id": 1,
        "profile_id": profile["id"],
    }


def bearer_headers(client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    """An administrator's and a PBX's ``Authorization`` headers (API tokens 1 and 2)."""
    portal = client.portal  # type: ignore[attr-defined]
    admin = portal.call(make_token, client.app, "admin", "fuzz admin")
    pbx = portal.call(make_token, client.app, "pbx", "fuzz pbx")
    return {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {pbx}"}


def csrf_field(page: str) -> dict[str, str]:
    """The page's CSRF token as a form field (none when the page has no form)."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return {"csrf_token": match.group(1)} if match else {}


def sign_in(client: TestClient) -> None:
    """An administrator signed in on ``client`` as a browser is (the session cookie)."""
    client.portal.call(make_user, client.app)  # type: ignore[attr-defined]
    login = client.get("/login").text
    client.post(
        "/login",
        data={"username": "admin", "password": "correct horse", **csrf_field(login)},
        follow_redirects=False,
    )
