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


_SPEAKER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24">'
    '<path d="M3 9v6h4l5 5V4L7 9H3z" fill="#0176d3"/>'
    '<path d="M16 8a5 5 0 0 1 0 8" stroke="#0176d3" stroke-width="2" fill="none"/></svg>'
)


async def _record_page(request: Request) -> Response:
    """``/lightning/r/{Object}/{Id}/view``: a plain page with the record's fields (no
    sign-in: a development stand-in). Formula fields that build HTML (the seed 001
    speaker link ``WavUrlImg__c``) are shown as Salesforce shows them."""
    state: SandboxState = request.app.state.sandbox
    found = state.find_live(request.path_params["record_id"])
    if found is None or found[0].name.lower() != request.path_params["sobject"].lower():
        return HTMLResponse("<!DOCTYPE html><h1>Record not found</h1>", status_code=404)
    sobject, record = found
    rows = []
    for definition in sobject.fields:
        value = record.get(definition.name)
        if value is None:
            continue
        shown = (
            str(value)
            if definition.calculated and definition.name.endswith("__c")
            else html.escape(str(value))
        )
        rows.append(
            f'<tr data-field="{html.escape(definition.name)}"><th>{html.escape(definition.label)}'
            f"</th><td>{shown}</td></tr>"
        )
    title = html.escape(str(record.get("Subject") or record.get("Name") or record["Id"]))
    return HTMLResponse(
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">'
        f"<title>{title} | {html.escape(sobject.label)}</title></head><body>"
        f"<h1>{title}</h1><table>{''.join(rows)}</table></body></html>"
    )


async def _speaker(request: Request) -> Response:
    return Response(_SPEAKER_SVG, media_type="image/svg+xml")


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
    router.add_route("/lightning/r/{sobject}/{record_id}/view", _record_page, methods=["GET"])
    router.add_route("/resource/{stamp}/speaker", _speaker, methods=["GET"])
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
