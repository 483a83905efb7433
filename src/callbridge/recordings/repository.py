"""Every SQL statement of the recordings domain: recordings, the calls they belong to
(read side), playback link keys, periodic-job leases and the retention purge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models import (
    Call,
    CallEvent,
    CallVariable,
    Execution,
    HistoryRow,
    PeriodicJob,
    PlaybackLinkKey,
    Recording,
    User,
)

LINK_KEY_ROW = 1


# ---- recordings --------------------------------------------------------------------


async def get_recording(
    session: AsyncSession, call_id: str, *, for_update: bool = False
) -> Recording | None:
    statement = select(Recording).where(Recording.call_id == call_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.scalars(statement)).one_or_none()


async def insert_recording_if_absent(session: AsyncSession, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT (call_id) DO NOTHING: True when this call had no recording.
    Two concurrent uploads for one call then serialise on the unique index."""
    statement = _insert_ignoring_conflict(session, Recording, values, Recording.call_id)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)


async def storage_totals(session: AsyncSession) -> tuple[int, int]:
    """(number of recordings, bytes stored)."""
    row = (
        await session.execute(
            select(func.count(Recording.id), func.coalesce(func.sum(Recording.size_bytes), 0))
        )
    ).one()
    return int(row[0]), int(row[1])


async def recent_recordings(session: AsyncSession, limit: int) -> list[Recording]:
    statement = select(Recording).order_by(Recording.updated_at.desc(), Recording.id.desc())
    return list(await session.scalars(statement.limit(limit)))


# ---- the calls recordings belong to (the call store is read, never written, here) ---


async def find_call(session: AsyncSession, ref: str) -> Call | None:
    """A call by its ``call_id``, else by its ``unique_id`` (seed 001 links with
    ``B_UniqueId__c``)."""
    call = (await session.scalars(select(Call).where(Call.call_id == ref))).one_or_none()
    if call is not None:
        return call
    statement = select(Call).where(Call.unique_id == ref).order_by(Call.started_at.desc())
    return (await session.scalars(statement.limit(1))).first()


async def agents_of_call(session: AsyncSession, call_pk: int) -> list[str]:
    """Distinct agent IDs on the call's events, in the order they first appeared."""
    rows = await session.execute(
        select(CallEvent.agent_id, func.min(CallEvent.occurred_at).label("first"))
        .where(CallEvent.call_pk == call_pk, CallEvent.agent_id.is_not(None))
        .group_by(CallEvent.agent_id)
        .order_by("first")
    )
    return [agent for agent, _first in rows if agent]


async def user_names_by_agent(session: AsyncSession, agent_ids: list[str]) -> dict[str, str]:
    """Display names (else usernames) of the users linked to these PBX agent IDs."""
    if not agent_ids:
        return {}
    rows = await session.execute(
        select(User.agent_id, User.display_name, User.username).where(User.agent_id.in_(agent_ids))
    )
    return {agent: name or username for agent, name, username in rows if agent}


# ---- playback link key -------------------------------------------------------------


async def link_key_generation(session: AsyncSession) -> int:
    row = await session.get(PlaybackLinkKey, LINK_KEY_ROW)
    return row.generation if row is not None else 1


async def link_key_row(session: AsyncSession) -> PlaybackLinkKey | None:
    return await session.get(PlaybackLinkKey, LINK_KEY_ROW)


async def bump_link_key(session: AsyncSession, actor: str, now: datetime) -> int:
    """The next key generation (the row is created at generation 1 first if needed, so
    two admins rotating at once both succeed, one after the other)."""
    await session.execute(
        _insert_ignoring_conflict(
            session,
            PlaybackLinkKey,
            {"id": LINK_KEY_ROW, "generation": 1, "rotated_at": now, "rotated_by": ""},
            PlaybackLinkKey.id,
        )
    )
    row = await session.get(
        PlaybackLinkKey, LINK_KEY_ROW, with_for_update=True, populate_existing=True
    )
    assert row is not None
    row.generation += 1
    row.rotated_at = now
    row.rotated_by = actor
    await session.flush()
    return row.generation


# ---- periodic job leases -----------------------------------------------------------


def _insert_ignoring_conflict(
    session: AsyncSession, model: Any, values: dict[str, Any], key: Any
) -> Any:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(model).values(**values).on_conflict_do_nothing(index_elements=[key])


