"""Knobs and the request log, from Python and over the /_sandbox admin endpoints."""

from __future__ import annotations

import httpx
import pytest

from callbridge.sandbox import FailureKind, SandboxState

from .conftest import SleepRecorder, password_form

V45 = "/services/data/v45.0"
LIMITS = f"{V45}/limits"


async def test_latency_is_awaited_before_each_request(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState, sleeps: SleepRecorder
) -> None:
    state.knobs.latency_ms = 250

    await client.get(LIMITS, headers=auth)
    await client.post("/services/oauth2/token", data=password_form())

    assert sleeps.delays == [0.25, 0.25]


async def test_latency_is_not_applied_to_the_admin_endpoints(
    client: httpx.AsyncClient, state: SandboxState, sleeps: SleepRecorder
) -> None:
    state.knobs.latency_ms = 100

    await client.get("/_sandbox/knobs")

    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("kind", "status", "code", "message"),
    [
        (
            FailureKind.UNAVAILABLE,
            503,
            "SERVER_UNAVAILABLE",
            "Server is temporarily unavailable. Please try again later.",
        ),
        (FailureKind.SERVER_ERROR, 500, "UNKNOWN_EXCEPTION", None),
        (FailureKind.INVALID_SESSION, 401, "INVALID_SESSION_ID", "Session expired or invalid"),
        (FailureKind.REQUEST_LIMIT, 403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        (
            FailureKind.CONCURRENT_LIMIT,
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        ),
    ],
)
async def test_injected_failures_for_the_next_requests(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    state: SandboxState,
    kind: FailureKind,
    status: int,
    code: str,
    message: str | None,
) -> None:
    state.knobs.fail_next(2, kind)

    first = await client.get(LIMITS, headers=auth)
    second = await client.get(LIMITS, headers=auth)
    third = await client.get(LIMITS, headers=auth)

    assert (first.status_code, second.status_code, third.status_code) == (status, status, 200)
    [error] = first.json()
    assert error["errorCode"] == code
    if message is not None:
        assert error["message"] == message
    assert state.knobs.failures == []


async def test_a_hang_waits_longer_than_any_client_timeout(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState, sleeps: SleepRecorder
) -> None:
    state.knobs.hang_seconds = 90
    state.knobs.fail_next(1, "hang")

    response = await client.get(LIMITS, headers=auth)

    assert sleeps.delays == [90]
    assert response.status_code == 503


async def test_failures_can_target_one_path_or_the_token_endpoint(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.knobs.fail_next(1, "server_error", path_contains="/query")
    state.knobs.fail_next(1, "invalid_session", target="oauth")

    limits = await client.get(LIMITS, headers=auth)
    token = await client.post("/services/oauth2/token", data=password_form())
    queried = await client.get(f"{V45}/query", params={"q": "SELECT Id FROM Lead"}, headers=auth)

    assert limits.status_code == 200
    assert token.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }
    assert queried.status_code == 500


