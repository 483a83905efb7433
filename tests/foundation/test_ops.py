from __future__ import annotations

import json
import logging

import httpx
from fastapi import FastAPI

from callbridge.app import create_app
from callbridge.ops.logging import JsonFormatter, RequestIdFilter, request_id_var
from callbridge.settings import Settings


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "pbx-123"})
    assert given.headers["x-request-id"] == "pbx-123"
    made = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert made.headers["x-request-id"] != "bad id\twith spaces"
    assert len(made.headers["x-request-id"]) == 32


async def test_metrics_count_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/users/12345")
    text = (await client.get("/metrics")).text
    assert 'callbridge_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/v1/users/{user_id}"' in text
    assert "12345" not in text
    assert "callbridge_http_request_duration_seconds_bucket" in text


async def test_readyz_reports_an_unreachable_database(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        secret_key="k" * 32,
        _env_file=None,  # type: ignore[call-arg]
    )
    application = create_app(settings, role="worker")  # no start-up database work
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        # an API call that needs storage answers 503, never 500
        down = await http.get("/api/v1/users", headers={"Authorization": "Bearer x"})
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
    await application.state.runtime.engine.dispose()


async def test_openapi_has_stable_operation_ids(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {
        "list_users",
        "create_user",
        "create_token",
        "get_settings",
        "update_settings",
        "healthz",
        "readyz",
    } <= operations
    assert all("/login" not in path for path in spec["paths"])
    assert (await client.get("/docs")).status_code == 200


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord(
        "callbridge", logging.INFO, __file__, 1, "hello %s", ("world",), None
    )
    record.call_id = "1700000000.42"
    token = request_id_var.set("req-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-1"
    assert line["call_id"] == "1700000000.42"
    assert line["level"] == "info"


async def test_static_htmx_is_vendored(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.get("/static/htmx.min.js")
    assert response.status_code == 200
    assert "htmx" in response.text[:200]


def test_access_log_is_off_unless_asked_for() -> None:
    from callbridge.ops.logging import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    access = logging.getLogger("uvicorn.access")
    try:
        configure_logging("text", "INFO")
        # uvicorn writes a line per request only when this logger has a handler.
        assert not access.hasHandlers()
        configure_logging("text", "INFO", access_log=True)
        assert access.hasHandlers()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        access.propagate = True


async def test_a_serving_app_freezes_what_its_start_up_built(settings: Settings) -> None:
    """``callbridge serve`` builds the app with ``serving=True``: after the lifespan has
    started everything, the collector no longer walks it, and young collections run less
    often. Apps built by tests (the default) leave the collector alone."""
    import gc

    from callbridge.kit.collector import YOUNG_THRESHOLD

    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        plain = create_app(settings)
        async with plain.router.lifespan_context(plain):
            assert gc.get_freeze_count() == 0
            assert gc.get_threshold() == threshold
        serving = create_app(settings, serving=True)
        async with serving.router.lifespan_context(serving):
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
            # Still served as before.
            transport = httpx.ASGITransport(app=serving)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                assert (await http.get("/healthz")).status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
