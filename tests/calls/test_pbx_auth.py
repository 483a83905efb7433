"""The PBX's token as the ingest path keeps it: checked again in the background from half
``REMEMBER_SECONDS`` (a steady stream never waits for the database), waited for after it,
and a revocation by another process honoured within ``REMEMBER_SECONDS``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from callbridge.calls import pbx_auth
from callbridge.kit.crypto import sha256_hex
from callbridge.models import ApiToken
from tests.calls.conftest import post_event
from tests.helpers import FakeClock, Gated, bearer, make_token

REMEMBER = pbx_auth.REMEMBER_SECONDS


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    clock = FakeClock()
    monkeypatch.setattr(pbx_auth, "monotonic", clock)
    pbx_auth._REMEMBERED.clear()
    yield clock
    pbx_auth._REMEMBERED.clear()


@pytest.fixture
def raw(pbx_headers: dict[str, str]) -> str:
    return pbx_headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def lookups(raw: str, monkeypatch: pytest.MonkeyPatch) -> Gated:
    """The lookups of the PBX token (not the admin's), counted and held at will."""
    gated = Gated(pbx_auth.token_for, lambda session, token: token == raw)
    monkeypatch.setattr(pbx_auth, "token_for", gated)
    return gated


async def send(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> int:
    response = await post_event(client, headers, event="incoming", call_id=f"c-{n}", tel="0312")
    return response.status_code


async def revoke_elsewhere(app: FastAPI, raw: str) -> None:
    """As another process would: a plain DELETE, no event in this process."""
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(delete(ApiToken).where(ApiToken.token_hash == sha256_hex(raw)))
        await session.commit()


async def test_a_remembered_token_is_checked_again_without_waiting(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx_headers: dict[str, str],
    clock: FakeClock,
    lookups: Gated,
) -> None:
    assert await send(client, pbx_headers, 1) == 202
    assert lookups.count == 1
    clock.now += REMEMBER * 0.4
    assert await send(client, pbx_headers, 2) == 202
    assert lookups.count == 1  # young enough: no check at all
    lookups.hold()
    clock.now += REMEMBER * 0.2  # past half its age: checked again, nobody waits for it
    answers = await asyncio.wait_for(
        asyncio.gather(*(send(client, pbx_headers, n) for n in range(3, 8))), 10
    )
    assert answers == [202] * 5
    assert lookups.count == 2  # one check for all five
    lookups.gate.set()
    await pbx_auth.settle_checks()
    clock.now += REMEMBER * 0.4  # under half REMEMBER_SECONDS since that check: none
    assert await send(client, pbx_headers, 8) == 202
    assert lookups.count == 2


async def test_a_token_older_than_remember_seconds_waits_for_its_check(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx_headers: dict[str, str],
    clock: FakeClock,
    lookups: Gated,
) -> None:
    assert await send(client, pbx_headers, 1) == 202
    lookups.hold()
    clock.now += REMEMBER
    waiting = asyncio.ensure_future(send(client, pbx_headers, 2))
    await asyncio.wait_for(lookups.started.wait(), 10)
    assert not waiting.done()
    lookups.gate.set()
    assert await asyncio.wait_for(waiting, 10) == 202
    assert lookups.count == 2


async def test_another_process_revoking_the_token_is_honoured_within_remember_seconds(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx_headers: dict[str, str],
    clock: FakeClock,
    lookups: Gated,
    raw: str,
) -> None:
    assert await send(client, pbx_headers, 1) == 202
    await revoke_elsewhere(app, raw)
    clock.now += REMEMBER * 0.6
    # Still remembered (checked 0.6 × REMEMBER_SECONDS ago); the background check finds
    # it gone.
    assert await send(client, pbx_headers, 2) == 202
    await pbx_auth.settle_checks()
    response = await post_event(client, pbx_headers, event="incoming", call_id="c-3", tel="1")
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid API token"


async def test_a_check_under_way_when_this_process_revokes_does_not_bring_the_token_back(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx_headers: dict[str, str],
    admin_headers: dict[str, str],
    clock: FakeClock,
    lookups: Gated,
) -> None:
    assert await send(client, pbx_headers, 1) == 202
    lookups.hold()
    clock.now += REMEMBER * 0.6
    assert await send(client, pbx_headers, 2) == 202  # starts the check, held at the gate
    await asyncio.wait_for(lookups.started.wait(), 10)
    listed = (await client.get("/api/v1/tokens", headers=admin_headers)).json()["items"]
    (token_id,) = [item["id"] for item in listed if item["scope"] == "pbx"]
    revoked = await client.delete(f"/api/v1/tokens/{token_id}", headers=admin_headers)
    assert revoked.status_code == 204
    # The check read the token before it was deleted: let it find it and finish.
    real, lookups.target = lookups.target, _found_anyway
    lookups.gate.set()
    await pbx_auth.settle_checks()
    lookups.target = real
    assert await send(client, pbx_headers, 3) == 401


async def _found_anyway(session: Any, raw: str) -> ApiToken:
    """A lookup that answers as if it had read the row just before it was deleted."""
    return ApiToken(name="pbx", scope="pbx", token_hash=sha256_hex(raw))


async def test_a_check_that_straddles_another_token_s_revocation_still_answers(
    app: FastAPI,
    client: httpx.AsyncClient,
    pbx_headers: dict[str, str],
    admin_headers: dict[str, str],
    clock: FakeClock,
    lookups: Gated,
) -> None:
    other = await make_token(app, "pbx", name="other-pbx")
    assert await send(client, pbx_headers, 1) == 202
    lookups.hold()
    clock.now += REMEMBER
    waiting = asyncio.ensure_future(send(client, pbx_headers, 2))
    await asyncio.wait_for(lookups.started.wait(), 10)
    listed = (await client.get("/api/v1/tokens", headers=admin_headers)).json()["items"]
    (other_id,) = [item["id"] for item in listed if item["name"] == "other-pbx"]
    assert (await client.delete(f"/api/v1/tokens/{other_id}", headers=admin_headers)).is_success
    lookups.gate.set()
    assert await asyncio.wait_for(waiting, 10) == 202
    assert await send(client, bearer(other), 3) == 401
    count = lookups.count
    assert await send(client, pbx_headers, 4) == 202  # not kept: checked once more
    assert lookups.count == count + 1
