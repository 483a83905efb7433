"""Sign-in throttling: after repeated failures for a username or from one address,
further attempts are refused for a while. Kept in the database so that every web
process of a deployment sees the same counts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.kit.time import utcnow
from callbridge.models import LoginFailure

# Per address the limit is higher: several people may share one office NAT.
_ADDRESS_FACTOR = 4


async def is_throttled(
    session: AsyncSession, username: str, client_ip: str, max_failures: int, minutes: int
) -> bool:
    since = utcnow() - timedelta(minutes=minutes)
    by_user = await session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.username == username.lower(), LoginFailure.at > since)
    )
    by_ip = await session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.client_ip == client_ip, LoginFailure.at > since)
    )
    return (by_user or 0) >= max_failures or (by_ip or 0) >= max_failures * _ADDRESS_FACTOR


def record_failure(session: AsyncSession, username: str, client_ip: str) -> None:
    session.add(LoginFailure(username=username.lower(), client_ip=client_ip))


async def clear_failures(session: AsyncSession, username: str, minutes: int) -> None:
    cutoff = utcnow() - timedelta(minutes=minutes)
    await session.execute(
        delete(LoginFailure).where(
            or_(LoginFailure.username == username.lower(), LoginFailure.at < cutoff)
        )
    )
