"""What a process keeps for IVRs: a compiled IVR is used as it is for half
``REVISION_TTL``, then checked again in the background while invocations go on with it,
and waited for only when it is older than ``REVISION_TTL`` — so another process's change
is used within ``REVISION_TTL`` and a steady stream of invocations never waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import update

from callbridge.ivr import repository
from callbridge.ivr import runtime as ivr_runtime_module
from callbridge.ivr.runtime import REVISION_TTL, SYSTEM_TTL, get_ivr_runtime
from callbridge.models import Ivr, IvrResponse, SystemSetting
from tests.helpers import FakeClock, Gated
from tests.ivr.conftest import CRM, create_ivr, simple_ivr

FOUND = '{"found":true,"name":"CDF 株式会社"}'


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    clock = FakeClock()
    monkeypatch.setattr(ivr_runtime_module, "monotonic", clock)
    yield clock


@pytest.fixture
def revisions(monkeypatch: pytest.MonkeyPatch) -> Gated:
    """Revision checks, counted and held at will."""
    gated = Gated(repository.revision_of)
    monkeypatch.setattr(repository, "revision_of", gated)
    return gated


async def invoke(client: httpx.AsyncClient, pbx: dict[str, str], n: int = 0) -> dict[str, Any]:
    body = {"call_id": f"c-{n}", "tel": "07075373713"}
    response = await client.post("/api/v1/ivr/lookup/invoke", json=body, headers=pbx)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def change_elsewhere(app: FastAPI, text: str) -> None:
    """As another process's save would: the stored IVR and its revision change, and this
    process is not told."""
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(
            update(IvrResponse)
            .where(IvrResponse.priority == 2)
            .values(guidance={"type": "tts", "text": text})
        )
        await session.execute(update(Ivr).values(revision=Ivr.revision + 1))
        await session.commit()


@pytest.fixture
async def ivr_ready(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
    clock: FakeClock,
    revisions: Gated,
) -> None:
    """The IVR saved, loaded and compiled by a first invocation; no check counted yet."""
    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    await create_ivr(client, admin, simple_ivr())
    clock.now += REVISION_TTL  # past the recheck window of the save in this process
    await invoke(client, pbx)
    revisions.count = 0
    revisions.started.clear()


async def test_a_kept_ivr_is_checked_in_the_background_from_half_its_age(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx: dict[str, str],
    clock: FakeClock,
    revisions: Gated,
    ivr_ready: None,
) -> None:
    clock.now += REVISION_TTL * 0.4
    await invoke(client, pbx)
    assert revisions.count == 0  # young enough: no check at all
    revisions.hold()
    clock.now += REVISION_TTL * 0.2
    answers = await asyncio.wait_for(
        asyncio.gather(*(invoke(client, pbx, n) for n in range(5))), 10
    )
    assert [answer["outcome"] for answer in answers] == ["matched"] * 5
    assert revisions.count == 1  # one check for all five, none waited for it
    revisions.gate.set()
    await get_ivr_runtime(app.state.runtime).settle()
    clock.now += REVISION_TTL * 0.4
    await invoke(client, pbx)
    assert revisions.count == 1


async def test_another_process_s_change_is_used_once_the_background_check_saw_it(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx: dict[str, str],
    clock: FakeClock,
    revisions: Gated,
    ivr_ready: None,
) -> None:
    await change_elsewhere(app, "{CODE1}様、いつもありがとうございます。")
    clock.now += REVISION_TTL * 0.6
    before = await invoke(client, pbx, 1)  # the kept copy, while the check runs
    assert before["guidance"]["text"] == "CDF 株式会社様、お電話ありがとうございます。"
    await get_ivr_runtime(app.state.runtime).settle()
    after = await invoke(client, pbx, 2)
    assert after["guidance"]["text"] == "CDF 株式会社様、いつもありがとうございます。"


async def test_an_ivr_older_than_the_revision_ttl_waits_for_the_check(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx: dict[str, str],
    clock: FakeClock,
    revisions: Gated,
    ivr_ready: None,
) -> None:
    await change_elsewhere(app, "{CODE1}様、いつもありがとうございます。")
    revisions.hold()
    clock.now += REVISION_TTL
    waiting = asyncio.ensure_future(invoke(client, pbx, 1))
    await asyncio.wait_for(revisions.started.wait(), 10)
    assert not waiting.done()
    revisions.gate.set()
    answer = await asyncio.wait_for(waiting, 10)
    assert answer["guidance"]["text"] == "CDF 株式会社様、いつもありがとうございます。"
    assert revisions.count == 1


async def test_a_failed_background_check_is_met_by_the_next_invocation_that_must_wait(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx: dict[str, str],
    clock: FakeClock,
    revisions: Gated,
    ivr_ready: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(session: Any, key: str) -> Any:
        raise ConnectionError("database unreachable")

    real, revisions.target = revisions.target, broken
    clock.now += REVISION_TTL * 0.6
    assert (await invoke(client, pbx, 1))["outcome"] == "matched"
    await get_ivr_runtime(app.state.runtime).settle()
    assert "never retrieved" not in caplog.text
    revisions.target = real
    clock.now += REVISION_TTL * 0.5  # the kept copy is now too old: this one checks
    assert (await invoke(client, pbx, 2))["outcome"] == "matched"
    assert revisions.count == 2


async def test_the_public_url_is_read_again_in_the_background(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    pbx: dict[str, str],
    crm: respx.MockRouter,
    clock: FakeClock,
) -> None:
    crm.get(f"{CRM}/lookup").respond(200, text=FOUND)
    responses = simple_ivr()["responses"]
    responses[1]["guidance"] = {"type": "tts", "text": "{SVADDR}"}
    await create_ivr(client, admin, simple_ivr(responses=responses))
    before = (await invoke(client, pbx, 1))["guidance"]["text"]
    async with app.state.runtime.sessionmaker() as session:  # another process's save
        session.add(SystemSetting(key="public_url", value="https://cti.example.com"))
        await session.commit()
    clock.now += SYSTEM_TTL * 0.6
    assert (await invoke(client, pbx, 2))["guidance"]["text"] == before
    await get_ivr_runtime(app.state.runtime).settle()
    assert (await invoke(client, pbx, 3))["guidance"]["text"] == "https://cti.example.com/"
