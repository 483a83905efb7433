"""End-to-end fixtures: callbridge and the sandbox Salesforce, each on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from callbridge.app import create_app
from callbridge.db.engine import create_engine, create_sessionmaker
from callbridge.sandbox import (
    SandboxHandle,
    demo_account_fields,
    running_sandbox,
)
from callbridge.settings import Settings
from callbridge.tokens.schemas import TokenCreate
from callbridge.tokens.service import create_token
from tests.helpers import bearer
from tests.servers import running_server

PUBLIC_URL = "https://callbridge.example.jp/"

# The manual's three call actions (seed 000 §2), pasted verbatim; only the Description's
# host is the callbridge server ({SVADDR}) instead of the manual's BIZTEL host.
EXAMPLE_1 = {
    "event": "queue",
    "order": 1,
    "auth_type": "oauth",
    "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/query?q= SELECT+Id,Name FROM Contact "
    "WHERE Phone ='{TEL}'",
    "method": "GET",
    "timeout_seconds": 10,
    "extract_pattern": '/"Id":"(?P<CONTACT_ID>.*)",/',
    "memo": "取引先責任者を検索",
}
EXAMPLE_2 = {
    "event": "queue",
    "order": 2,
    "auth_type": "oauth",
    "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobject s/case/",
    "method": "POST",
    "headers": "Content-Type: application/json",
    "body": '{"Origin": "Phone","ContactId":"{RESPONSE_CONTACT_ID}"}',
    "timeout_seconds": 10,
    "extract_pattern": '/"id":"(?P<CASE_ID>.*)",/',
    "memo": "ケースを作成",
}
EXAMPLE_3 = {
    "event": "disconnect",
    "order": 1,
    "auth_type": "oauth",
    "url": "{OAUTH_INSTANCE_URL}/services/data/v45.0/sobjects/cas e/{RESPONSE_CASE_ID}",
    "method": "PATCH",
    "headers": "Content-Type: application/json",
    "body": '{"Origin": "Phone","Subject":"コールセンターへの着信です ","ContactId":'
    '"{RESPONSE_CONTACT_ID}","Description": "{SVADDR}monitor_link/{ID}"}',
    "timeout_seconds": 10,
    "memo": "録音再生URLを付与",
}


@dataclass
class Live:
    """callbridge on a real socket, with an admin and a PBX token, and the sandbox."""

    base_url: str
    admin: dict[str, str]
    pbx: dict[str, str]
    sandbox: SandboxHandle
    http: httpx.AsyncClient
    account_id: int | None = None

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.admin, **kwargs)

    async def rule(self, fields: dict[str, Any]) -> dict[str, Any]:
        payload = {**fields}
        if payload.get("auth_type") == "oauth":
            payload["oauth_account_id"] = self.account_id
        response = await self.api("POST", "/api/v1/call-actions", json=payload)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def event(self, **fields: Any) -> httpx.Response:
        return await self.http.post("/api/v1/call-events", json=fields, headers=self.pbx)

    async def call(self, call_id: str, *, settled: bool = True) -> dict[str, Any]:
        """The call; with ``settled``, once every event of it has been processed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            response = await self.api("GET", f"/api/v1/calls/{call_id}")
            if response.status_code == 200:
                call = dict(response.json())
                if not settled or call["status"] != "pending":
                    return call
            assert loop.time() < deadline, f"call {call_id} was not processed: {response.text}"
            await asyncio.sleep(0.02)

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.sandbox.state.records.get(sobject, {}).values()
            if not r.get("IsDeleted")
        ]


async def make_tokens(settings: Settings) -> tuple[str, str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            _a, admin = await create_token(session, TokenCreate(name="admin", scope="admin"), "t")
            _p, pbx = await create_token(session, TokenCreate(name="pbx", scope="pbx"), "t")
            await session.commit()
    finally:
        await engine.dispose()
    return admin, pbx


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox() as handle:
        yield handle


@pytest.fixture
def live_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"public_url": PUBLIC_URL})


@pytest.fixture
async def live(live_settings: Settings, sandbox: SandboxHandle) -> AsyncIterator[Live]:
    from callbridge.db.migrate import upgrade_to_head_async

    await upgrade_to_head_async(live_settings.resolved_database_url)
    admin, pbx = await make_tokens(live_settings)
    application = create_app(live_settings)
    with running_server(application) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            yield Live(server.base_url, bearer(admin), bearer(pbx), sandbox, http)


@pytest.fixture
async def connected(live: Live) -> Live:
    """``live`` with a Salesforce OAuth account connected to the sandbox."""
    response = await live.api(
        "POST",
        "/api/v1/oauth-accounts",
        json=demo_account_fields(live.sandbox.login_url, "Sandbox"),
    )
    assert response.status_code == 201, response.text
    account_id = response.json()["id"]
    connect = await live.api("POST", f"/api/v1/oauth-accounts/{account_id}/connect")
    assert connect.status_code == 200, connect.text
    assert connect.json()["status"] == "connected", connect.text
    live.account_id = account_id
    return live


# ---- a controllable CRM for engine tests -------------------------------------------


@dataclass
class FakeCrm:
    base_url: str
    received: list[dict[str, Any]]


def _fake_crm_app(received: list[dict[str, Any]]) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def record(request: Request) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": list(request.headers.items()),
            "body": (await request.body()).decode("utf-8", "replace"),
        }
        received.append(entry)
        return entry

    async def contact(request: Request) -> Response:
        await record(request)
        return JSONResponse(
            {
                "totalSize": 1,
                "done": True,
                "records": [{"Id": "003A0000001", "Name": 'O"Brien \u3042'}],
            }
        )

    async def binary(request: Request) -> Response:
        await record(request)
        return Response(bytes(range(256)) * 4, media_type="application/octet-stream")

    async def many_a(request: Request) -> Response:
        await record(request)
        return JSONResponse({"Name": "a" * 40})

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        return JSONResponse([{"message": "nope", "errorCode": "NOT_FOUND"}], status_code=code)

    async def echo(request: Request) -> Response:
        entry = await record(request)
        return JSONResponse(
            {"id": "500B0000002", "success": True, "echo": entry["body"]}, status_code=201
        )

    return Starlette(
        routes=[
            Route("/contact", contact),
            Route("/binary", binary),
            Route("/many-a", many_a),
            Route("/status/{code}", status, methods=["GET", "POST", "PATCH"]),
            Route("/echo", echo, methods=["POST", "PATCH", "PUT"]),
        ]
    )


@pytest.fixture
def crm() -> Iterator[FakeCrm]:
    received: list[dict[str, Any]] = []
    with running_server(_fake_crm_app(received)) as server:
        yield FakeCrm(server.base_url, received)
