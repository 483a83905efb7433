"""The recording on a call's view: the ``recording`` field of ``GET /api/v1/calls/{id}``
and an entry on the call's timeline (extension points of the call store)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.calls.store import DETAIL_PROVIDERS, TIMELINE_PROVIDERS, TimelineEntry
from callbridge.i18n import N_
from callbridge.models import Call
from callbridge.recordings import repository
from callbridge.recordings.display import format_bytes, format_seconds
from callbridge.recordings.links import MONITOR_PATH
from callbridge.recordings.schemas import RecordingRead


def playback_path(call_id: str) -> str:
    return f"/{MONITOR_PATH}{quote(call_id, safe='')}"


async def recording_detail(session: AsyncSession, call: Call) -> dict[str, Any] | None:
    recording = await repository.get_recording(session, call.call_id)
    if recording is None:
        return None
    return {
        **RecordingRead.model_validate(recording).model_dump(mode="json"),
        "playback_path": playback_path(call.call_id),
    }


async def recording_timeline(session: AsyncSession, call: Call) -> list[TimelineEntry]:
    recording = await repository.get_recording(session, call.call_id)
    if recording is None:
        return []
    detail = f"{format_seconds(recording.duration_seconds)} · {format_bytes(recording.size_bytes)}"
    return [
        TimelineEntry(
            at=recording.updated_at,
            title=N_("Recording received"),
            detail=detail,
            link=playback_path(call.call_id),
        )
    ]


def register_call_view() -> None:
    DETAIL_PROVIDERS.setdefault("recording", recording_detail)
    if recording_timeline not in TIMELINE_PROVIDERS:
        TIMELINE_PROVIDERS.append(recording_timeline)
