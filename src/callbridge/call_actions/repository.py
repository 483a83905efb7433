"""Every SQL statement about call-action rules."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models.call_action import CallAction
from callbridge.models.oauth_account import OAuthAccount

ORDERING = (CallAction.execution_order, CallAction.id)


async def list_rules(
    session: AsyncSession, *, event: str | None = None, limit: int = 500, offset: int = 0
) -> tuple[list[CallAction], int]:
    conditions = [CallAction.event == event] if event else []
    total = await session.scalar(select(func.count()).select_from(CallAction).where(*conditions))
    rows = await session.scalars(
        select(CallAction)
        .where(*conditions)
        .order_by(CallAction.event, *ORDERING)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def all_rules(session: AsyncSession) -> list[CallAction]:
    return list(await session.scalars(select(CallAction).order_by(*ORDERING)))


async def enabled_rules_for(session: AsyncSession, event: str) -> list[CallAction]:
    rows = await session.scalars(
        select(CallAction)
        .where(CallAction.event == event, CallAction.enabled.is_(True))
        .order_by(*ORDERING)
    )
    return list(rows)


async def rules_of_event(session: AsyncSession, event: str) -> list[CallAction]:
    rows = await session.scalars(
        select(CallAction).where(CallAction.event == event).order_by(*ORDERING)
    )
    return list(rows)


async def next_order(session: AsyncSession, event: str) -> int:
    highest = await session.scalar(
        select(func.max(CallAction.execution_order)).where(CallAction.event == event)
    )
    return int(highest or 0) + 1


async def oauth_account_exists(session: AsyncSession, account_id: int) -> bool:
    return (
        await session.scalar(select(OAuthAccount.id).where(OAuthAccount.id == account_id))
    ) is not None


async def oauth_account_names(session: AsyncSession) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(OAuthAccount.id, OAuthAccount.name).order_by(OAuthAccount.name)
    )
    return [(int(i), str(n)) for i, n in rows]


async def oauth_account_ids(session: AsyncSession) -> list[int]:
    return [int(i) for i in await session.scalars(select(OAuthAccount.id))]
