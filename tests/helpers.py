"""Helpers for tests that act as an admin, a PBX or a signed-in browser."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from callbridge.tokens.schemas import TokenCreate
from callbridge.tokens.service import create_token
from callbridge.users.schemas import UserCreate
from callbridge.users.service import create_user


async def make_user(
    app: FastAPI,
    username: str = "admin",
    password: str = "correct horse",
    role: str = "admin",
    agent_id: str | None = None,
    extension: str | None = None,
) -> int:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        user = await create_user(
            session,
            UserCreate(
                username=username,
                password=password,
                role=role,  # type: ignore[arg-type]
                agent_id=agent_id,
                extension=extension,
            ),
            "test",
        )
        await session.commit()
        return user.id


async def make_token(app: FastAPI, scope: str = "admin", name: str = "test") -> str:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        _token, raw = await create_token(session, TokenCreate(name=name, scope=scope), "test")  # type: ignore[arg-type]
        await session.commit()
    return raw


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def errors_by_field(html: str) -> dict[str, list[str]]:
    """The errors a form page shows, by field (``<div class="error" id="e-FIELD">``)."""
    found: dict[str, list[str]] = {}
    for name, message in re.findall(r'<div class="error" id="e-([a-z_]+)">([^<]*)', html):
        found.setdefault(name, []).append(message.strip())
    return found


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient,
    username: str = "admin",
    password: str = "correct horse",
    next: str = "/",
) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "next": next,
            "csrf_token": csrf_from(page.text),
        },
    )


@dataclass
class FakeClock:
    """A clock the test moves by hand (``clock.now += seconds`` or ``advance``)."""

    now: float = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Gated:
    """Stands in for an async function: counts the calls ``applies`` picks and holds them
    until ``gate`` is set (it starts set), then calls ``target`` (which a test may swap)."""

    def __init__(
        self, target: Callable[..., Awaitable[Any]], applies: Callable[..., bool] | None = None
    ) -> None:
        self.target = target
        self.applies = applies or (lambda *args: True)
        self.count = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    def hold(self) -> None:
        """Hold the next calls; ``started`` is set when one arrives."""
        self.gate.clear()
        self.started.clear()

    async def __call__(self, *args: Any) -> Any:
        if self.applies(*args):
            self.count += 1
            self.started.set()
            await self.gate.wait()
        return await self.target(*args)
