"""Hostile and broken input on the PBX path and everywhere else: a clear 4xx naming the
field, never a 500; an error nobody foresaw answers JSON (or the error page) with the
request ID, and a kept-alive connection stays usable for the next request."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from callbridge.app import create_app
from callbridge.ops.logging import AccessLogRedaction
from callbridge.ops.middleware import UNEXPECTED_ERROR
from callbridge.settings import Settings
from tests.call_actions.conftest import make_tokens
from tests.helpers import bearer, csrf_from, make_token, make_user, sign_in
from tests.servers import running_server

DEEP = b'{"event":"queue","call_id":"c1","variables":' + b"[" * 5000 + b"]" * 5000 + b"}"


def _broken(app: FastAPI) -> None:
    """Routes that fail the way a defect would (the test stands in for one)."""

    async def boom() -> None:
        raise RuntimeError("a defect")

    app.add_api_route("/api/v1/boom", boom, methods=["GET", "POST"])
    app.add_api_route("/boom", boom, methods=["GET"])


@pytest.fixture
async def pbx(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, "pbx", name="pbx"))


async def test_an_unexpected_api_error_answers_json_with_the_request_id(app, client, caplog):
    _broken(app)
    response = await client.get("/api/v1/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-42"
    assert response.json() == {"detail": UNEXPECTED_ERROR, "request_id": "req-42"}
    assert "RuntimeError: a defect" in caplog.text


async def test_an_unexpected_ui_error_shows_the_error_page_with_the_request_id(app, client):
    _broken(app)
    response = await client.get(
        "/boom", headers={"Accept": "text/html", "Accept-Language": "ja", "X-Request-ID": "r-7"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-request-id"] == "r-7"
    assert "サーバで問題が発生しました。" in response.text
    assert "r-7" in response.text


@pytest.fixture
def served(settings: Settings) -> Iterator[Any]:
    settings.body_read_timeout_seconds = 0.5
    app = create_app(settings)
    _broken(app)
    with running_server(app) as server:
        server.pbx = asyncio.run(make_tokens(settings))[1]
        yield server


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_a_kept_alive_connection_survives_an_unexpected_error(served) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        status, headers, body = _exchange(connection, "POST", "/api/v1/boom", b'{"a": 1}')
        assert status == 500
        assert json.loads(body)["request_id"] == headers["x-request-id"]
        sock = connection.sock
        # The same socket carries the next, valid request: the server did not drop it.
        status, _, body = _exchange(connection, "GET", "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        assert connection.sock is sock
        # A body nested 5,000 levels deep is refused, and the connection stays usable too.
        status, _, body = _exchange(connection, "POST", "/api/v1/call-events", DEEP, served.pbx)
        assert status == 422
        assert _exchange(connection, "GET", "/healthz")[0] == 200
        assert connection.sock is sock
    finally:
        connection.close()


def test_a_body_that_stops_arriving_is_answered_408(served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/call-events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + served.pbx.encode() + b"\r\n"
            b'Content-Length: 100\r\n\r\n{"a":'
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server answers, then closes the connection
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"detail": "the request body stopped arriving for 0.5 seconds"}


async def test_json_nested_too_deep_is_refused_on_both_pbx_routes(client, pbx) -> None:
    headers = {**pbx, "Content-Type": "application/json"}
    expected = [
        {
            "loc": ["body"],
            "msg": "the JSON is nested more than 16 levels deep",
            "type": "json_invalid",
        }
    ]
    for path in ("/api/v1/call-events", "/api/v1/ivr/any/invoke"):
        response = await client.post(path, content=DEEP, headers=headers)
        assert (response.status_code, response.json()["detail"]) == (422, expected), path
    shallow_but_deep = b'{"call_id":"c1","x":' + b"[" * 20 + b"]" * 20 + b"}"
    response = await client.post("/api/v1/call-events", content=shallow_but_deep, headers=headers)
    assert (response.status_code, response.json()["detail"]) == (422, expected)


@pytest.mark.parametrize("value", [1e20, -1e20, "Infinity", "-Infinity", "NaN", "0001-01-01T00:00"])
async def test_occurred_at_out_of_range_is_refused_naming_the_field(client, pbx, value) -> None:
    raw = value if isinstance(value, str) and value[0] != "0" else json.dumps(value)
    body = '{"event":"queue","call_id":"c1","occurred_at":' + raw + "}"
    response = await client.post(
        "/api/v1/call-events",
        content=body,
        headers={**pbx, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "occurred_at"]


async def test_nul_is_refused_by_the_ivr_invoke_naming_the_field(client, pbx) -> None:
    response = await client.post(
        "/api/v1/ivr/any/invoke",
        json={"call_id": "c1", "tel": "0312\x00", "variables": {"X": "a\x00"}},
        headers=pbx,
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(e["loc"], e["msg"]) for e in detail] == [
        (["body", "tel"], "must not contain a NUL character"),
        (["body", "variables"], "'X': must not contain a NUL character"),
    ]


async def test_forms_with_nul_or_invalid_utf8_are_refused_naming_the_field(client, pbx) -> None:
    form = {**pbx, "Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(
        "/api/v1/call-events", content=b"event=queue&call_id=c1&tel=%FF%FE", headers=form
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "tel"], "msg": "is not valid UTF-8 text", "type": "value_error"}
    ]
    response = await client.post(
        "/api/v1/ivr/any/invoke", content=b"call_id=c1&tel=1%002", headers=form
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "tel"], "msg": "must not contain a NUL character", "type": "value_error"}
    ]


async def test_ui_forms_refuse_nul_and_invalid_utf8_naming_the_field(app, client) -> None:
    await make_user(app)
    await sign_in(client)
    page = await client.get("/users/new", headers={"Accept-Language": "ja"})
    token = csrf_from(page.text)
    for raw in (b"%00", b"%C3%28"):
        response = await client.post(
            "/users/new",
            content=b"csrf_token=" + token.encode() + b"&username=a" + raw + b"&password=x",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "text/html",
                "Accept-Language": "ja",
            },
        )
        assert response.status_code == 422
        assert (
            "次の項目に保存できない文字が含まれています"
            "(NUL文字、またはUTF-8ではないバイト列): username"
        ) in response.text
    # Nothing was stored.
    page = await client.get("/users")
    assert "a\x00" not in page.text


async def test_nul_in_the_api_is_refused_on_both_databases(app, client) -> None:
    admin = bearer(await make_token(app, "admin"))
    response = await client.post(
        "/api/v1/users",
        json={"username": "a\x00b", "password": "correct horse", "role": "agent"},
        headers=admin,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "username"]
    assert (await client.get("/api/v1/users", headers=admin)).json()["total"] == 0
    response = await client.get("/api/v1/calls?tel=%00", headers=admin)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["query"], "msg": "must not contain a NUL character", "type": "value_error"}
    ]
    response = await client.get("/api/v1/ivrs/a%00", headers=admin)
    assert (response.status_code, response.json()["detail"][0]["loc"]) == (422, ["path"])


def test_the_access_log_keeps_oauth_codes_and_states_out() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/oauth_client/callback?code=SECRET1&state=SECRET2", "1.1", 303),
        None,
    )
    AccessLogRedaction().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /oauth_client/callback?code=[redacted]&state=[redacted] '
        'HTTP/1.1" 303'
    )


async def test_tracebacks_do_not_print_sql_parameters(app) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    async with app.state.runtime.sessionmaker() as session:
        with pytest.raises(DBAPIError) as caught:
            await session.execute(
                text("SELECT * FROM no_such_table WHERE x = :x"), {"x": "07012345678"}
            )
    assert "07012345678" not in str(caught.value)
    assert "hidden due to hide_parameters" in str(caught.value)


async def test_http_client_reads_the_error_of_a_real_server(served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        response = await http.get("/boom", headers={"Accept": "text/html"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] in response.text


async def test_the_openapi_document_says_how_to_authenticate_and_what_can_go_wrong(
    client,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert (schemes["session"]["in"], schemes["session"]["name"]) == ("cookie", "cb_session")
    user = spec["paths"]["/api/v1/users/{user_id}"]
    assert user["get"]["security"] == [{"bearer": []}, {"session": []}]
    assert {"401", "403", "404", "422"} <= set(user["get"]["responses"])
    assert {"401", "403", "404", "409", "422"} <= set(user["patch"]["responses"])
    event = spec["paths"]["/api/v1/call-events"]["post"]
    assert event["security"] == [{"bearer": []}]
    assert "409" not in event["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_tracebacks_do_not_print_the_values_a_driver_quotes() -> None:
    from callbridge.ops.logging import JsonFormatter, TextFormatter

    try:
        raise ValueError("invalid input for query argument $1: '07012345678' (out of range)")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "callbridge.errors", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    for formatter in (TextFormatter("%(message)s"), JsonFormatter()):
        text = formatter.format(record)
        assert "07012345678" not in text
        assert "query argument $1: [hidden] (out of range)" in text