async def ensure_job(session: AsyncSession, name: str, first_run_at: datetime) -> None:
    """Create the job's row once (several workers may race here: one wins, quietly)."""
    if await session.get(PeriodicJob, name) is None:
        await session.execute(
            _insert_ignoring_conflict(
                session,
                PeriodicJob,
                {"name": name, "next_run_at": first_run_at},
                PeriodicJob.name,
            )
        )


async def get_job(session: AsyncSession, name: str) -> PeriodicJob | None:
    return await session.get(PeriodicJob, name)


async def claim_job(
    session: AsyncSession,
    name: str,
    owner: str,
    now: datetime,
    lease_until: datetime,
    *,
    due_only: bool = True,
) -> bool:
    """Take the job's lease if it is due (or at once, ``due_only=False``) and nobody holds
    a live lease: one conditional UPDATE, atomic on SQLite and PostgreSQL alike."""
    conditions = [
        PeriodicJob.name == name,
        or_(PeriodicJob.lease_expires_at.is_(None), PeriodicJob.lease_expires_at <= now),
    ]
    if due_only:
        conditions.append(PeriodicJob.next_run_at <= now)
    result = await session.execute(
        update(PeriodicJob)
        .where(*conditions)
        .values(lease_owner=owner, lease_expires_at=lease_until, last_started_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def extend_lease(session: AsyncSession, name: str, owner: str, until: datetime) -> bool:
    result = await session.execute(
        update(PeriodicJob)
        .where(PeriodicJob.name == name, PeriodicJob.lease_owner == owner)
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def finish_job(
    session: AsyncSession,
    name: str,
    owner: str,
    now: datetime,
    next_run_at: datetime,
    result: dict[str, Any],
) -> None:
    await session.execute(
        update(PeriodicJob)
        .where(PeriodicJob.name == name, PeriodicJob.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_expires_at=None,
            last_finished_at=now,
            next_run_at=next_run_at,
            last_result=result,
        )
        .execution_options(synchronize_session=False)
    )


# ---- retention ---------------------------------------------------------------------


async def old_call_batch(session: AsyncSession, cutoff: datetime, limit: int) -> list[int]:
    statement = select(Call.id).where(Call.started_at < cutoff).order_by(Call.id).limit(limit)
    return list(await session.scalars(statement))


async def old_history_row_batch(session: AsyncSession, cutoff: datetime, limit: int) -> list[int]:
    """History rows of calls that started before ``cutoff`` (their calls may be younger:
    history is kept for a shorter time than calls when the retention is long)."""
    statement = (
        select(HistoryRow.id)
        .where(HistoryRow.started_at < cutoff)
        .order_by(HistoryRow.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def delete_history_rows(session: AsyncSession, ids: list[int]) -> int:
    result = await session.execute(
        delete(HistoryRow)
        .where(HistoryRow.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


async def recordings_of_calls(session: AsyncSession, call_pks: list[int]) -> list[Recording]:
    statement = (
        select(Recording).join(Call, Call.call_id == Recording.call_id).where(Call.id.in_(call_pks))
    )
    return list(await session.scalars(statement))


async def delete_calls(session: AsyncSession, call_pks: list[int]) -> dict[str, int]:
    """Delete calls and everything that hangs off them (children first, explicitly, so
    nothing depends on the database's cascade settings)."""
    counts: dict[str, int] = {}
    for name, model in (
        ("history_rows", HistoryRow),
        ("executions", Execution),
        ("variables", CallVariable),
        ("events", CallEvent),
    ):
        result = await session.execute(
            delete(model)
            .where(model.call_pk.in_(call_pks))
            .execution_options(synchronize_session=False)
        )
        counts[name] = int(getattr(result, "rowcount", 0))
    result = await session.execute(
        delete(Call).where(Call.id.in_(call_pks)).execution_options(synchronize_session=False)
    )
    counts["calls"] = int(getattr(result, "rowcount", 0))
    return counts


async def orphan_recording_batch(
    session: AsyncSession, cutoff: datetime, limit: int
) -> list[Recording]:
    """Old recordings whose call never arrived (or is already gone)."""
    has_call = select(Call.id).where(Call.call_id == Recording.call_id).exists()
    statement = (
        select(Recording)
        .where(Recording.created_at < cutoff, ~has_call)
        .order_by(Recording.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def delete_recordings(session: AsyncSession, ids: list[int]) -> int:
    if not ids:
        return 0
    result = await session.execute(
        delete(Recording).where(Recording.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
