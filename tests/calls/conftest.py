"""Fixtures for the call store: a PBX token and helpers to wait for the dispatcher."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from callbridge.models.call import CallEvent
from tests.helpers import bearer, make_token


@pytest.fixture
async def pbx_headers(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="pbx", name="pbx"))


@pytest.fixture
async def admin_headers(app: FastAPI) -> dict[str, str]:
    return bearer(await make_token(app, scope="admin", name="admin"))


async def wait_until_processed(app: FastAPI, expected: int, seconds: float = 10.0) -> None:
    """Until ``expected`` events are finished (the dispatcher runs in the app's lifespan).

    Waits on the database state, not on time: it re-checks after each short yield.
    """
    runtime = app.state.runtime
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        async with runtime.sessionmaker() as session:
            finished = len(
                (
                    await session.scalars(
                        select(CallEvent.id).where(CallEvent.status.in_(("done", "failed")))
                    )
                ).all()
            )
        if finished >= expected:
            return
        assert loop.time() < deadline, f"only {finished} of {expected} events processed"
        await asyncio.sleep(0.01)


async def post_event(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> httpx.Response:
    return await client.post("/api/v1/call-events", json=fields, headers=headers)
