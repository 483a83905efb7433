"""Helpers for the recordings tests: real WAV files, calls with agents, settings."""

from __future__ import annotations

import io
import math
import struct
import wave
from datetime import datetime, timedelta

import httpx
from fastapi import FastAPI

from callbridge.kit.time import utcnow
from callbridge.models import Call, CallEvent
from callbridge.system_settings.schemas import SystemSettingsUpdate
from callbridge.system_settings.service import update_system_settings
from tests.helpers import bearer


def wav_bytes(seconds: float = 1.0, rate: int = 8000, tone: float = 440.0) -> bytes:
    """A real mono 16-bit PCM WAV file with a sine tone."""
    frames = int(seconds * rate)
    samples = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * tone * i / rate)))
        for i in range(frames)
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples)
    return buffer.getvalue()


MP3_HEAD = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)
OGG_HEAD = b"OggS\x00\x02" + bytes(200)


async def add_call(
    app: FastAPI,
    call_id: str,
    *,
    unique_id: str | None = None,
    agents: tuple[str, ...] = (),
    started_at: datetime | None = None,
    tel: str | None = "07075373713",
    called: str | None = "0312345678",
    tel_name: str | None = "CDF 株式会社",
) -> int:
    """A call with one (already processed) event per agent, as the ingest stores them."""
    started = started_at or utcnow()
    async with app.state.runtime.sessionmaker() as session:
        call = Call(
            call_id=call_id,
            unique_id=unique_id,
            tel=tel,
            tel_name=tel_name,
            called=called,
            direction="inbound",
            started_at=started,
            ended_at=started + timedelta(seconds=95),
            created_at=started,
            updated_at=started,
        )
        session.add(call)
        await session.flush()
        events = agents or (None,)
        for index, agent in enumerate(events):
            session.add(
                CallEvent(
                    call_pk=call.id,
                    event="answer" if agent else "incoming",
                    occurred_at=started + timedelta(seconds=index),
                    received_at=started,
                    due_at=started,
                    agent_id=agent,
                    payload={"call_id": call_id},
                    status="done",
                    processed_at=started,
                )
            )
        await session.commit()
        return call.id


async def set_settings(app: FastAPI, **values: object) -> None:
    runtime = app.state.runtime
    async with runtime.sessionmaker() as session:
        await update_system_settings(
            session,
            runtime.settings,
            SystemSettingsUpdate(**values),
            "test",  # type: ignore[arg-type]
        )
        await session.commit()


async def upload(
    client: httpx.AsyncClient,
    token: str,
    call_id: str,
    body: bytes,
    content_type: str = "audio/wav",
) -> httpx.Response:
    return await client.put(
        f"/api/v1/calls/{call_id}/recording",
        content=body,
        headers={**bearer(token), "Content-Type": content_type},
    )


def stored_files(app: FastAPI) -> list[str]:
    """Every file under the local recordings directory (relative paths)."""
    root = app.state.runtime.settings.data_dir / "recordings"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---- compressed recordings whose headers tell their duration ----------------------------


def mp3_bytes(frames: int) -> bytes:
    """MPEG-1 layer III frames, 128 kbit/s at 44.1 kHz (1152 samples, 417 bytes each)."""
    return (b"\xff\xfb\x90\x00" + bytes(413)) * frames


def ogg_opus_bytes(seconds: float) -> bytes:
    """An Ogg Opus stream: its header pages, then one page ending ``seconds`` later."""
    from mutagen.ogg import OggPage

    pre_skip = 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    pages = []
    for sequence, (packet, position) in enumerate(
        [(head, 0), (tags, 0), (bytes(60), pre_skip + round(48000 * seconds))]
    ):
        page = OggPage()
        page.serial, page.sequence, page.position = 1, sequence, position
        page.first, page.last = sequence == 0, sequence == 2
        page.packets = [packet]
        pages.append(page.write())
    return b"".join(pages)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def m4a_bytes(seconds: float) -> bytes:
    """An MP4 audio file: ``ftyp``, and a sound track whose ``mdhd`` says its length."""
    ftyp = _box(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A isom")
    handler = _box(b"hdlr", bytes(8) + b"soun" + bytes(12) + b"\x00")
    header = _box(b"mdhd", bytes(4) + struct.pack(">IIII", 0, 0, 8000, round(8000 * seconds)))
    return (
        ftyp
        + _box(b"moov", _box(b"trak", _box(b"mdia", header + handler)))
        + _box(b"mdat", bytes(100))
    )
