"""Every SQL statement about IVR configurations."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from callbridge.models.ivr import Ivr
from callbridge.models.oauth_account import OAuthAccount

_WITH_CHILDREN = (selectinload(Ivr.responses), selectinload(Ivr.steps))


async def get_by_key(session: AsyncSession, key: str) -> Ivr | None:
    return await session.scalar(select(Ivr).where(Ivr.key == key).options(*_WITH_CHILDREN))


async def get_by_id(session: AsyncSession, ivr_id: int) -> Ivr | None:
    return await session.scalar(select(Ivr).where(Ivr.id == ivr_id).options(*_WITH_CHILDREN))


async def revision_of(session: AsyncSession, key: str) -> tuple[int, int] | None:
    """``(id, revision)`` of the IVR with this key: enough to know a cached copy is current."""
    row = (await session.execute(select(Ivr.id, Ivr.revision).where(Ivr.key == key))).first()
    return (int(row[0]), int(row[1])) if row is not None else None


async def key_taken(session: AsyncSession, key: str, except_id: int | None = None) -> bool:
    statement = select(Ivr.id).where(Ivr.key == key)
    if except_id is not None:
        statement = statement.where(Ivr.id != except_id)
    return (await session.scalar(statement)) is not None


async def list_ivrs(session: AsyncSession, limit: int, offset: int) -> tuple[list[Ivr], int]:
    total = await session.scalar(select(func.count()).select_from(Ivr)) or 0
    rows = await session.scalars(
        select(Ivr).options(*_WITH_CHILDREN).order_by(Ivr.key).limit(limit).offset(offset)
    )
    return list(rows), int(total)


async def all_ivrs(session: AsyncSession) -> list[Ivr]:
    return list(await session.scalars(select(Ivr).options(*_WITH_CHILDREN).order_by(Ivr.key)))


async def count_ivrs(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Ivr)) or 0)


async def oauth_account(session: AsyncSession, account_id: int) -> OAuthAccount | None:
    return await session.get(OAuthAccount, account_id)
