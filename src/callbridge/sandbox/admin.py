"""``/_sandbox``: the control panel tests and demos use (outside Salesforce's URL space)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from callbridge.sandbox.knobs import FailureKind
from callbridge.sandbox.oauth import base_url
from callbridge.sandbox.state import ConnectedApp, SandboxState

router = APIRouter(prefix="/_sandbox", include_in_schema=False)


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


class FailureIn(BaseModel):
    kind: FailureKind = FailureKind.UNAVAILABLE
    count: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    target: Literal["rest", "oauth", "all"] = "rest"
    path_contains: str | None = None
    body_contains: str | None = None


class ConnectedAppIn(BaseModel):
    client_id: str
    client_secret: str
    callback_urls: list[str] = []
    name: str = "Connected App"
    scopes: list[str] = ["api", "refresh_token", "offline_access"]
    certificate_pem: str | None = None
    require_secret: bool = True
    require_pkce: bool = False
    allow_password_grant: bool = True
    client_credentials_username: str | None = None
    rotate_refresh_tokens: bool = False
    refresh_token_ttl_seconds: float | None = None
    preauthorized_usernames: list[str] | None = None
    loopback_any_port: bool = False


class UserIn(BaseModel):
    username: str
    password: str
    security_token: str = ""
    last_name: str = "User"
    first_name: str | None = None
    email: str | None = None


class TokenIn(BaseModel):
    client_id: str | None = None
    username: str | None = None
    scope: str = "api refresh_token"


class ApiUsageIn(BaseModel):
    used: int = Field(ge=0)


def _app_json(app: ConnectedApp) -> dict[str, Any]:
    return {key: getattr(app, key) for key in ConnectedAppIn.model_fields}


@router.get("")
async def summary(request: Request) -> dict[str, Any]:
    from callbridge.sandbox.demo import (
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        DEMO_PASSWORD,
        DEMO_SECURITY_TOKEN,
        DEMO_USERNAME,
    )

    state = _state(request)
    with state.lock:
        counts = {name: len(table) for name, table in state.records.items()}
    return {
        "login_url": base_url(request),
        "instance_url": base_url(request),
        "demo": {
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
            "security_token": DEMO_SECURITY_TOKEN,
        },
        "records": counts,
        "api_usage": state.api_usage,
        "api_calls": dict(state.api_calls),
    }


@router.get("/knobs")
async def get_knobs(request: Request) -> dict[str, Any]:
    return _state(request).knobs.to_json()


@router.patch("/knobs")
async def patch_knobs(request: Request, values: dict[str, Any]) -> dict[str, Any]:
    knobs = _state(request).knobs
    try:
        knobs.update(values)
    except (ValueError, TypeError) as error:
        raise HTTPException(422, str(error)) from error
    return knobs.to_json()


@router.post("/knobs/reset")
async def reset_knobs(request: Request) -> dict[str, Any]:
    knobs = _state(request).knobs
    knobs.reset()
    return knobs.to_json()


@router.post("/failures", status_code=201)
async def add_failure(request: Request, failure: FailureIn) -> dict[str, Any]:
    knobs = _state(request).knobs
    if (failure.count is None) == (failure.rate is None):
        raise HTTPException(422, "give exactly one of count and rate")
    if failure.count is not None:
        plan = knobs.fail_next(
            failure.count,
            failure.kind,
            target=failure.target,
            path_contains=failure.path_contains,
            body_contains=failure.body_contains,
        )
    else:
        assert failure.rate is not None
        plan = knobs.fail_fraction(
            failure.rate, failure.kind, target=failure.target, path_contains=failure.path_contains
        )
    return plan.to_json()


@router.delete("/failures", status_code=204)
async def clear_failures(request: Request) -> None:
    _state(request).knobs.clear_failures()


@router.get("/requests")
async def list_requests(
    request: Request, kind: str | None = None, since: int = 0
) -> list[dict[str, Any]]:
    return [r.to_json() for r in _state(request).request_log(kind) if r.seq > since]


@router.delete("/requests", status_code=204)
async def clear_requests(request: Request) -> None:
    _state(request).clear_request_log()


@router.get("/connected-apps")
async def list_apps(request: Request) -> list[dict[str, Any]]:
    return [_app_json(app) for app in _state(request).connected_apps.values()]


@router.post("/connected-apps", status_code=201)
async def register_app(request: Request, app: ConnectedAppIn) -> dict[str, Any]:
    values = app.model_dump()
    created = _state(request).register_connected_app(
        values.pop("client_id"), values.pop("client_secret"), **values
    )
    return _app_json(created)


@router.post("/users", status_code=201)
async def register_user(request: Request, user: UserIn) -> dict[str, Any]:
    created = _state(request).register_user(
        user.username,
        user.password,
        user.security_token,
        last_name=user.last_name,
        first_name=user.first_name,
        email=user.email,
    )
    return {"username": created.username, "user_id": created.user_id}


@router.post("/tokens", status_code=201)
async def mint_token(request: Request, token: TokenIn) -> dict[str, Any]:
    state = _state(request)
    if token.username is not None and state.user(token.username) is None:
        raise HTTPException(404, "unknown user")
    value = state.issue_token(token.client_id, token.username, token.scope)
    return {"access_token": value, "instance_url": base_url(request), "token_type": "Bearer"}


@router.post("/tokens/expire")
async def expire_tokens(request: Request) -> dict[str, int]:
    return {"expired": _state(request).expire_access_tokens()}


@router.put("/api-usage")
async def set_api_usage(request: Request, usage: ApiUsageIn) -> dict[str, int]:
    state = _state(request)
    with state.lock:
        state.api_usage = usage.used
    return {"used": state.api_usage, "limit": state.knobs.api_request_limit}


@router.post("/save")
async def save_state(request: Request) -> dict[str, str]:
    state = _state(request)
    if state.persist_path is None:
        raise HTTPException(409, "the sandbox was started without a state file")
    state.save()
    return {"saved": str(state.persist_path)}
