"""Server-side browser sessions: revocable, expiring, stored as hashes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.kit.crypto import new_token, sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import User, UserSession

SESSION_COOKIE = "cb_session"
# Touch last_seen_at at most this often, so page views are not all writes.
_TOUCH_INTERVAL = timedelta(minutes=5)


async def start_session(session: AsyncSession, user: User, hours: int) -> str:
    raw = new_token()
    now = utcnow()
    session.add(
        UserSession(
            token_hash=sha256_hex(raw),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            last_seen_at=now,
        )
    )
    user.last_login_at = now
    return raw


async def user_for_session(session: AsyncSession, raw: str | None) -> User | None:
    if not raw:
        return None
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == sha256_hex(raw))
        )
    ).first()
    if row is None:
        return None
    user_session, user = row
    now = utcnow()
    if user_session.expires_at <= now or not user.is_active:
        return None
    if now - user_session.last_seen_at > _TOUCH_INTERVAL:
        user_session.last_seen_at = now
    return user


async def session_expiry(session: AsyncSession, raw: str | None) -> datetime | None:
    """When the session ends; None when it is over (expired, signed out, user deactivated).
    A read only: streams ask this while they last."""
    if not raw:
        return None
    row = (
        await session.execute(
            select(UserSession.expires_at)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == sha256_hex(raw), User.is_active)
        )
    ).first()
    if row is None or row[0] <= utcnow():
        return None
    return row[0]


async def end_session(session: AsyncSession, raw: str | None) -> None:
    if raw:
        await session.execute(delete(UserSession).where(UserSession.token_hash == sha256_hex(raw)))


async def end_all_sessions(session: AsyncSession, user_id: int) -> None:
    await session.execute(delete(UserSession).where(UserSession.user_id == user_id))
