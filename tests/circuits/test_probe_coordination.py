"""One probe per circuit per interval across processes: two applications (two engines,
two connection pools, as two processes have) on one database claim the probe at once
(issue 22 §1)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select, update

from callbridge.app import create_app
from callbridge.calls.dispatcher import Pace
from callbridge.circuits.store import DatabaseCircuitStore, resume_offsets
from callbridge.kit.time import utcnow
from callbridge.models import Call, CallEvent, CrmCircuit
from callbridge.settings import Settings

KEY = "account:7"


async def park_calls(app: FastAPI, count: int) -> list[int]:
    """Calls whose first event is parked for KEY, parked one second apart (oldest first);
    their event ids."""
    runtime = app.state.runtime
    now = utcnow()
    ids = []
    async with runtime.sessionmaker() as session:
        for n in range(count):
            parked_at = now - timedelta(seconds=count - n)
            call = Call(call_id=f"parked-{n}", event_count=1, due_at=now + timedelta(hours=24))
            session.add(call)
            await session.flush()
            event = CallEvent(
                call_pk=call.id,
                event="queue",
                occurred_at=parked_at,
                received_at=parked_at,
                due_at=now + timedelta(hours=24),
                payload={},
                status="pending",
                park_key=KEY,
                parked_at=parked_at,
            )
            session.add(event)
            await session.flush()
            ids.append(event.id)
        await session.commit()
    return ids


async def test_two_processes_send_one_probe_per_interval(app: FastAPI, settings: Settings) -> None:
    events = await park_calls(app, 3)
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        stores = [
            DatabaseCircuitStore(app.state.runtime),
            DatabaseCircuitStore(second.state.runtime),
        ]
        await stores[0].open(KEY, "HTTP 503: SERVER_UNAVAILABLE")
        async with app.state.runtime.sessionmaker() as session:
            await session.execute(
                update(CrmCircuit).values(probe_at=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
        claims = await asyncio.gather(*(stores[n % 2].claim_probe(KEY) for n in range(10)))
        assert claims.count(True) == 1
        async with app.state.runtime.sessionmaker() as session:
            circuit = await session.get(CrmCircuit, KEY)
            assert circuit is not None and circuit.state == "open"
            # The oldest parked call is the probe, due now; the others keep waiting.
            assert circuit.probe_event_pk == events[0]
            assert circuit.probe_at > utcnow()
            dues = list(
                await session.scalars(
                    select(CallEvent.due_at).where(CallEvent.id.in_(events)).order_by(CallEvent.id)
                )
            )
        assert dues[0] <= utcnow() < dues[1] and dues[1] == dues[2]
        # Both see the probe; only its event may pass the open circuit.
        assert await stores[1].is_probe(KEY, events[0])
        assert not await stores[1].is_probe(KEY, events[1])

        # The probe is answered: the circuit closes, the rest resume oldest first.
        await stores[1].probe_sent(KEY, events[0], recovered=True, error="")
        async with app.state.runtime.sessionmaker() as session:
            circuit = await session.get(CrmCircuit, KEY)
            assert circuit is not None and circuit.state == "closed" and circuit.probes == 1
            rows = list(
                await session.execute(
                    select(CallEvent.id, CallEvent.due_at)
                    .where(CallEvent.id.in_(events[1:]))
                    .order_by(CallEvent.parked_at)
                )
            )
        assert [r[0] for r in rows] == events[1:]
        assert rows[0][1] < rows[1][1] < utcnow() + timedelta(seconds=5)


def test_resumption_ramps_up_to_the_rate() -> None:
    offsets = resume_offsets(600, 50.0)
    assert offsets[0] == 0.0
    assert offsets[1] == 1 / 5.0  # a tenth of the rate at first
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps == sorted(gaps, reverse=True)  # never faster than the step before
    assert abs(gaps[-1] - 1 / 50.0) < 1e-9  # then the full rate
    assert 12.0 < offsets[-1] < 18.0  # 600 calls: ten seconds of ramp, then 50 a second


async def test_parked_events_start_no_faster_than_the_pace() -> None:
    pace = Pace(200.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(5):
        await pace.wait()
    # The first passes at once, each next one 5 ms after the one before.
    assert loop.time() - started >= 4 / 200.0
