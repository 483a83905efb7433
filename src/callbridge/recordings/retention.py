"""Retention (seed 001 §2.4: history older than the retention period is deleted, and its
recordings stop playing): a periodic job of the worker role.

Any number of workers may run the loop; each run starts by taking the job's lease with
one conditional UPDATE of its ``periodic_job`` row, so one worker purges at a time, and
a worker that dies mid-run loses its lease when it expires. The purge deletes in small
batches, one short transaction each, so the call tables are never locked for long.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread

from callbridge.audit import record_audit
from callbridge.errors import Conflict
from callbridge.kit.time import utcnow
from callbridge.recordings import repository
from callbridge.recordings.service import delete_objects, get_storage
from callbridge.runtime import Runtime
from callbridge.system_settings.service import get_system_settings

logger = logging.getLogger("callbridge.retention")

JOB_NAME = "retention"
SYSTEM_ACTOR = "system:retention"
BATCH_SIZE = 200
LEASE = timedelta(minutes=5)
# A new database gets its first purge this long after the first worker starts.
FIRST_RUN_DELAY = timedelta(minutes=5)
# The loop's first look at the schedule waits until the process has finished starting.
STARTUP_GRACE_SECONDS = 10.0
# Uploads interrupted by a crash leave staging files; they are swept after this long.
STAGING_MAX_AGE = timedelta(days=1)
# History rows (連携通話履歴) are kept at most this long, whatever the retention of calls
# and recordings (DESIGN §11.5: default 90 days, at most 180 for history).
HISTORY_MAX_DAYS = 180


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def purge_expired(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    keep_lease: Callable[[], Awaitable[bool]] | None = None,
    actor: str = SYSTEM_ACTOR,
) -> dict[str, int]:
    """Delete every call that started before ``now - retention_days`` with its events,
    variables, executions, history rows and recording, and every recording without a call
    uploaded before then; history rows also once older than ``HISTORY_MAX_DAYS``. Rows go
    first (committed per batch), then their stored objects.
    The audit log gets an entry when something was deleted or a person asked for the run."""
    now = now or utcnow()
    async with runtime.sessionmaker() as session:
        current = await get_system_settings(session, runtime.settings)
    cutoff = now - timedelta(days=current.retention_days)
    storage = get_storage(runtime)
    totals: Counter[str] = Counter()

    async def still_ours() -> bool:
        return keep_lease is None or await keep_lease()

    while True:
        async with runtime.sessionmaker() as session:
            call_pks = await repository.old_call_batch(session, cutoff, batch_size)
            if not call_pks:
                break
            recordings = await repository.recordings_of_calls(session, call_pks)
            keys = [r.storage_key for r in recordings]
            totals["bytes"] += sum(r.size_bytes for r in recordings)
            totals.update(await repository.delete_calls(session, call_pks))
            totals["recordings"] += await repository.delete_recordings(
                session, [r.id for r in recordings]
            )
            await session.commit()
        await delete_objects(storage, keys)
        if len(call_pks) < batch_size or not await still_ours():
            break
    history_cutoff = now - timedelta(days=HISTORY_MAX_DAYS)
    while history_cutoff > cutoff:  # only when calls are kept longer than history
        async with runtime.sessionmaker() as session:
            rows = await repository.old_history_row_batch(session, history_cutoff, batch_size)
            if not rows:
                break
            totals["history_rows"] += await repository.delete_history_rows(session, rows)
            await session.commit()
        if len(rows) < batch_size or not await still_ours():
            break
    while True:
        async with runtime.sessionmaker() as session:
            orphans = await repository.orphan_recording_batch(session, cutoff, batch_size)
            if not orphans:
                break
            keys = [r.storage_key for r in orphans]
            totals["bytes"] += sum(r.size_bytes for r in orphans)
            totals["recordings"] += await repository.delete_recordings(
                session, [r.id for r in orphans]
            )
            await session.commit()
        await delete_objects(storage, keys)
        if len(orphans) < batch_size or not await still_ours():
            break
    totals["staging_files"] += await anyio.to_thread.run_sync(
        _sweep_staging, storage.staging_dir, now
    )
    result = {
        name: int(totals[name])
        for name in (
            "calls",
            "events",
            "variables",
            "executions",
            "history_rows",
            "recordings",
            "bytes",
            "staging_files",
        )
    }
    if any(result.values()) or actor != SYSTEM_ACTOR:
        async with runtime.sessionmaker() as session:
            record_audit(
                session,
                actor,
                "retention.purge",
                "",
                retention_days=current.retention_days,
                cutoff=cutoff.isoformat(),
                history_cutoff=max(cutoff, history_cutoff).isoformat(),
                **result,
            )
            await session.commit()
    return result


def _sweep_staging(directory: Path, now: datetime) -> int:
    limit = now.timestamp() - STAGING_MAX_AGE.total_seconds()
    removed = 0
    for path in directory.glob("*.part"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


async def run_retention_if_due(
    runtime: Runtime, owner: str, *, now: datetime | None = None
) -> dict[str, int] | None:
    """Purge once if the job is due and this worker gets the lease; None otherwise."""
    now = now or utcnow()
    async with runtime.sessionmaker() as session:
        # Look before writing: most looks find nothing due and take no write lock.
        job = await repository.get_job(session, JOB_NAME)
        if job is None:
            await repository.ensure_job(session, JOB_NAME, now + FIRST_RUN_DELAY)
            await session.commit()
            return None
        if job.next_run_at > now or (job.lease_expires_at and job.lease_expires_at > now):
            return None
        claimed = await repository.claim_job(session, JOB_NAME, owner, now, now + LEASE)
        await session.commit()
    if not claimed:
        return None
    return await _purge_holding_lease(runtime, owner, now, SYSTEM_ACTOR)


async def run_retention_now(
    runtime: Runtime, actor: str, *, now: datetime | None = None
) -> dict[str, int]:
    """Purge at once, on an administrator's request (API, CLI): the same purge as the
    schedule's, under the same lease, so it never runs beside a scheduled purge. The
    next scheduled purge then comes one interval later."""
    now = now or utcnow()
    owner = f"{worker_identity()}:{actor}"[:100]  # the column's width
    async with runtime.sessionmaker() as session:
        await repository.ensure_job(session, JOB_NAME, now + FIRST_RUN_DELAY)
        claimed = await repository.claim_job(
            session, JOB_NAME, owner, now, now + LEASE, due_only=False
        )
        await session.commit()
    if not claimed:
        raise Conflict("A retention purge is already running; try again when it has finished.")
    return await _purge_holding_lease(runtime, owner, now, actor)


async def _purge_holding_lease(
    runtime: Runtime, owner: str, now: datetime, actor: str
) -> dict[str, int]:
    """Run the purge while ``owner`` holds the job's lease; record the outcome and the
    next run, and give the lease back, whatever happens."""
    interval = timedelta(minutes=runtime.settings.retention_interval_minutes)

    async def keep_lease() -> bool:
        async with runtime.sessionmaker() as session:
            ours = await repository.extend_lease(session, JOB_NAME, owner, utcnow() + LEASE)
            await session.commit()
        return ours

    result: dict[str, int] = {}
    outcome: dict[str, object] = {}
    try:
        result = await purge_expired(runtime, now=now, keep_lease=keep_lease, actor=actor)
        outcome = dict(result)
    except Exception as exc:
        logger.exception("retention purge failed")
        outcome = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        raise
    finally:
        with anyio.CancelScope(shield=True):
            async with runtime.sessionmaker() as session:
                await repository.finish_job(
                    session, JOB_NAME, owner, utcnow(), now + interval, outcome
                )
                await session.commit()
    logger.info("retention purge (%s): %s", actor, result)
    return result


async def seconds_until_due(runtime: Runtime) -> float:
    """How long the loop may sleep: until the job is due or a foreign lease expires,
    at most one interval."""
    interval = runtime.settings.retention_interval_minutes * 60.0
    async with runtime.sessionmaker() as session:
        job = await repository.get_job(session, JOB_NAME)
    if job is None:
        return 1.0
    now = utcnow()
    due = job.next_run_at
    if job.lease_expires_at is not None and job.lease_expires_at > due:
        due = job.lease_expires_at
    return min(max((due - now).total_seconds(), 1.0), interval)


async def retention_loop(runtime: Runtime, owner: str | None = None) -> None:
    owner = owner or worker_identity()
    await anyio.sleep(STARTUP_GRACE_SECONDS)
    while True:
        started = time.monotonic()
        try:
            await run_retention_if_due(runtime, owner)
            delay = await seconds_until_due(runtime)
        except Exception:
            logger.exception("retention job: will retry")
            delay = 60.0
        # Never spin: at least a second between two looks at the schedule.
        await anyio.sleep(max(delay, 1.0 - (time.monotonic() - started)))
