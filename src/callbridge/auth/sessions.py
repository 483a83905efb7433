"""Server-side sessions: revocable, expiring, stored as hashes.

Two kinds share the table: ``browser`` (the UI's cookie) and ``softphone`` (the Open CTI
softphone's token, sent as a bearer by that page). A token is accepted only where its
kind is asked for: the cookie of the UI never takes a softphone token."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.kit.crypto import new_token, sha256_hex
from callbridge.kit.time import utcnow
from callbridge.models import User, UserSession

SESSION_COOKIE = "cb_session"
BROWSER = "browser"
SOFTPHONE = "softphone"
# Touch last_seen_at at most this often, so page views are not all writes.
_TOUCH_INTERVAL = timedelta(minutes=5)


async def start_session(session: AsyncSession, user: User, hours: int, kind: str = BROWSER) -> str:
    raw = new_token()
    now = utcnow()
    session.add(
        UserSession(
            token_hash=sha256_hex(raw),
            user_id=user.id,
            kind=kind,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            last_seen_at=now,
        )
    )
    if kind == BROWSER:
        user.last_login_at = now
    return raw


async def user_for_session(
    session: AsyncSession, raw: str | None, kind: str = BROWSER
) -> User | None:
    if not raw:
        return None
    row = (
        await session.execute(
            select(UserSession, User)
            .join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == sha256_hex(raw), UserSession.kind == kind)
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


async def session_expiry(
    session: AsyncSession, raw: str | None, kind: str = BROWSER
) -> datetime | None:
    """When the session ends; None when it is over (expired, signed out, revoked, user
    deactivated). A read only: streams ask this while they last."""
    if not raw:
        return None
    row = (
        await session.execute(
            select(UserSession.expires_at)
            .join(User, User.id == UserSession.user_id)
            .where(
                UserSession.token_hash == sha256_hex(raw),
                UserSession.kind == kind,
                User.is_active,
            )
        )
    ).first()
    if row is None or row[0] <= utcnow():
        return None
    return row[0]


async def end_session(session: AsyncSession, raw: str | None, kind: str = BROWSER) -> None:
    if raw:
        await session.execute(
            delete(UserSession).where(
                UserSession.token_hash == sha256_hex(raw), UserSession.kind == kind
            )
        )


async def end_all_sessions(session: AsyncSession, user_id: int) -> None:
    """Every session of the user, of every kind (password change, deactivation)."""
    await session.execute(delete(UserSession).where(UserSession.user_id == user_id))


async def count_sessions(session: AsyncSession, user_id: int, kind: str) -> int:
    """The user's sessions of that kind that have not expired."""
    count = await session.scalar(
        select(func.count())
        .select_from(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.kind == kind,
            UserSession.expires_at > utcnow(),
        )
    )
    return int(count or 0)


async def end_sessions(session: AsyncSession, user_id: int, kind: str) -> int:
    """Ends every session of that kind of the user; how many there were (expired ones
    are removed too but not counted)."""
    live = await count_sessions(session, user_id, kind)
    await session.execute(
        delete(UserSession).where(UserSession.user_id == user_id, UserSession.kind == kind)
    )
    return live