async def test_a_failure_fraction_is_repeatable_with_a_seed(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    async def run() -> list[int]:
        state.knobs.reseed(7)
        return [(await client.get(LIMITS, headers=auth)).status_code for _ in range(40)]

    state.knobs.fail_fraction(0.5, "unavailable")
    first, second = await run(), await run()

    assert first == second
    assert 5 < first.count(503) < 35


async def test_knobs_over_http(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState, sleeps: SleepRecorder
) -> None:
    patched = await client.patch(
        "/_sandbox/knobs", json={"latency_ms": 5, "session_timeout_seconds": 30}
    )
    added = await client.post("/_sandbox/failures", json={"kind": "unavailable", "count": 1})
    failed = await client.get(LIMITS, headers=auth)
    knobs = (await client.get("/_sandbox/knobs")).json()
    bad = await client.patch("/_sandbox/knobs", json={"nonsense": 1})
    both = await client.post("/_sandbox/failures", json={"kind": "hang", "count": 1, "rate": 0.5})

    assert patched.json()["latency_ms"] == 5
    assert added.status_code == 201
    assert failed.status_code == 503
    assert knobs["session_timeout_seconds"] == 30 and knobs["failures"] == []
    assert state.knobs.session_timeout_seconds == 30
    assert sleeps.delays == [0.005]
    assert bad.status_code == 422 and both.status_code == 422
    assert (await client.post("/_sandbox/knobs/reset")).json()["latency_ms"] == 0


async def test_failures_cleared_over_http(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    await client.post("/_sandbox/failures", json={"kind": "server_error", "rate": 1.0})
    assert (await client.get(LIMITS, headers=auth)).status_code == 500

    await client.delete("/_sandbox/failures")

    assert (await client.get(LIMITS, headers=auth)).status_code == 200


async def test_request_log_holds_exactly_what_was_received(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    await client.post(
        f"{V45}/sobjects/case/",
        headers=auth | {"Content-Type": "application/json", "X-Trace": "t-1"},
        content=b'{"Origin": "Phone","ContactId":""}',
    )
    await client.get(f"{V45}/query?q=SELECT+Id,Name FROM Contact WHERE Phone ='070'", headers=auth)

    created, queried = state.request_log("rest")
    assert (created.method, created.path, created.kind) == ("POST", f"{V45}/sobjects/case/", "rest")
    assert created.body == b'{"Origin": "Phone","ContactId":""}'
    assert created.json() == {"Origin": "Phone", "ContactId": ""}
    assert created.header("x-trace") == "t-1"
    assert created.header("authorization") == auth["Authorization"]
    assert created.status == 201
    assert queried.query_param("q") == "SELECT Id,Name FROM Contact WHERE Phone ='070'"
    assert queried.raw_path == f"{V45}/query"
    assert queried.url == f"{V45}/query?{queried.query_string}"
    assert queried.query_string.startswith("q=SELECT+Id,Name%20FROM")
    assert state.last_request().seq == queried.seq


async def test_request_log_over_http(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    await client.post("/services/oauth2/token", data=password_form())
    await client.get(LIMITS, headers=auth)

    everything = (await client.get("/_sandbox/requests")).json()
    rest_only = (await client.get("/_sandbox/requests", params={"kind": "rest"})).json()
    later = (await client.get("/_sandbox/requests", params={"since": everything[0]["seq"]})).json()
    await client.delete("/_sandbox/requests")

    assert [r["kind"] for r in everything] == ["oauth", "rest"]
    assert everything[0]["body"].startswith("grant_type=password")
    assert [r["url"] for r in rest_only] == [LIMITS]
    assert later == rest_only
    assert state.request_log() == []


async def test_request_log_can_be_turned_off(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.knobs.log_requests = False

    await client.get(LIMITS, headers=auth)

    assert state.request_log() == []


async def test_register_app_user_and_mint_tokens_over_http(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    app = await client.post(
        "/_sandbox/connected-apps",
        json={
            "client_id": "cb-test",
            "client_secret": "s3cret",
            "callback_urls": ["http://127.0.0.1:9/oauth_client/callback"],
        },
    )
    user = await client.post(
        "/_sandbox/users",
        json={
            "username": "agent@example.jp",
            "password": "pw",
            "security_token": "TOK",
            "last_name": "山田",
            "first_name": "花子",
        },
    )
    token = await client.post(
        "/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "cb-test",
            "client_secret": "s3cret",
            "username": "agent@example.jp",
            "password": "pwTOK",
        },
    )
    minted = await client.post("/_sandbox/tokens", json={"username": "agent@example.jp"})
    names = await client.get(
        f"{V45}/query",
        params={"q": "SELECT Name FROM User WHERE Username = 'agent@example.jp'"},
        headers={"Authorization": f"Bearer {minted.json()['access_token']}"},
    )
    expired = await client.post("/_sandbox/tokens/expire")

    assert app.status_code == 201 and user.status_code == 201
    assert token.status_code == 200
    assert names.json()["records"][0]["Name"] == "山田 花子"
    assert expired.json()["expired"] >= 2
    assert state.valid_access_token(token.json()["access_token"]) is None


async def test_api_usage_can_be_set(
    client: httpx.AsyncClient, auth: dict[str, str], state: SandboxState
) -> None:
    await client.put("/_sandbox/api-usage", json={"used": 14999})

    ok = await client.get(LIMITS, headers=auth)
    over = await client.get(LIMITS, headers=auth)

    assert ok.headers["sforce-limit-info"] == "api-usage=15000/15000"
    assert over.status_code == 403
