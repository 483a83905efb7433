"""First run: while no user exists, a one-time link creates the first administrator."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.kit.crypto import new_token, sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import SetupToken
from callbridge.users.repository import count_users

SETUP_TOKEN_HOURS = 24


async def issue_setup_token(session: AsyncSession) -> str | None:
    """A new setup token when no user exists yet, else None."""
    if await count_users(session) > 0:
        return None
    raw = new_token()
    now = utcnow()
    session.add(
        SetupToken(
            token_hash=sha256_hex(raw),
            created_at=now,
            expires_at=now + timedelta(hours=SETUP_TOKEN_HOURS),
        )
    )
    return raw


async def setup_token_valid(session: AsyncSession, raw: str | None) -> bool:
    if not raw or await count_users(session) > 0:
        return False
    token = await session.scalar(select(SetupToken).where(SetupToken.token_hash == sha256_hex(raw)))
    return token is not None and token.expires_at > utcnow()


async def consume_setup_tokens(session: AsyncSession) -> None:
    await session.execute(delete(SetupToken))
