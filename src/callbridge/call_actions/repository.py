"""Every SQL statement about call-action rules."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models.call_action import CallAction

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


# ---- the engine's view of the rules: read at most every few seconds per process ------

RULES_TTL_SECONDS = 2.0
_rules_version = 0


def rules_changed() -> None:
    """Called by every change made in this process: its engine reads the rules again.
    Other processes see a change within ``RULES_TTL_SECONDS``."""
    global _rules_version
    _rules_version += 1


def rules_version() -> int:
    """Bumped by :func:`rules_changed` (cache entries of an older version are stale)."""
    return _rules_version


async def cached_enabled_rules(
    session: AsyncSession, cache: dict[str, tuple[float, int, list[CallAction]]], event: str
) -> list[CallAction]:
    import time

    now = time.monotonic()
    hit = cache.get(event)
    if hit is not None and hit[1] == _rules_version and now - hit[0] < RULES_TTL_SECONDS:
        return hit[2]
    rules = await enabled_rules_for(session, event)
    for rule in rules:
        session.expunge(rule)
    cache[event] = (now, _rules_version, rules)
    return rules
