"""The lean path of the PBX's two hot endpoints (callbridge.hot_routes): served without
FastAPI's routing, with the same request IDs, metrics, auth and error answers."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from callbridge.hot_routes import HotRoutes


def hot_layer(app: FastAPI) -> HotRoutes:
    layer = app.build_middleware_stack()
    while not isinstance(layer, HotRoutes):
        layer = layer.app  # type: ignore[attr-defined]
    return layer


async def test_both_endpoints_sit_in_place_of_the_router(app: FastAPI) -> None:
    layer = hot_layer(app)
    assert layer.router is app.router
    assert [route.path for route in layer.routes] == [
        "/api/v1/call-events",
        "/api/v1/ivr/{key}/invoke",
    ]
    # The app-wide dependencies are skipped on the lean path: the only one checks
    # whole-number path parameters, which neither route has. A new one needs a look here.
    assert [d.dependency.__name__ for d in app.router.dependencies] == [  # type: ignore[union-attr]
        "ids_a_database_can_hold"
    ]
    # The documented routes are the same ones.
    spec = app.openapi()
    assert "post" in spec["paths"]["/api/v1/call-events"]
    assert "post" in spec["paths"]["/api/v1/ivr/{key}/invoke"]


async def test_request_id_metrics_and_answer_on_the_lean_path(
    client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    headers = {**pbx_headers, "X-Request-ID": "pbx-42"}
    answer = await client.post(
        "/api/v1/call-events",
        json={"call_id": "c-1", "event": "incoming", "tel": "0312345678"},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["x-request-id"] == "pbx-42"
    assert answer.json()["status"] == "accepted" and answer.json()["call_id"] == "c-1"
    missing = await client.post(
        "/api/v1/ivr/no-such-ivr/invoke", json={"call_id": "c-1"}, headers=pbx_headers
    )
    assert missing.status_code == 404
    text = (await client.get("/metrics")).text
    assert (
        'callbridge_http_requests_total{method="POST",route="/api/v1/call-events",status="202"} 1.0'
        in text
    )
    assert (
        'callbridge_http_requests_total{method="POST",route="/api/v1/ivr/{key}/invoke",'
        'status="404"} 1.0' in text
    )


async def test_auth_comes_first_then_the_query_as_fastapi_checks_it(
    client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    unauthenticated = await client.post("/api/v1/call-events?wait=maybe", json={})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert unauthenticated.json() == {
        "detail": "authentication required: send 'Authorization: Bearer <token>'"
    }
    invalid = await client.post(
        "/api/v1/call-events?wait=maybe",
        json={"call_id": "c-1", "event": "incoming"},
        headers=pbx_headers,
    )
    assert invalid.status_code == 422
    assert invalid.json() == {
        "detail": [
            {
                "loc": ["query", "wait"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "type": "bool_parsing",
                "code": "bool_parsing",
            }
        ]
    }
    slash = await client.post("/api/v1/ivr/a/b/invoke", json={}, headers=pbx_headers)
    assert slash.status_code == 404  # {key} is one path segment, as in the router


async def test_other_methods_still_reach_the_router(
    client: httpx.AsyncClient, pbx_headers: dict[str, str]
) -> None:
    answer = await client.get("/api/v1/call-events", headers=pbx_headers)
    assert answer.status_code == 405
