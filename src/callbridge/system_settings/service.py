"""Effective run-time settings: a value an admin saved wins over the process default."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.models import SystemSetting
from callbridge.settings import Settings
from callbridge.system_settings.schemas import SystemSettingsRead, SystemSettingsUpdate

KEYS = tuple(SystemSettingsRead.model_fields)


def defaults(settings: Settings) -> dict[str, object]:
    return {key: getattr(settings, key) for key in KEYS}


async def get_system_settings(session: AsyncSession, settings: Settings) -> SystemSettingsRead:
    values = defaults(settings)
    for row in await session.scalars(select(SystemSetting).where(SystemSetting.key.in_(KEYS))):
        values[row.key] = row.value
    return SystemSettingsRead.model_validate(values)


async def saved_system_settings(session: AsyncSession) -> dict[str, object]:
    """The values an admin saved (the others are the process defaults), by key."""
    rows = await session.scalars(
        select(SystemSetting).where(SystemSetting.key.in_(KEYS)).order_by(SystemSetting.key)
    )
    return {row.key: row.value for row in rows}


async def reset_system_settings(session: AsyncSession, keys: list[str], actor: str) -> None:
    """Forget the saved values of ``keys``: the process defaults apply again."""
    for key in keys:
        row = await session.get(SystemSetting, key)
        if row is not None:
            await session.delete(row)
    await session.flush()
    record_audit(session, actor, "settings.reset", "", fields=sorted(keys))


async def update_system_settings(
    session: AsyncSession, settings: Settings, data: SystemSettingsUpdate, actor: str
) -> SystemSettingsRead:
    changes = data.model_dump(exclude_unset=True)
    for key, value in changes.items():
        row = await session.get(SystemSetting, key)
        if value is None and key != "public_url":
            # null restores the process default
            if row is not None:
                await session.delete(row)
            continue
        if row is None:
            session.add(SystemSetting(key=key, value=value))
        else:
            row.value = value
    await session.flush()
    record_audit(session, actor, "settings.update", "", fields=sorted(changes))
    return await get_system_settings(session, settings)


def svaddr(public_url: str | None, settings: Settings) -> str:
    """``{SVADDR}``: the public URL with exactly one trailing slash (DESIGN.md §3.8)."""
    if public_url:
        return public_url.rstrip("/") + "/"
    return f"http://{settings.host}:{settings.port}/"
