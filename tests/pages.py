"""Every admin page of callbridge, and an installation with something on each of them:
used by the test that renders every page (empty and full, after a purge) and by the
screenshot pass in Chromium.

Everything here goes through the public API, so it works the same against the in-process
app and against a live server.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import respx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from callbridge.kit.time import utcnow
from tests.httpx2_mock import mocked_crm

# The CRM the rule and the IVR call: answered by ``crm_stub()`` (callbridge's outbound
# traffic routed in-process, see tests/httpx2_mock.py).
CRM = "https://crm.example.com"

# GET routes that are not pages an admin opens from the menu or a link.
NOT_PAGES = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/favicon.ico",
        "/monitor_link/{ref}/audio",
        "/calls/{call_id}/timeline",  # the htmx fragment of the call page
    }
)


def _routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """Every APIRoute with its full path (FastAPI keeps included routers as a node)."""
    found: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append((prefix + route.path, route))
        elif hasattr(route, "original_router"):
            context = getattr(route, "include_context", None)
            found.extend(
                _routes(route.original_router.routes, prefix + getattr(context, "prefix", ""))
            )
    return found


def page_routes(app: FastAPI) -> list[str]:
    """The path templates of every HTML page the app serves (GET, outside the API)."""
    found = {
        path
        for path, route in _routes(app.routes)
        if "GET" in route.methods
        and not route.include_in_schema
        and not path.startswith(("/api/", "/sandbox"))
        and path not in NOT_PAGES
    }
    return sorted(found)


@contextmanager
def crm_stub() -> Iterator[respx.MockRouter]:
    """The CRM of ``populate``: a Case is created, the caller is found, the contact too."""
    with mocked_crm() as crm:
        crm.post(url__startswith=CRM + "/cases").respond(201, json={"id": "500000000000001"})
        crm.get(url__startswith=CRM + "/lookup").respond(200, json={"found": True})
        crm.get(url__startswith=CRM + "/contact").respond(200, json={"id": "003000000000001"})
        crm.route(host="127.0.0.1").pass_through()  # a test's own requests to a live server
        yield crm


@dataclass
class Installation:
    """What ``populate`` created: the ids the pages with a path parameter need."""

    account_id: int
    rule_id: int
    ivr_id: int
    response_id: int
    step_id: int
    user_id: int
    link_id: int
    screen_pop_id: int
    call_id: str
    old_call_id: str

    def paths(self) -> dict[str, str]:
        """Path template → a concrete path showing this installation's data."""
        ivr = f"/ivrs/{self.ivr_id}"
        return {
            "/": "/",
            "/login": "/login",
            "/setup": "/setup",
            "/users": "/users",
            "/users/new": "/users/new",
            "/users/{user_id}/edit": f"/users/{self.user_id}/edit",
            "/tokens": "/tokens",
            "/settings": "/settings",
            "/oauth-accounts": "/oauth-accounts",
            "/oauth-accounts/new": "/oauth-accounts/new",
            "/oauth-accounts/{account_id}": f"/oauth-accounts/{self.account_id}",
            "/oauth_client/callback": "/oauth_client/callback",
            "/call-actions": "/call-actions",
            "/call-actions/new": "/call-actions/new",
            "/call-actions/{rule_id}": f"/call-actions/{self.rule_id}",
            "/call-actions/{rule_id}/rerun": f"/call-actions/{self.rule_id}/rerun",
            "/history-links": "/history-links",
            "/history-links/new": "/history-links/new",
            "/history-links/{link_id}": f"/history-links/{self.link_id}",
            "/history-links/{link_id}/histories": f"/history-links/{self.link_id}/histories",
            "/screen-pops": "/screen-pops",
            "/screen-pops/new": "/screen-pops/new",
            "/screen-pops/{profile_id}": f"/screen-pops/{self.screen_pop_id}",
            "/monitor_link/{ref}": f"/monitor_link/{self.call_id}",
            "/recordings": "/recordings",
            "/calls": "/calls",
            "/calls/{call_id}": f"/calls/{self.call_id}",
            "/simulator": "/simulator",
            "/executions": "/executions",
            "/audit": "/audit",
            "/agent": "/agent",
            "/agent/opencti": "/agent/opencti",
            "/agent/callcenter.xml": "/agent/callcenter.xml",
            "/ivrs": "/ivrs",
            "/ivrs/new": "/ivrs/new",
            "/ivrs/{ivr_id}": ivr,
            "/ivrs/{ivr_id}/responses/new": f"{ivr}/responses/new",
            "/ivrs/{ivr_id}/responses/{item_id}": f"{ivr}/responses/{self.response_id}",
            "/ivrs/{ivr_id}/steps/new": f"{ivr}/steps/new",
            "/ivrs/{ivr_id}/steps/{item_id}": f"{ivr}/steps/{self.step_id}",
        }


