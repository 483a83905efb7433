"""The recordings JSON API: the PBX's upload (scope ``pbx``), and for admins the
recording's details, its deletion, playback links and the link-signing key."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response

from callbridge.auth.deps import AdminAccess, PbxAccess
from callbridge.db.session import SessionDep
from callbridge.recordings import repository, retention, service
from callbridge.recordings.schemas import (
    LinkKeyRead,
    MonitorLinkCreate,
    MonitorLinkRead,
    RecordingDetail,
    RecordingRead,
    RecordingUploaded,
    RetentionRun,
)
from callbridge.runtime import get_runtime
from callbridge.system_settings.service import get_system_settings

router = APIRouter(prefix="/api/v1", tags=["recordings"])

CallId = Annotated[str, Path(min_length=1, max_length=200, description="the PBX's call_id")]

_AUDIO_BODY = {
    "required": True,
    "content": {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in (
            "audio/wav",
            "audio/x-wav",
            "audio/mpeg",
            "audio/ogg",
            "audio/mp4",
            "audio/webm",
            "audio/flac",
        )
    },
}


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw is not None and raw.isdigit() else None


@router.put(
    "/calls/{call_id}/recording",
    status_code=201,
    operation_id="upload_recording",
    openapi_extra={"requestBody": _AUDIO_BODY},
    responses={
        200: {"description": "Replaced the call's earlier recording", "model": RecordingUploaded},
        413: {"description": "Larger than the configured limit (nothing is kept)"},
        415: {"description": "Unsupported Content-Type, or the bytes are not of that type"},
    },
)
async def upload_recording(
    call_id: CallId,
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PbxAccess,
    background: BackgroundTasks,
) -> RecordingUploaded:
    """The call's recording as the raw body, streamed to storage. Works before or after
    the call's events arrive. 201 when new, 200 when it replaced an earlier upload."""
    runtime = get_runtime(request)
    storage = service.get_storage(runtime)
    actor = principal.label
    current = await get_system_settings(session, runtime.settings)
    staged = await service.stage_upload(
        request.stream(),
        request.headers.get("content-type"),
        _content_length(request),
        current.max_recording_mb * 1024 * 1024,
        storage.staging_dir,
    )
    saved = await service.save_recording(session, storage, call_id, staged, actor)
    await service.commit_upload(session, storage, saved)
    if saved.obsolete_key is not None:
        # After the commit (background tasks run once the answer is sent).
        background.add_task(service.delete_objects, storage, [saved.obsolete_key])
    response.status_code = 201 if saved.created else 200
    link = await service.make_monitor_link(session, runtime, call_id)
    return RecordingUploaded(
        **RecordingRead.model_validate(saved.recording).model_dump(),
        status="created" if saved.created else "replaced",
        monitor_link=link.url,
    )


@router.get("/calls/{call_id}/recording", operation_id="get_recording")
async def get_recording(
    call_id: CallId, request: Request, session: SessionDep, principal: AdminAccess
) -> RecordingDetail:
    recording = await service.get_recording_or_404(session, call_id)
    link = await service.make_monitor_link(session, get_runtime(request), call_id)
    return RecordingDetail(
        **RecordingRead.model_validate(recording).model_dump(), monitor_link=link.url
    )


@router.delete("/calls/{call_id}/recording", status_code=204, operation_id="delete_recording")
async def delete_recording(
    call_id: CallId,
    request: Request,
    session: SessionDep,
    principal: AdminAccess,
    background: BackgroundTasks,
) -> Response:
    """Delete one call's recording (audit-logged); its playback link then answers 404
    「ファイルが存在しません」."""
    key = await service.delete_recording(session, call_id, principal.label)
    background.add_task(service.delete_objects, service.get_storage(get_runtime(request)), [key])
    return Response(status_code=204)


@router.post("/recordings/monitor-links", operation_id="create_monitor_link")
async def create_monitor_link(
    data: MonitorLinkCreate, request: Request, session: SessionDep, principal: AdminAccess
) -> MonitorLinkRead:
    """The playback link agents should get for a call (what ``MONITOR_LINK({ID})``
    expands to): signed with an expiry when ``playback_auth`` is ``signed``."""
    ttl = timedelta(seconds=data.ttl_seconds) if data.ttl_seconds else None
    link = await service.make_monitor_link(session, get_runtime(request), data.id, ttl=ttl)
    return MonitorLinkRead(url=link.url, mode=link.mode, expires_at=link.expires_at)


@router.get("/recordings/link-key", operation_id="get_link_key")
async def get_link_key(session: SessionDep, principal: AdminAccess) -> LinkKeyRead:
    row = await repository.link_key_row(session)
    return LinkKeyRead(
        generation=row.generation if row else 1, rotated_at=row.rotated_at if row else None
    )


@router.post("/recordings/link-key/rotate", operation_id="rotate_link_key")
async def rotate_link_key(session: SessionDep, principal: AdminAccess) -> LinkKeyRead:
    """Revoke every signed playback link issued so far."""
    generation = await service.rotate_link_key(session, principal.label)
    row = await repository.link_key_row(session)
    return LinkKeyRead(generation=generation, rotated_at=row.rotated_at if row else None)


@router.post(
    "/retention/run",
    operation_id="run_retention",
    tags=["retention"],
    responses={409: {"description": "A purge is running already (scheduled or requested)"}},
)
async def run_retention(request: Request, principal: AdminAccess) -> RetentionRun:
    """Run the retention purge now (the scheduled purge's code) and answer what it
    deleted. The next scheduled purge comes one interval after this one."""
    result = await retention.run_retention_now(get_runtime(request), principal.label)
    return RetentionRun.from_purge(result)
