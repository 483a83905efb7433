"""Recordings: receiving uploads, replacing and deleting them, who may play them, and the
playback links (``MONITOR_LINK``). Services never commit: the caller owns the
transaction; objects that a change makes obsolete are returned for deletion after it."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.audit import record_audit
from callbridge.errors import CallbridgeError, NotFound, PayloadTooLarge
from callbridge.i18n import N_
from callbridge.kit.time import utcnow
from callbridge.models import Call, Recording, User
from callbridge.recordings import repository
from callbridge.recordings.links import (
    LinkKey,
    LinkStatus,
    MonitorLinkMaker,
    check_signed_link,
    derive_link_key,
)
from callbridge.recordings.media import (
    HEADER_BYTES,
    TAGGED_EXTENSIONS,
    AudioFormat,
    detect_format,
    format_for,
    tagged_duration,
)
from callbridge.recordings.media import wav_duration as wav_header_duration
from callbridge.recordings.permissions import Decision, decide_playback
from callbridge.recordings.s3 import S3Credentials, S3Storage
from callbridge.recordings.storage import LocalStorage, RecordingStorage, new_storage_key
from callbridge.runtime import Runtime
from callbridge.settings import Settings
from callbridge.system_settings.service import get_system_settings, svaddr

logger = logging.getLogger("callbridge.recordings")

STORAGE_EXTRA = "recordings.storage"
LINK_KEYS_EXTRA = "recordings.link_keys"
# Uploads are written to disk in blocks of this size (memory stays flat whatever the size).
FLUSH_BYTES = 1024 * 1024


class UnsupportedAudio(CallbridgeError):
    status_code = 415


# ---- storage -----------------------------------------------------------------------


def create_storage(settings: Settings) -> RecordingStorage:
    """The storage the settings select; a clear error when S3 is chosen half-configured."""
    if settings.recording_storage == "s3":
        missing = [
            name
            for name in ("s3_endpoint_url", "s3_bucket", "s3_access_key_id", "s3_secret_access_key")
            if not getattr(settings, name)
        ]
        if missing:
            names = ", ".join(f"CALLBRIDGE_{name.upper()}" for name in missing)
            raise RuntimeError(f"CALLBRIDGE_RECORDING_STORAGE=s3 needs {names}")
        assert settings.s3_endpoint_url and settings.s3_bucket
        assert settings.s3_access_key_id and settings.s3_secret_access_key
        return S3Storage(
            endpoint_url=settings.s3_endpoint_url,
            bucket=settings.s3_bucket,
            credentials=S3Credentials(settings.s3_access_key_id, settings.s3_secret_access_key),
            region=settings.s3_region,
            prefix=settings.s3_prefix,
            addressing_style=settings.s3_addressing_style,
            staging_dir=settings.data_dir / "recordings-incoming",
        )
    return LocalStorage(settings.data_dir / "recordings")


def get_storage(runtime: Runtime) -> RecordingStorage:
    storage: RecordingStorage | None = runtime.extras.get(STORAGE_EXTRA)
    if storage is None:
        storage = create_storage(runtime.settings)
        runtime.extras[STORAGE_EXTRA] = storage
    return storage


async def delete_objects(storage: RecordingStorage, keys: list[str]) -> None:
    """Best effort, after the rows are gone: a failure leaves an unreferenced object
    (logged), never a row pointing at nothing."""
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            logger.exception("could not delete recording object %s", key)


# ---- upload ------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedUpload:
    path: Path
    size: int
    sha256: str
    format: AudioFormat
    duration_seconds: float | None


def _write_block(handle: IO[bytes], digest: Any, block: bytearray) -> None:
    digest.update(block)
    handle.write(block)


def _finish_file(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _check_magic(declared: AudioFormat, content_type: str, head: bytes) -> None:
    if declared.matches(head):
        return
    found = detect_format(head)
    shown = f"looks like {found.content_type}" if found else "is not a known audio format"
    raise UnsupportedAudio(
        f"the body does not match its Content-Type {content_type}: the file {shown}"
    )


async def stage_upload(
    chunks: AsyncIterator[bytes],
    content_type: str | None,
    content_length: int | None,
    limit_bytes: int,
    staging_dir: Path,
) -> StagedUpload:
    """Stream an upload to a temporary file, hashing it, checking its size against the
    limit and its first bytes against the declared type. On any failure — too large,
    wrong type, client gone — the temporary file is removed: nothing partial remains."""
    declared = format_for(content_type)
    if declared is None or content_type is None:
        accepted = "audio/wav, audio/mpeg, audio/ogg, audio/mp4, audio/webm, audio/flac"
        raise UnsupportedAudio(
            f"unsupported Content-Type {content_type or '(none)'}: send one of {accepted}"
        )
    limit_text = f"the recording size limit is {limit_bytes // (1024 * 1024)} MB"
    if content_length is not None and content_length > limit_bytes:
        raise PayloadTooLarge(limit_text)
    path = staging_dir / f"{secrets.token_hex(12)}.part"
    handle: IO[bytes] = await anyio.to_thread.run_sync(path.open, "xb")
    digest = hashlib.sha256()
    head = bytearray()
    block = bytearray()
    size = 0
    checked = False
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > limit_bytes:
                raise PayloadTooLarge(limit_text)
            if len(head) < HEADER_BYTES:
                head += chunk[: HEADER_BYTES - len(head)]
            if not checked and len(head) >= declared.min_header:
                _check_magic(declared, content_type, bytes(head))
                checked = True
            block += chunk
            if len(block) >= FLUSH_BYTES:
                await anyio.to_thread.run_sync(_write_block, handle, digest, block)
                block = bytearray()
        if size == 0:
            raise CallbridgeError("the body is empty: send the audio file as the body", 400)
        if not checked:
            _check_magic(declared, content_type, bytes(head))
        if block:
            await anyio.to_thread.run_sync(_write_block, handle, digest, block)
        await anyio.to_thread.run_sync(_finish_file, handle)
    except BaseException:
        with anyio.CancelScope(shield=True):
            handle.close()
            await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))
        raise
    duration = None
    if declared.extension == "wav":
        duration = wav_header_duration(bytes(head), size)
    elif declared.extension in TAGGED_EXTENSIONS:
        duration = await anyio.to_thread.run_sync(tagged_duration, path)
    return StagedUpload(path, size, digest.hexdigest(), declared, duration)


@dataclass(frozen=True)
class SavedRecording:
    recording: Recording
    created: bool
    obsolete_key: str | None  # the replaced object, to delete once the change is committed


async def save_recording(
    session: AsyncSession,
    storage: RecordingStorage,
    call_id: str,
    staged: StagedUpload,
    actor: str,
) -> SavedRecording:
    """Move the staged file into storage under a new key, then point the call's row at
    it: the row switch is the atomic replacement (readers see the old or the new
    recording, whole)."""
    now = utcnow()
    key = new_storage_key(call_id, staged.format.extension, now)
    try:
        await storage.store(staged.path, key, staged.format.content_type, staged.sha256)
    finally:
        # Gone already when the store consumed it; removed here when it failed.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: staged.path.unlink(missing_ok=True))
    values: dict[str, Any] = {
        "storage_key": key,
        "content_type": staged.format.content_type,
        "size_bytes": staged.size,
        "sha256": staged.sha256,
        "duration_seconds": staged.duration_seconds,
        "uploaded_by": actor,
        "updated_at": now,
    }
    try:
        created = await repository.insert_recording_if_absent(
            session, {**values, "call_id": call_id, "created_at": now}
        )
        recording = await repository.get_recording(session, call_id, for_update=True)
        assert recording is not None
        obsolete = None
        if not created:
            obsolete = recording.storage_key
            for name, value in values.items():
                setattr(recording, name, value)
        await session.flush()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await delete_objects(storage, [key])
        raise
    record_audit(
        session,
        actor,
        "recording.upload" if created else "recording.replace",
        call_id,
        size_bytes=staged.size,
        sha256=staged.sha256,
        content_type=staged.format.content_type,
    )
    return SavedRecording(recording, created, obsolete)


async def commit_upload(
    session: AsyncSession, storage: RecordingStorage, saved: SavedRecording
) -> None:
    """Commit the saved upload now; when the commit fails, the object just stored is
    deleted (no row will ever point at it) before the error goes on."""
    key = saved.recording.storage_key
    try:
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await delete_objects(storage, [key])
        raise


async def delete_recording(session: AsyncSession, call_id: str, actor: str) -> str:
    """Remove one call's recording (admin); the object key is returned for deletion once
    the change is committed."""
    recording = await repository.get_recording(session, call_id, for_update=True)
    if recording is None:
        raise NotFound(N_("This call has no recording."))
    key = recording.storage_key
    await session.delete(recording)
    await session.flush()
    record_audit(
        session,
        actor,
        "recording.delete",
        call_id,
        size_bytes=recording.size_bytes,
        sha256=recording.sha256,
    )
    return key


async def get_recording_or_404(session: AsyncSession, call_id: str) -> Recording:
    recording = await repository.get_recording(session, call_id)
    if recording is None:
        raise NotFound(N_("This call has no recording."))
    return recording


# ---- playback ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybackTarget:
    ref: str  # as in the link: call_id or unique_id
    call: Call | None
    recording: Recording | None
    agents: list[str]

    @property
    def call_id(self) -> str:
        return self.call.call_id if self.call is not None else self.ref


async def find_playback_target(session: AsyncSession, ref: str) -> PlaybackTarget:
    call = await repository.find_call(session, ref)
    recording = await repository.get_recording(session, call.call_id if call else ref)
    agents = await repository.agents_of_call(session, call.id) if call is not None else []
    return PlaybackTarget(ref, call, recording, agents)


async def current_link_key(session: AsyncSession, runtime: Runtime) -> LinkKey:
    generation = await repository.link_key_generation(session)
    cache: dict[int, LinkKey] = runtime.extras.setdefault(LINK_KEYS_EXTRA, {})
    key = cache.get(generation)
    if key is None:
        key = derive_link_key(runtime.settings.load_secret_key(), generation)
        cache[generation] = key
    return key


async def rotate_link_key(session: AsyncSession, actor: str) -> int:
    """A new signing key: every signed playback link issued so far stops working."""
    generation = await repository.bump_link_key(session, actor, utcnow())
    record_audit(session, actor, "recording.link_key.rotate", "", generation=generation)
    return generation


async def authorize_playback(
    session: AsyncSession,
    runtime: Runtime,
    user: User | None,
    target: PlaybackTarget,
    params: dict[str, str],
) -> tuple[Decision, str]:
    """The decision for this request, and the playback mode it was taken under."""
    current = await get_system_settings(session, runtime.settings)
    link = LinkStatus.ABSENT
    if current.playback_auth == "signed":
        key = await current_link_key(session, runtime)
        link = check_signed_link(target.ref, params, key, utcnow())
    handled = bool(user is not None and user.agent_id and user.agent_id in target.agents)
    return decide_playback(current.playback_auth, user, handled=handled, link=link), (
        current.playback_auth
    )


def playback_actor(user: User | None, client_ip: str) -> str:
    return f"user:{user.username}" if user is not None else f"signed-link@{client_ip}"


@dataclass(frozen=True)
class MonitorLink:
    url: str
    mode: str
    expires_at: datetime | None


async def monitor_link_maker(
    session: AsyncSession, runtime: Runtime, *, ttl: timedelta | None = None
) -> MonitorLinkMaker:
    """A pure ``MONITOR_LINK`` for one run of templates: loads the playback mode,
    ``{SVADDR}`` and, in the ``signed`` mode, the current key; signed links live ``ttl``
    (default: the retention period, after which the recording is gone anyway)."""
    current = await get_system_settings(session, runtime.settings)
    key = await current_link_key(session, runtime) if current.playback_auth == "signed" else None
    return MonitorLinkMaker(
        svaddr=svaddr(current.public_url, runtime.settings),
        mode=current.playback_auth,
        key=key,
        lifetime=ttl or timedelta(days=current.retention_days),
    )


async def make_monitor_link(
    session: AsyncSession,
    runtime: Runtime,
    call_ref: str,
    *,
    ttl: timedelta | None = None,
    now: datetime | None = None,
) -> MonitorLink:
    """The playback link of one call (``call_id`` or ``unique_id``) as agents should get
    it: ``{SVADDR}monitor_link/{ID}``, signed with an expiry in the ``signed`` mode."""
    maker = await monitor_link_maker(session, runtime, ttl=ttl)
    now = now or utcnow()
    return MonitorLink(maker(call_ref, now), maker.mode, maker.expires_at(now))


async def recording_summary(session: AsyncSession, call_id: str) -> Recording | None:
    """The call's recording or None (for the ``recording`` field of a call's API view)."""
    return await repository.get_recording(session, call_id)
