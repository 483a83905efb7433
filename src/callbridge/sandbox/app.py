"""The sandbox Salesforce as an ASGI application of its own."""

from __future__ import annotations

import asyncio
import html

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from callbridge.sandbox import admin, oauth, rest
from callbridge.sandbox.demo import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_SECURITY_TOKEN,
    DEMO_USERNAME,
)
from callbridge.sandbox.middleware import SandboxMiddleware, SleepFunction
from callbridge.sandbox.state import SandboxState


async def _home(request: Request) -> Response:
    base = oauth.base_url(request)
    rows = [
        ("Login URL / instance URL", base),
        ("Client ID (consumer key)", DEMO_CLIENT_ID),
        ("Client secret", DEMO_CLIENT_SECRET),
        ("Username", DEMO_USERNAME),
        ("Password", DEMO_PASSWORD),
        ("Security token", DEMO_SECURITY_TOKEN),
    ]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>" for k, v in rows
    )
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Sandbox Salesforce</title></head><body><h1>Sandbox Salesforce</h1>"
        "<p>A local stand-in for the Salesforce REST API and OAuth, for trying callbridge "
        "offline and for its tests.</p>"
        f'<table>{table}</table><p>Control panel: <a href="/_sandbox">/_sandbox</a></p>'
        "</body></html>"
    )


def create_sandbox_app(
    state: SandboxState | None = None,
    *,
    sleep: SleepFunction = asyncio.sleep,
    public_url: str | None = None,
) -> FastAPI:
    """A Salesforce stand-in serving ``state`` (a fresh demo org when None).

    ``sleep`` is awaited for added latency and hangs (tests inject a recorder);
    ``public_url`` fixes the ``instance_url`` it hands out (default: the request's host).
    """
    app = FastAPI(title="Sandbox Salesforce", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state if state is not None else SandboxState()
    app.state.public_url = public_url
    router = app.router
    router.add_route("/", _home, methods=["GET"], include_in_schema=False)
    router.add_route("/services/data", rest.versions_endpoint, methods=["GET"])
    router.add_route("/services/data/", rest.versions_endpoint, methods=["GET"])
    router.add_route(
        "/services/data/{rest_path:path}",
        rest.rest_endpoint,
        methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"],
    )
    router.add_route("/services/oauth2/authorize", oauth.authorize_page, methods=["GET"])
    router.add_route("/services/oauth2/authorize", oauth.authorize_decision, methods=["POST"])
    router.add_route("/services/oauth2/token", oauth.token_endpoint, methods=["POST"])
    router.add_route("/services/oauth2/revoke", oauth.revoke_endpoint, methods=["GET", "POST"])
    router.add_route("/services/oauth2/userinfo", oauth.userinfo_endpoint, methods=["GET", "POST"])
    router.add_route("/id/{org_id}/{user_id}", oauth.identity_endpoint, methods=["GET", "POST"])
    app.include_router(admin.router)
    app.add_middleware(SandboxMiddleware, state=app.state.sandbox, sleep=sleep)
    return app
