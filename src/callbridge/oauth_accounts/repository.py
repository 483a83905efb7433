"""Every SQL statement about OAuth accounts and pending authorisations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models import OAuthAccount, OAuthAuthorization


async def get_account(
    session: AsyncSession, account_id: int, *, for_update: bool = False
) -> OAuthAccount | None:
    statement = select(OAuthAccount).where(OAuthAccount.id == account_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement.execution_options(populate_existing=True))


async def get_account_by_name(session: AsyncSession, name: str) -> OAuthAccount | None:
    """Names compare without case, the same on both databases: in Python (SQLite's lower()
    knows only ASCII), over every account (an installation has a handful)."""
    wanted = name.casefold()
    accounts = await session.scalars(select(OAuthAccount))
    return next((a for a in accounts if a.name.casefold() == wanted), None)


async def list_accounts(
    session: AsyncSession, limit: int, offset: int
) -> tuple[list[OAuthAccount], int]:
    total = await session.scalar(select(func.count()).select_from(OAuthAccount)) or 0
    rows = await session.scalars(
        select(OAuthAccount).order_by(OAuthAccount.name).limit(limit).offset(offset)
    )
    return list(rows), total


async def names_needing_reauthorization(session: AsyncSession) -> list[str]:
    rows = await session.scalars(
        select(OAuthAccount.name)
        .where(OAuthAccount.status == "needs_reauthorization")
        .order_by(OAuthAccount.name)
    )
    return list(rows)


async def save_usage(
    session: AsyncSession, account_id: int, used: int, allowed: int, at: datetime
) -> None:
    await session.execute(
        update(OAuthAccount)
        .where(OAuthAccount.id == account_id)
        .values(api_usage_used=used, api_usage_allowed=allowed, api_usage_at=at)
        .execution_options(synchronize_session=False)
    )


async def get_authorization(session: AsyncSession, state_hash: str) -> OAuthAuthorization | None:
    return await session.scalar(
        select(OAuthAuthorization).where(OAuthAuthorization.state_hash == state_hash)
    )


async def delete_stale_authorizations(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(OAuthAuthorization).where(OAuthAuthorization.expires_at < before))
