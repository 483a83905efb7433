"""Helpers for tests that act as an admin, a PBX or a signed-in browser."""

from __future__ import annotations

import re

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
) -> None:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        await create_user(
            session,
            UserCreate(username=username, password=password, role=role, agent_id=agent_id),  # type: ignore[arg-type]
            "test",
        )
        await session.commit()


async def make_token(app: FastAPI, scope: str = "admin", name: str = "test") -> str:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        _token, raw = await create_token(session, TokenCreate(name=name, scope=scope), "test")  # type: ignore[arg-type]
        await session.commit()
    return raw


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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
