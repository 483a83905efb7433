"""OAuth in the outbound path: single-flight refresh, invalid_grant, expiry, caching."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
import respx

from callbridge.kit.time import utcnow
from callbridge.outbound import OAuthAuth, OutboundRequest, RetryPolicy, TokenRefreshError
from tests.httpx2_mock import mocked_crm
from tests.outbound.fakes import MemoryTokenSource, connected, make_outbound

API = "https://acme.my.salesforce.com/services/data/v62.0"
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@pytest.fixture
def crm() -> respx.MockRouter:
    with mocked_crm() as router:
        yield router


def accept_only(prefix: str):
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization", "").startswith(f"Bearer {prefix}"):
            return httpx.Response(200, json={"totalSize": 0, "done": True, "records": []})
        return httpx.Response(401, json=INVALID_SESSION)

    return answer


async def test_one_refresh_for_fifty_concurrent_requests(crm: respx.MockRouter) -> None:
    source = MemoryTokenSource(connected("expired-token"))
    source.refresh_gate = asyncio.Event()
    route = crm.get(f"{API}/query").mock(side_effect=accept_only("fresh-token"))
    async with make_outbound(source) as outbound:
        tasks = [
            asyncio.create_task(
                outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
            )
            for _ in range(50)
        ]
        # Let every request meet the 401 and queue behind the one refresh.
        while route.call_count < 50:
            await asyncio.sleep(0)
        source.refresh_gate.set()
        results = await asyncio.gather(*tasks)
    assert source.refreshes == 1
    assert all(r.status == 200 and r.error is None for r in results)
    assert route.call_count == 100
    for result in results:
        assert [a.status for a in result.attempts] == [401, 200]
        assert result.attempts[1].after_refresh


async def test_repeat_after_refresh_even_without_retries(crm: respx.MockRouter) -> None:
    source = MemoryTokenSource(connected("expired-token"))
    crm.get(f"{API}/search").mock(side_effect=accept_only("fresh-token"))
    async with make_outbound(source) as outbound:
        result = await outbound.send(
            OutboundRequest("GET", f"{API}/search", auth=OAuthAuth(1), retry=RetryPolicy.NONE)
        )
    assert result.status == 200 and source.refreshes == 1


async def test_invalid_grant_marks_the_account_and_stops_refreshing(
    crm: respx.MockRouter,
) -> None:
    source = MemoryTokenSource(connected("expired-token"))
    source.refresh_error = TokenRefreshError(
        "invalid_grant: expired access/refresh token", reauthorize=True, code="invalid_grant"
    )
    route = crm.get(f"{API}/query").mock(side_effect=accept_only("never"))
    async with make_outbound(source) as outbound:
        first = await asyncio.gather(
            *(
                outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
                for _ in range(20)
            )
        )
        calls_after_first_wave = route.call_count
        later = await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
    assert source.refreshes == 1
    for result in first:
        assert result.error is not None and result.error.kind == "auth"
        assert "needs to be reconnected" in result.error.message
    # The later request is refused before anything goes on the wire.
    assert route.call_count == calls_after_first_wave
    assert later.error is not None and later.error.kind == "auth"
    assert later.error.code == "needs_reauthorization"
    assert later.attempts[0].status is None


async def test_needs_reauthorization_survives_cache_expiry(crm: respx.MockRouter) -> None:
    now = [0.0]
    source = MemoryTokenSource(
        replace(connected(), status="needs_reauthorization", access_token=None)
    )
    route = crm.get(f"{API}/query").mock(return_value=httpx.Response(200))
    async with make_outbound(source, clock=lambda: now[0]) as outbound:
        for _ in range(3):
            result = await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
            assert result.error is not None and result.error.kind == "auth"
            now[0] += 31
        assert source.refreshes == 0 and route.call_count == 0
        # An admin reconnects (in another process): the next read after the cache
        # period picks up the new token.
        source.token = replace(connected("reconnected"), version=5)
        now[0] += 31
        result = await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
    assert result.ok


async def test_forget_account_rereads_at_once(crm: respx.MockRouter) -> None:
    source = MemoryTokenSource(connected("first"))
    route = crm.get(f"{API}/query").mock(return_value=httpx.Response(200))
    async with make_outbound(source) as outbound:
        await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
        source.token = replace(connected("second"), version=2)
        outbound.forget_account(1)
        await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
    assert route.calls[0].request.headers["authorization"] == "Bearer first"
    assert route.calls[1].request.headers["authorization"] == "Bearer second"
    assert source.loads == 2


async def test_transient_refresh_failure_cools_down(crm: respx.MockRouter) -> None:
    now = [100.0]
    source = MemoryTokenSource(connected("expired-token"))
    source.refresh_error = TokenRefreshError("token endpoint unreachable", reauthorize=False)
    crm.get(f"{API}/query").mock(side_effect=accept_only("fresh-token"))
    async with make_outbound(source, clock=lambda: now[0]) as outbound:
        request = OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1))
        first = await outbound.send(request)
        second = await outbound.send(request)
        assert source.refreshes == 1
        assert first.error is not None and "unreachable" in first.error.message
        assert second.error is not None and "moments ago" in second.error.message
        now[0] += 6
        source.refresh_error = None
        third = await outbound.send(request)
    assert third.ok and source.refreshes == 2


async def test_token_with_known_expiry_is_refreshed_before_use(crm: respx.MockRouter) -> None:
    source = MemoryTokenSource(
        connected("soon-expired", expires_at=utcnow() + timedelta(seconds=10))
    )
    route = crm.get(f"{API}/query").mock(side_effect=accept_only("fresh-token"))
    async with make_outbound(source) as outbound:
        result = await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
    assert result.ok and source.refreshes == 1 and route.call_count == 1


async def test_second_401_after_refresh_is_an_auth_error(crm: respx.MockRouter) -> None:
    source = MemoryTokenSource(connected("expired-token"))
    route = crm.get(f"{API}/query").mock(return_value=httpx.Response(401, json=INVALID_SESSION))
    async with make_outbound(source) as outbound:
        result = await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
    assert route.call_count == 2 and source.refreshes == 1
    assert result.error is not None and result.error.kind == "auth"
    assert result.error.code == "INVALID_SESSION_ID"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "account_missing"),
        (replace(connected(), status="not_connected", access_token=None), "not_connected"),
    ],
)
async def test_unusable_accounts(crm: respx.MockRouter, token, code: str) -> None:
    async with make_outbound(MemoryTokenSource(token)) as outbound:
        result = await outbound.send(OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1)))
        assert await outbound.oauth_credentials(1) is None
    assert result.error is not None and result.error.kind == "auth" and result.error.code == code


async def test_instance_url_and_credentials() -> None:
    async with make_outbound(MemoryTokenSource(connected("tok-1234"))) as outbound:
        assert await outbound.instance_url(1) == "https://acme.my.salesforce.com"
        credentials = await outbound.oauth_credentials(1)
    assert credentials is not None and credentials.access_token == "tok-1234"
    assert "tok-1234" not in repr(credentials)
