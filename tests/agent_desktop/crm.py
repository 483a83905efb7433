"""A CRM that is not Salesforce, on a loopback socket, for the custom lookups (seed 002
カスタム連携): a login answering a session id, a customer search that needs it, a log."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.servers import running_server

SESSION = "S3ss10n-abc"


@dataclass
class Crm:
    """A CRM that is not Salesforce: a login answering a session id, a customer search
    that needs it, a log for call notes; one search can be held until the test lets go."""

    base_url: str
    received: list[dict[str, Any]]
    release: threading.Event = field(default_factory=threading.Event)

    def paths(self) -> list[str]:
        return [r["path"] for r in self.received]


def _crm_app(received: list[dict[str, Any]], release: threading.Event) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def record(request: Request) -> dict[str, Any]:
        entry = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "headers": dict(request.headers),
            "body": (await request.body()).decode("utf-8", "replace"),
        }
        received.append(entry)
        return entry

    async def login(request: Request) -> Response:
        entry = await record(request)
        expected = "Basic " + base64.b64encode(b"callbridge:pa55word").decode()
        if entry["headers"].get("authorization") != expected:
            return JSONResponse({"error": "bad credentials"}, status_code=401)
        return JSONResponse({"session": SESSION, "expires": 1800})

    async def customers(request: Request) -> Response:
        entry = await record(request)
        if entry["query"].get("session") != SESSION:
            return JSONResponse({"error": "no session"}, status_code=401)
        if entry["query"].get("tel") == "0312345678":
            return JSONResponse({"company": "山田商事", "name": "山田 太郎", "id": "C-1001"})
        return JSONResponse({"company": None, "name": None, "id": None})

    async def slow(request: Request) -> Response:
        await record(request)
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 20)
        return JSONResponse({"company": "遅延商会", "name": "遅 延", "id": "C-2"})

    async def garbage(request: Request) -> Response:
        await record(request)
        return Response("<html><body>Service Unavailable</body></html>", media_type="text/html")

    async def log(request: Request) -> Response:
        await record(request)
        return JSONResponse({"ok": True}, status_code=201)

    return Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/customers", customers),
            Route("/slow", slow),
            Route("/garbage", garbage),
            Route("/log", log, methods=["GET", "POST"]),
        ]
    )


@pytest.fixture
def crm() -> Iterator[Crm]:
    received: list[dict[str, Any]] = []
    release = threading.Event()
    with running_server(_crm_app(received, release)) as server:
        yield Crm(server.base_url, received, release)
    release.set()


def custom_lookup(crm: Crm, **accesses: Any) -> dict[str, Any]:
    """seed 002's accesses against the CRM: auth with Basic credentials (never {APW}),
    search filling {COMPANY}, {NAME}, {EXT_ID}."""
    return {
        "kind": "custom",
        "auth_type": "basic",
        "basic_username": "callbridge",
        "basic_password": "pa55word",
        "accesses": {
            "auth": {
                "method": "server_post",
                "url": f"{crm.base_url}/login",
                "body": '{"agent": "{AID}", "ext": "{EXT}"}',
                "response_format": "SESSION = $.session",
                "session_minutes": 30,
            },
            "search": {
                "method": "server_get",
                "url": f"{crm.base_url}/customers?tel={{TEL}}&session={{SESSION}}",
                "response_format": "COMPANY = $.company\nNAME = $.name\nEXT_ID = $.id",
            },
            **accesses,
        },
    }
