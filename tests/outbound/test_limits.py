"""Salesforce-shaped admission of an account's requests (outbound/limits.py): no blanket
cap on short requests, long requests counted against the org's limit, a pause after
``ConcurrentPerOrgLongTxn``, the safety cap, and the limits stored with the account."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from callbridge.outbound import AccountLimits, OAuthAuth, OutboundRequest, RetryPolicy
from callbridge.outbound.limits import AccountGate
from tests.helpers import FakeClock
from tests.httpx2_mock import mocked_crm
from tests.outbound.fakes import MemoryTokenSource, Sleeps, connected, make_outbound

API = "https://acme.my.salesforce.com/services/data/v62.0"
LONG_TXN = [
    {"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
]
TOTAL = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


@pytest.fixture
def crm() -> respx.MockRouter:
    with mocked_crm() as router:
        yield router


class Held:
    """A CRM that holds every request until released, counting those in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.arrived = 0
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.arrived += 1
        self.peak = max(self.peak, self.in_flight)
        await self.release.wait()
        self.in_flight -= 1
        return httpx.Response(200, json={"done": True})


async def until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0)


def query(**kwargs: object) -> OutboundRequest:
    return OutboundRequest("GET", f"{API}/query", auth=OAuthAuth(1), **kwargs)  # type: ignore[arg-type]


async def test_default_limits_let_three_hundred_short_requests_fly_at_once(
    crm: respx.MockRouter,
) -> None:
    held = Held()
    crm.get(f"{API}/query").mock(side_effect=held)
    async with make_outbound(MemoryTokenSource(connected())) as out:
        tasks = [asyncio.create_task(out.send(query())) for _ in range(300)]
        await until(lambda: held.arrived == 300)
        held.release.set()
        results = await asyncio.gather(*tasks)
    assert held.peak == 300
    assert all(r.status == 200 for r in results)


async def test_new_requests_wait_while_the_long_request_limit_is_reached(
    crm: respx.MockRouter,
) -> None:
    held = Held()
    crm.get(f"{API}/query").mock(side_effect=held)
    source = MemoryTokenSource(connected(limits=AccountLimits(long_request_limit=2)))
    # Requests count as long at once here (in production: after 5 s on the wire).
    async with make_outbound(source, long_request_after=0.0) as out:
        first = [asyncio.create_task(out.send(query())) for _ in range(2)]
        await until(lambda: held.arrived == 2)
        gate = out._accounts[1].gate
        await until(lambda: gate.long == 2)
        third = asyncio.create_task(out.send(query()))
        await until(lambda: len(gate._waiters) == 1)
        assert held.arrived == 2  # the third has not reached the CRM
        held.release.set()
        results = await asyncio.gather(*first, third)
    assert held.arrived == 3
    assert [r.status for r in results] == [200, 200, 200]
    assert gate.in_flight == 0 and gate.long == 0


async def test_long_request_limit_zero_means_no_limit(crm: respx.MockRouter) -> None:
    held = Held()
    crm.get(f"{API}/query").mock(side_effect=held)
    source = MemoryTokenSource(connected(limits=AccountLimits(long_request_limit=0)))
    async with make_outbound(source, long_request_after=0.0) as out:
        tasks = [asyncio.create_task(out.send(query())) for _ in range(40)]
        await until(lambda: held.arrived == 40)
        held.release.set()
        await asyncio.gather(*tasks)
    assert held.peak == 40


async def test_a_long_txn_refusal_is_sent_again_after_a_pause_even_for_a_post(
    crm: respx.MockRouter,
) -> None:
    clock = FakeClock()
    sleeps = Sleeps()

    async def sleep(delay: float) -> None:
        await sleeps(delay)
        clock.advance(delay)

    route = crm.post(f"{API}/sobjects/Case/").mock(
        side_effect=[
            httpx.Response(403, json=LONG_TXN),
            httpx.Response(403, json=LONG_TXN),
            httpx.Response(201, json={"id": "500000000000001AAA", "success": True}),
        ]
    )
    async with make_outbound(MemoryTokenSource(connected()), sleep=sleep, clock=clock) as out:
        result = await out.send(
            OutboundRequest("POST", f"{API}/sobjects/Case/", body="{}", auth=OAuthAuth(1))
        )
        gate = out._accounts[1].gate
        assert gate.pause == 0.0  # the success ended the backoff
    assert result.status == 201 and route.call_count == 3
    assert [a.status for a in result.attempts] == [403, 403, 201]
    # Each retry: the retry backoff (0.5 s, then 1 s, jittered), then what is left of the
    # account's pause (1 s after the first refusal, 2 s after the second).
    backoff1, pause1, backoff2, pause2 = sleeps.delays
    assert 0.25 <= backoff1 <= 0.5 and pause1 == pytest.approx(1.0 - backoff1)
    assert 0.5 <= backoff2 <= 1.0 and pause2 == pytest.approx(2.0 - backoff2)


async def test_the_pause_holds_back_other_requests_of_the_account(
    crm: respx.MockRouter,
) -> None:
    clock = FakeClock()
    sleeps = Sleeps()
    crm.get(f"{API}/query").mock(
        side_effect=[httpx.Response(403, json=LONG_TXN), httpx.Response(200, json={})]
    )
    async with make_outbound(MemoryTokenSource(connected()), sleep=sleeps, clock=clock) as out:
        refused = await out.send(query(retry=RetryPolicy.NONE))
        clock.advance(0.25)
        answered = await out.send(query(retry=RetryPolicy.NONE))
    assert refused.error is not None and refused.error.kind == "limit"
    assert refused.error.message == (
        "HTTP 403: REQUEST_LIMIT_EXCEEDED: ConcurrentPerOrgLongTxn Limit exceeded."
    )
    assert answered.status == 200
    assert sleeps.delays == [pytest.approx(0.75)]


async def test_the_daily_limit_is_not_sent_again_for_a_post(crm: respx.MockRouter) -> None:
    route = crm.post(f"{API}/sobjects/Case/").mock(return_value=httpx.Response(403, json=TOTAL))
    async with make_outbound(MemoryTokenSource(connected())) as out:
        result = await out.send(
            OutboundRequest("POST", f"{API}/sobjects/Case/", body="{}", auth=OAuthAuth(1))
        )
        assert out._accounts[1].gate.pause == 0.0
    assert route.call_count == 1
    assert result.error is not None and result.error.code == "REQUEST_LIMIT_EXCEEDED"


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    clock = FakeClock()
    gate = AccountGate(clock=clock, sleep=Sleeps())
    limits = AccountLimits(max_in_flight=1, long_request_limit=0)
    holder = await gate.acquire(limits)
    cancelled = asyncio.create_task(gate.acquire(limits))
    waiting = asyncio.create_task(gate.acquire(limits))
    await until(lambda: len(gate._waiters) == 2)
    holder.release()  # wakes the first waiter ...
    cancelled.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    slot = await asyncio.wait_for(waiting, 5)
    assert gate.in_flight == 1
    slot.release()
    assert gate.in_flight == 0 and not gate._waiters
