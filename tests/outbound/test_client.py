"""The outbound path against mocked CRMs (respx): retries, errors, decoding, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from callbridge.outbound import (
    AccountLimits,
    BasicAuth,
    BearerAuth,
    OAuthAuth,
    Outbound,
    OutboundRequest,
    RetryPolicy,
    deadline_after,
)
from tests.httpx2_mock import mocked_crm
from tests.outbound.fakes import MemoryTokenSource, Sleeps, connected, make_outbound

API = "https://acme.my.salesforce.com/services/data/v62.0"


@pytest.fixture
async def outbound() -> AsyncIterator[Outbound]:
    async with make_outbound(MemoryTokenSource(connected())) as client:
        yield client


@pytest.fixture
def crm() -> respx.MockRouter:
    with mocked_crm() as router:
        yield router


def sleeps_of(outbound: Outbound) -> list[float]:
    sleep = outbound._sleep
    assert isinstance(sleep, Sleeps)
    return sleep.delays


# ---- retry policy per method --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "retried"),
    [
        ("GET", f"{API}/query?q=SELECT+Id+FROM+Contact", True),
        ("PUT", f"{API}/x", True),
        ("DELETE", f"{API}/sobjects/Case/500000000000001AAA", True),
        ("PATCH", f"{API}/sobjects/Case/500000000000001AAA", True),
        ("PATCH", f"{API}/sobjects/Task/B_UniqueId__c/1700000000.42", True),
        ("PATCH", f"{API}/composite/sobjects", False),
        ("POST", f"{API}/sobjects/Case/", False),
    ],
)
async def test_5xx_is_retried_only_for_idempotent_methods(
    outbound: Outbound, crm: respx.MockRouter, method: str, url: str, retried: bool
) -> None:
    route = crm.route(method=method, url=url).mock(
        side_effect=[
            httpx.Response(503, json=[{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}]),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    result = await outbound.send(OutboundRequest(method=method, url=url, body="{}"))
    if retried:
        assert result.status == 200 and result.error is None
        assert route.call_count == 2
        assert [a.status for a in result.attempts] == [503, 200]
        assert result.attempts[1].waited_ms > 0
    else:
        assert result.status == 503
        assert route.call_count == 1
        assert result.error is not None and result.error.kind == "http_status"
        assert result.error.message == "HTTP 503: SERVER_UNAVAILABLE: down"
        assert result.error.code == "SERVER_UNAVAILABLE"


async def test_post_is_retried_when_the_rule_opts_in(
    outbound: Outbound, crm: respx.MockRouter
) -> None:
    route = crm.post(f"{API}/sobjects/Case/").mock(
        side_effect=[httpx.Response(500), httpx.Response(500), httpx.Response(201, json={})]
    )
    result = await outbound.send(
        OutboundRequest(
            "POST", f"{API}/sobjects/Case/", body="{}", retry=RetryPolicy(retry_non_idempotent=True)
        )
    )
    assert result.status == 201 and route.call_count == 3
    delays = sleeps_of(outbound)
    assert len(delays) == 2
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0  # 0.5 then 1 s, jittered


async def test_post_is_retried_when_it_never_left(
    outbound: Outbound, crm: respx.MockRouter
) -> None:
    route = crm.post(f"{API}/sobjects/Case/").mock(
        side_effect=[httpx.ConnectError("connection refused"), httpx.Response(201, json={})]
    )
    result = await outbound.send(OutboundRequest("POST", f"{API}/sobjects/Case/", body="{}"))
    assert result.status == 201 and route.call_count == 2
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.kind == "connect"


async def test_post_is_not_retried_after_a_read_timeout(
    outbound: Outbound, crm: respx.MockRouter
) -> None:
    route = crm.post(f"{API}/sobjects/Case/").mock(side_effect=httpx.ReadTimeout("slow"))
    result = await outbound.send(OutboundRequest("POST", f"{API}/sobjects/Case/", body="{}"))
    assert route.call_count == 1
    assert result.status is None
    assert result.error is not None and result.error.kind == "timeout"


async def test_get_gives_up_after_max_attempts(outbound: Outbound, crm: respx.MockRouter) -> None:
    route = crm.get(f"{API}/limits").mock(side_effect=httpx.ConnectError("refused"))
    result = await outbound.send(
        OutboundRequest("GET", f"{API}/limits", retry=RetryPolicy(max_attempts=4))
    )
    assert route.call_count == 4
    assert len(result.attempts) == 4
    assert result.error is not None and result.error.kind == "connect"
    assert "refused" in result.error.message


async def test_no_retries_policy(outbound: Outbound, crm: respx.MockRouter) -> None:
    route = crm.get(f"{API}/limits").mock(return_value=httpx.Response(503))
    result = await outbound.send(OutboundRequest("GET", f"{API}/limits", retry=RetryPolicy.NONE))
    assert route.call_count == 1 and result.status == 503


# ---- Retry-After and limits ----------------------------------------------------------


async def test_retry_after_is_honoured(outbound: Outbound, crm: respx.MockRouter) -> None:
    crm.get(f"{API}/limits").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200)]
    )
    result = await outbound.send(OutboundRequest("GET", f"{API}/limits"))
    assert result.status == 200
    assert sleeps_of(outbound) == [7.0]
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.kind == "limit"


async def test_retry_after_as_http_date(outbound: Outbound, crm: respx.MockRouter) -> None:
    from datetime import timedelta
    from email.utils import format_datetime

    from callbridge.kit.time import utcnow

    when = format_datetime(utcnow() + timedelta(seconds=20), usegmt=True)
    crm.get(f"{API}/limits").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200)]
    )
    await outbound.send(OutboundRequest("GET", f"{API}/limits"))
    (delay,) = sleeps_of(outbound)
    assert 18 <= delay <= 20


async def test_too_long_retry_after_returns_the_answer(
    outbound: Outbound, crm: respx.MockRouter
) -> None:
    route = crm.get(f"{API}/limits").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"})
    )
    result = await outbound.send(OutboundRequest("GET", f"{API}/limits"))
    assert route.call_count == 1 and sleeps_of(outbound) == []
    assert result.error is not None and result.error.kind == "limit"


async def test_request_limit_exceeded_is_a_limit(outbound: Outbound, crm: respx.MockRouter) -> None:
    body = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    route = crm.get(f"{API}/limits").mock(return_value=httpx.Response(403, json=body))
    result = await outbound.send(OutboundRequest("GET", f"{API}/limits"))
    assert route.call_count == 3
    assert result.error is not None
    assert result.error.kind == "limit"
    assert result.error.code == "REQUEST_LIMIT_EXCEEDED"
    assert "TotalRequests Limit exceeded." in result.error.message


async def test_retry_that_would_pass_the_deadline_is_not_started(
    outbound: Outbound, crm: respx.MockRouter
) -> None:
    route = crm.get(f"{API}/limits").mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "5"}), httpx.Response(200)]
    )
    result = await outbound.send(
        OutboundRequest("GET", f"{API}/limits", deadline=deadline_after(2.0))
    )
    assert route.call_count == 1 and result.status == 503 and sleeps_of(outbound) == []


async def test_deadline_bounds_the_whole_send(outbound: Outbound, crm: respx.MockRouter) -> None:
    never = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200)

    crm.get(f"{API}/search").mock(side_effect=hang)
    result = await outbound.send(
        OutboundRequest(
            "GET",
            f"{API}/search",
            timeout=30,
            retry=RetryPolicy.NONE,
            deadline=deadline_after(0.05),
        )
    )
    assert result.status is None
    assert result.error is not None and result.error.kind == "timeout"
    assert "deadline" in result.error.message
    assert result.elapsed_ms < 5000


# ---- invalid requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "auth", "fragment"),
    [
        ("BREW", f"{API}/x", None, "unsupported HTTP method"),
        ("GET", "/services/data", None, "must be absolute"),
        ("GET", "ftp://example.com/", None, "must be absolute"),
        ("GET", "http://crm.example.com/api", BearerAuth("abcd1234"), "plain http://"),
    ],
)
async def test_invalid_requests_are_not_sent(
    outbound: Outbound,
    crm: respx.MockRouter,
    method: str,
    url: str,
    auth: object,
    fragment: str,
) -> None:
    request = (
        OutboundRequest(method, url)
        if auth is None
        else OutboundRequest(
            method,
            url,
            auth=auth,  # type: ignore[arg-type]
        )
    )
    result = await outbound.send(request)
    assert result.error is not None and result.error.kind == "request"
    assert fragment in result.error.message
    assert result.attempts == ()


async def test_plain_http_is_allowed_without_credentials_and_to_loopback(
    outbound: Outbound, crm: respx.MockRouter
) -> None:
    crm.get("http://crm.example.com/api").mock(return_value=httpx.Response(200))
    crm.get("http://127.0.0.1:8123/api").mock(return_value=httpx.Response(200))
    assert (await outbound.send(OutboundRequest("GET", "http://crm.example.com/api"))).ok
    loopback = OutboundRequest("GET", "http://127.0.0.1:8123/api", auth=BearerAuth("abcd1234"))
    assert (await outbound.send(loopback)).ok


async def test_plain_http_allowed_by_the_setting(crm: respx.MockRouter) -> None:
    crm.get("http://crm.example.com/api").mock(return_value=httpx.Response(200))
    async with make_outbound(allow_insecure_http=True) as outbound:
        result = await outbound.send(
            OutboundRequest("GET", "http://crm.example.com/api", auth=BasicAuth("u", "pw12"))
        )
    assert result.ok


# ---- answers ---------------------------------------------------------------------------


async def test_body_decoded_by_charset(outbound: Outbound, crm: respx.MockRouter) -> None:
    text = "CDF 株式会社"
    crm.get(f"{API}/sjis").mock(
        return_value=httpx.Response(
            200,
            content=text.encode("shift_jis"),
            headers={"Content-Type": "text/plain; charset=Shift_JIS"},
        )
    )
    crm.get(f"{API}/undeclared").mock(
        return_value=httpx.Response(
            200,
            content=text.encode("cp932"),
            headers={"Content-Type": "text/plain"},
        )
    )
    crm.get(f"{API}/json").mock(
        return_value=httpx.Response(
            200,
            content='{"Name":"CDF 株式会社"}'.encode(),
            headers={"Content-Type": "application/json;charset=UTF-8"},
        )
    )
    sjis = await outbound.send(OutboundRequest("GET", f"{API}/sjis"))
    undeclared = await outbound.send(OutboundRequest("GET", f"{API}/undeclared"))
    as_json = await outbound.send(OutboundRequest("GET", f"{API}/json"))
    assert sjis.text == text and undeclared.text == text
    assert as_json.json() == {"Name": text} and not as_json.binary


async def test_binary_body(outbound: Outbound, crm: respx.MockRouter) -> None:
    crm.get(f"{API}/wav").mock(
        return_value=httpx.Response(
            200,
            content=b"RIFF\x00\x00WAVE",
            headers={"Content-Type": "audio/wav"},
        )
    )
    result = await outbound.send(OutboundRequest("GET", f"{API}/wav"))
    assert result.binary and result.text == "" and result.content == b"RIFF\x00\x00WAVE"
    record = result.response_record()
    assert record is not None and record["body"] == "<10 bytes of binary data>"


async def test_long_body_is_cut(outbound: Outbound, crm: respx.MockRouter) -> None:
    crm.get(f"{API}/big").mock(return_value=httpx.Response(200, content=b"x" * 5000))
    result = await outbound.send(OutboundRequest("GET", f"{API}/big", max_response_bytes=1000))
    assert result.truncated and len(result.content) == 1000


async def test_headers_sent_as_given(outbound: Outbound, crm: respx.MockRouter) -> None:
    route = crm.post(f"{API}/sobjects/Case/").mock(return_value=httpx.Response(201))
    await outbound.send(
        OutboundRequest(
            "POST",
            f"{API}/sobjects/Case/",
            body='{"Subject":"着信"}',
            headers=[("Content-Type", "application/json"), ("X-Caller", "山田\r\nX-Evil: 1")],
        )
    )
    sent = route.calls.last.request
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers.raw[-1] != (b"X-Evil", b"1")
    assert "x-evil" not in sent.headers
    assert (b"X-Caller", "山田  X-Evil: 1".encode()) in sent.headers.raw
    assert sent.content == '{"Subject":"着信"}'.encode()


async def test_empty_body_sends_no_body(outbound: Outbound, crm: respx.MockRouter) -> None:
    route = crm.get(f"{API}/limits").mock(return_value=httpx.Response(200))
    await outbound.send(OutboundRequest("GET", f"{API}/limits", body=""))
    sent = route.calls.last.request
    assert sent.content == b"" and "content-length" not in sent.headers


async def test_3xx_is_not_an_error(outbound: Outbound, crm: respx.MockRouter) -> None:
    crm.patch(f"{API}/sobjects/Task/B_UniqueId__c/1").mock(
        return_value=httpx.Response(300, json=["/a", "/b"])
    )
    result = await outbound.send(OutboundRequest("PATCH", f"{API}/sobjects/Task/B_UniqueId__c/1"))
    assert result.status == 300 and result.error is None


# ---- per-account concurrency and API usage --------------------------------------------


async def test_concurrency_is_capped_per_account(crm: respx.MockRouter) -> None:
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if peak >= 3:
            release.set()
        await release.wait()
        in_flight -= 1
        return httpx.Response(200)

    crm.get(f"{API}/limits").mock(side_effect=slow)
    source = MemoryTokenSource(connected(limits=AccountLimits(max_in_flight=3)))
    async with make_outbound(source) as out:
        results = await asyncio.gather(
            *(
                out.send(OutboundRequest("GET", f"{API}/limits", auth=OAuthAuth(1)))
                for _ in range(12)
            )
        )
    assert all(r.ok for r in results)
    assert peak == 3


async def test_api_usage_is_recorded(crm: respx.MockRouter) -> None:
    source = MemoryTokenSource(connected())
    crm.get(f"{API}/limits").mock(
        return_value=httpx.Response(200, headers={"Sforce-Limit-Info": "api-usage=18/5000"})
    )
    async with make_outbound(source) as out:
        await out.send(OutboundRequest("GET", f"{API}/limits", auth=OAuthAuth(1)))
        usage = out.api_usage(1)
        assert usage is not None and (usage.used, usage.allowed) == (18, 5000)
        await asyncio.sleep(0)
    assert [(u.used, u.allowed) for u in source.usage] == [(18, 5000)]
