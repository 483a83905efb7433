"""The playback link agents click in Salesforce (``/monitor_link/{id}`` and its audio,
seekable with HTTP Range), and the admins' recordings page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from callbridge.admin.auth_pages import login_redirect
from callbridge.admin.rendering import (
    add_template_dir,
    format_datetime,
    gettext_for,
    render,
    safe_next,
)
from callbridge.audit import record_audit
from callbridge.auth.deps import AdminUser, CsrfChecked, OptionalUser
from callbridge.db.session import SessionDep
from callbridge.i18n import N_
from callbridge.models import Recording, User
from callbridge.recordings import repository, retention, service
from callbridge.recordings.call_view import register_call_view
from callbridge.recordings.display import format_bytes, format_seconds
from callbridge.recordings.links import SIGNED_PARAMS
from callbridge.recordings.permissions import Decision
from callbridge.recordings.ranges import (
    ByteRange,
    Unsatisfiable,
    http_date,
    not_modified,
    parse_range,
    precondition_failed,
    range_applies,
)
from callbridge.recordings.storage import ObjectMissing
from callbridge.runtime import get_runtime
from callbridge.system_settings.service import get_system_settings

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).resolve().parent / "templates"


add_template_dir(TEMPLATES)
register_call_view()

_EXTENSIONS = {
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
    "audio/flac": "flac",
}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_params(request: Request) -> dict[str, str]:
    return {
        name: request.query_params[name] for name in SIGNED_PARAMS if name in request.query_params
    }


def _ascii_filename(call_id: str, content_type: str) -> str:
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in call_id)
    return f"recording-{stem or 'call'}.{_EXTENSIONS.get(content_type, 'bin')}"


async def _forbidden_page(
    request: Request, user: User | None, decision: Decision, status_code: int = 403
) -> Response:
    _ = gettext_for(request, user)
    reason = _(decision.reason or N_("You may not play this recording."))
    return await render(
        request,
        "recordings/forbidden.html",
        {
            "reason": reason.format(**decision.args),
            "signed_in": user is not None,
            "login_url": "/login?next=" + quote(request.url.path, safe=""),
        },
        user=user,
        status_code=status_code,
    )


async def _missing_page(request: Request, session: SessionDep, user: User | None) -> Response:
    current = await get_system_settings(session, get_runtime(request).settings)
    return await render(
        request,
        "recordings/missing.html",
        {"retention_days": current.retention_days},
        user=user,
        status_code=404,
    )


@router.get("/monitor_link/{ref}")
async def playback_page(
    ref: str, request: Request, session: SessionDep, user: OptionalUser
) -> Response:
    runtime = get_runtime(request)
    target = await service.find_playback_target(session, ref)
    params = _signed_params(request)
    decision, mode = await service.authorize_playback(session, runtime, user, target, params)
    if decision.login_required:
        return login_redirect(request)
    recording = target.recording
    storage = service.get_storage(runtime)
    exists = recording is not None and await storage.exists(recording.storage_key)
    if not exists and (decision.allowed or target.call is None):
        return await _missing_page(request, session, user)
    actor = service.playback_actor(user, _client_ip(request))
    if not decision.allowed:
        record_audit(
            session,
            actor,
            "recording.denied",
            target.call_id,
            mode=mode,
            reason=(decision.reason or "").format(**decision.args),
        )
        return await _forbidden_page(request, user, decision)
    assert recording is not None
    record_audit(
        session,
        actor,
        "recording.view",
        target.call_id,
        mode=mode,
        via_link=decision.via_link,
        ip=_client_ip(request),
    )
    current = await get_system_settings(session, runtime.settings)
    call = target.call
    names = await repository.user_names_by_agent(session, target.agents)
    agents = [f"{names[a]} ({a})" if names.get(a) else a for a in target.agents]
    query = f"?{urlencode(params)}" if params else ""
    audio_url = f"/monitor_link/{quote(ref, safe='')}/audio{query}"
    download_url = audio_url + ("&" if params else "?") + "download=1"
    call_seconds = (
        (call.ended_at - call.started_at).total_seconds()
        if call is not None and call.ended_at is not None
        else None
    )
    return await render(
        request,
        "recordings/play.html",
        {
            "call": call,
            "call_id": target.call_id,
            "recording": recording,
            "agents": agents,
            "audio_url": audio_url,
            "download_url": download_url,
            "call_duration": format_seconds(call_seconds),
            "recording_duration": format_seconds(recording.duration_seconds),
            "size": format_bytes(recording.size_bytes),
            "system_timezone": current.timezone,
            "can_delete": user is not None and user.role == "admin",
            "delete_action": f"/recordings/{quote(target.call_id, safe='')}/delete",
            "next": request.url.path,
        },
        user=user,
        session=session,
    )


def _audio_headers(recording: Recording, etag: str, download: bool) -> dict[str, str]:
    disposition = "attachment" if download else "inline"
    filename = _ascii_filename(recording.call_id, recording.content_type)
    return {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": http_date(recording.updated_at),
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'{disposition}; filename="{filename}"',
        "X-Content-Type-Options": "nosniff",
    }


@router.api_route("/monitor_link/{ref}/audio", methods=["GET", "HEAD"])
async def playback_audio(
    ref: str, request: Request, session: SessionDep, user: OptionalUser
) -> Response:
    """The audio bytes, with Range (206/416) and conditional requests (304/412), streamed
    from storage. Without a session (and without a valid signed link): 401."""
    runtime = get_runtime(request)
    _ = gettext_for(request, user)
    target = await service.find_playback_target(session, ref)
    decision, mode = await service.authorize_playback(
        session, runtime, user, target, _signed_params(request)
    )
    if decision.login_required:
        return PlainTextResponse(_("Sign in to play this recording."), status_code=401)
    if not decision.allowed:
        if target.recording is None and target.call is None:
            return PlainTextResponse(_("The file does not exist."), status_code=404)
        return PlainTextResponse(
            _(decision.reason or N_("You may not play this recording.")).format(**decision.args),
            status_code=403,
        )
    recording = target.recording
    if recording is None:
        return PlainTextResponse(_("The file does not exist."), status_code=404)
    size = recording.size_bytes
    etag = f'"{recording.sha256[:32]}"'
    headers = _audio_headers(recording, etag, request.query_params.get("download") == "1")
    request_headers = {k.lower(): v for k, v in request.headers.items()}
    if precondition_failed(request_headers, etag, recording.updated_at):
        return Response(status_code=412, headers=headers)
    if not_modified(request_headers, etag, recording.updated_at):
        return Response(status_code=304, headers=headers)
    byte_range: ByteRange | None = None
    if range_applies(request_headers, etag, recording.updated_at):
        try:
            byte_range = parse_range(request.headers.get("range"), size)
        except Unsatisfiable:
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
            )
    start, length = (byte_range.start, byte_range.length) if byte_range else (0, size)
    if byte_range is not None:
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    headers["Content-Length"] = str(length)
    status = 206 if byte_range is not None else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=recording.content_type)
    storage = service.get_storage(runtime)
    try:
        stream = await storage.open(recording.storage_key, start, length)
    except ObjectMissing:
        return PlainTextResponse(_("The file does not exist."), status_code=404)
    if start == 0:
        download = request.query_params.get("download") == "1"
        record_audit(
            session,
            service.playback_actor(user, _client_ip(request)),
            "recording.download" if download else "recording.play",
            target.call_id,
            mode=mode,
            via_link=decision.via_link,
            ip=_client_ip(request),
        )
    return StreamingResponse(
        stream,
        status_code=status,
        headers=headers,
        media_type=recording.content_type,
        background=BackgroundTask(stream.aclose),
    )


# ---- admin: the recordings page, deletion, key rotation ------------------------------


@router.get("/recordings")
async def recordings_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    runtime = get_runtime(request)
    _ = gettext_for(request, user)
    current = await get_system_settings(session, runtime.settings)
    count, used = await repository.storage_totals(session)
    job = await repository.get_job(session, retention.JOB_NAME)
    key = await repository.link_key_row(session)
    rows = await repository.recent_recordings(session, 50)
    flash = None
    if request.query_params.get("deleted"):
        flash = _("The recording was deleted.")
    elif request.query_params.get("rotated"):
        flash = _("A new signing key is in use: earlier signed links no longer play.")
    elif request.query_params.get("purged"):
        flash = _("The retention purge has run.")
    return await render(
        request,
        "recordings/list.html",
        {
            "flash": flash,
            "count": count,
            "used": format_bytes(used),
            "storage_kind": service.get_storage(runtime).kind,
            "settings": current,
            "job": job,
            "key_generation": key.generation if key else 1,
            "key_rotated_at": key.rotated_at if key else None,
            "recordings": [
                {
                    "row": row,
                    "size": format_bytes(row.size_bytes),
                    "duration": format_seconds(row.duration_seconds),
                    "quoted": quote(row.call_id, safe=""),
                }
                for row in rows
            ],
            "system_timezone": current.timezone,
        },
        user=user,
        session=session,
        active="recordings",
    )


@router.post("/recordings/{call_id}/delete", dependencies=[CsrfChecked])
async def delete_recording_form(
    call_id: str,
    request: Request,
    session: SessionDep,
    user: AdminUser,
    background: BackgroundTasks,
    next: Annotated[str, Form()] = "",
) -> Response:
    key = await service.delete_recording(session, call_id, f"user:{user.username}")
    background.add_task(service.delete_objects, service.get_storage(get_runtime(request)), [key])
    target = safe_next(next) if next else "/recordings?deleted=1"
    return RedirectResponse(target, status_code=303)


@router.post("/recordings/retention/run", dependencies=[CsrfChecked])
async def run_retention_form(request: Request, user: AdminUser) -> Response:
    await retention.run_retention_now(get_runtime(request), f"user:{user.username}")
    return RedirectResponse("/recordings?purged=1", status_code=303)


@router.post("/recordings/link-key/rotate", dependencies=[CsrfChecked])
async def rotate_link_key_form(session: SessionDep, user: AdminUser) -> Response:
    await service.rotate_link_key(session, f"user:{user.username}")
    return RedirectResponse("/recordings?rotated=1", status_code=303)


async def _display_timezone(session: SessionDep) -> str:
    """The time zone an admin chose, else the process default (the provider gets no
    request, so the process setting is read the way the server read it)."""
    from callbridge.models import SystemSetting
    from callbridge.settings import Settings

    row = await session.get(SystemSetting, "timezone")
    if row is not None and isinstance(row.value, str):
        return row.value
    return os.environ.get("CALLBRIDGE_TIMEZONE") or str(Settings.model_fields["timezone"].default)


async def dashboard_cards(session: SessionDep) -> list[object]:
    """Storage used and the next retention purge, for the admin dashboard."""
    from callbridge.admin.pages import Card

    count, used = await repository.storage_totals(session)
    job = await repository.get_job(session, retention.JOB_NAME)
    zone = await _display_timezone(session)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = "UTC"
    next_purge = format_datetime(job.next_run_at if job else None, zone)
    return [
        Card(N_("Recordings"), count),
        Card(N_("Recording storage used"), format_bytes(used)),
        Card(N_("Next retention purge"), next_purge),
    ]