def wav(seconds: float = 0.2, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(int(seconds * rate))
            )
        )
    return buffer.getvalue()


async def _ok(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def populate(client: httpx.AsyncClient, admin: dict[str, str]) -> Installation:
    """An OAuth account, a call-action rule, an IVR with a response setting and a step,
    a history link, a screen-pop profile, an agent, a PBX token, calls with events,
    executions, IVR logs and a recording, and one call older than the retention period."""
    account = await _ok(
        await client.post(
            "/api/v1/oauth-accounts",
            json={"name": "Salesforce 本番", "client_id": "demo", "client_secret": "secret"},
            headers=admin,
        )
    )
    rule = await _ok(
        await client.post(
            "/api/v1/call-actions",
            json={
                "event": "queue",
                "url": CRM + "/cases?tel={TEL}",
                "method": "POST",
                "headers": "Content-Type: application/json",
                "body": '{"Subject": "{TELNAME}"}',
                "extract_pattern": '/"id":"(?P<CASE_ID>[^"]*)"/',
                "memo": "ケース作成",
            },
            headers=admin,
        )
    )
    ivr = await _ok(
        await client.post(
            "/api/v1/ivrs",
            json={
                "key": "lookup",
                "name": "取引先検索",
                "url": CRM + "/lookup?tel={TEL}",
                "timeout_seconds": 1,
                "responses": [
                    {
                        "priority": 1,
                        "response_code": "200",
                        "response_pattern": '/"found":true/',
                        "guidance": {"type": "tts", "text": "お電話ありがとうございます。"},
                        "transfer": {"kind": "callcenter", "target": "support"},
                    }
                ],
                "steps": [{"name": "contact", "url": CRM + "/contact?tel={TEL}"}],
            },
            headers=admin,
        )
    )
    user = await _ok(
        await client.post(
            "/api/v1/users",
            json={
                "username": "suzuki",
                "password": "correct horse",
                "role": "agent",
                "agent_id": "1001",
                "display_name": "鈴木",
            },
            headers=admin,
        )
    )
    link = await _ok(
        await client.post(
            "/api/v1/history-links",
            json={
                "name": "サポート窓口",
                "oauth_account_id": account["id"],
                "fallback_record": "0012v000032fR15AAE",
                "phone_numbers": ["0312345678"],
            },
            headers=admin,
        )
    )
    screen_pop = await _ok(
        await client.post(
            "/api/v1/screen-pops",
            json={
                "name": "受付",
                "phone_numbers": ["0312345678"],
                "strip_prefixes": ["+81"],
                "wrapup_reasons": ["折り返し", "解決"],
                "lookup": {"kind": "salesforce", "oauth_account_id": account["id"]},
            },
            headers=admin,
        )
    )
    token = await _ok(
        await client.post(
            "/api/v1/tokens", json={"name": "PBX 本社", "scope": "pbx"}, headers=admin
        )
    )
    pbx = {"Authorization": f"Bearer {token['token']}"}
    call_id = "1700000000.42"
    for event in ("queue", "answer", "disconnect"):
        await _ok(
            await client.post(
                "/api/v1/call-events?wait=true",
                json={
                    "call_id": call_id,
                    "event": event,
                    "tel": "07075373713",
                    "tel_name": "CDF 株式会社",
                    "agent_id": "1001",
                    "queue": "support",
                },
                headers=pbx,
            ),
            200,
        )
    await _ok(
        await client.post(
            "/api/v1/ivr/lookup/invoke",
            json={"call_id": call_id, "tel": "07075373713"},
            headers=pbx,
        ),
        200,
    )
    await _ok(
        await client.put(
            f"/api/v1/calls/{call_id}/recording",
            content=wav(),
            headers={**pbx, "Content-Type": "audio/wav"},
        )
    )
    old_call_id = "1600000000.1"
    long_ago = (utcnow() - timedelta(days=400)).isoformat()
    await _ok(
        await client.post(
            "/api/v1/call-events",
            json={"call_id": old_call_id, "event": "incoming", "occurred_at": long_ago},
            headers=pbx,
        ),
        202,
    )
    return Installation(
        account_id=account["id"],
        rule_id=rule["id"],
        ivr_id=ivr["id"],
        response_id=ivr["responses"][0]["id"],
        step_id=ivr["steps"][0]["id"],
        user_id=user["id"],
        link_id=link["id"],
        screen_pop_id=screen_pop["id"],
        call_id=call_id,
        old_call_id=old_call_id,
    )


def empty_paths() -> dict[str, str]:
    """Pages of an installation with nothing configured (ids that do not exist answer the
    "not found" page, not a crash)."""
    return Installation(
        account_id=999,
        rule_id=999,
        ivr_id=999,
        response_id=999,
        step_id=999,
        user_id=999,
        link_id=999,
        screen_pop_id=999,
        call_id="no-such-call",
        old_call_id="",
    ).paths()
