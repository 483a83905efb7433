"""PUT /api/v1/calls/{call_id}/recording: streamed, size-limited, type-checked, atomic."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from callbridge.models import AuditEntry, Recording
from tests.helpers import bearer, make_token
from tests.recordings.support import (
    MP3_HEAD,
    add_call,
    m4a_bytes,
    mp3_bytes,
    ogg_opus_bytes,
    set_settings,
    stored_files,
    upload,
    wav_bytes,
)


async def _recording(app, call_id: str) -> Recording | None:
    async with app.state.runtime.sessionmaker() as session:
        return (
            await session.scalars(select(Recording).where(Recording.call_id == call_id))
        ).one_or_none()


async def test_upload_before_the_call_exists_then_replace(app, client: httpx.AsyncClient) -> None:
    token = await make_token(app, scope="pbx")
    first = wav_bytes(2.0)
    created = await upload(client, token, "1700000000.42", first)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "created"
    assert body["size_bytes"] == len(first)
    assert body["sha256"] == hashlib.sha256(first).hexdigest()
    assert body["duration_seconds"] == pytest.approx(2.0)
    assert body["content_type"] == "audio/wav"
    assert body["monitor_link"].endswith("/monitor_link/1700000000.42")
    files = stored_files(app)
    assert len(files) == 1
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/1700000000\.42-[0-9a-f]{12}\.wav", files[0])

    second = wav_bytes(3.5, rate=16000)
    replaced = await upload(client, token, "1700000000.42", second, "audio/x-wav; codecs=1")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["status"] == "replaced"
    assert replaced.json()["duration_seconds"] == pytest.approx(3.5)
    # The replaced object is gone, the new one is whole.
    files = stored_files(app)
    assert len(files) == 1
    root = app.state.runtime.settings.data_dir / "recordings"
    assert (root / files[0]).read_bytes() == second
    row = await _recording(app, "1700000000.42")
    assert row is not None and row.sha256 == hashlib.sha256(second).hexdigest()
    assert row.uploaded_by == "token:test"
    # No staging leftovers.
    assert not list((root / ".incoming").iterdir())
    async with app.state.runtime.sessionmaker() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-2:] == ["recording.upload", "recording.replace"]


async def test_upload_after_the_call(app, client: httpx.AsyncClient) -> None:
    await add_call(app, "c-1", agents=("1001",))
    token = await make_token(app, scope="pbx")
    response = await upload(client, token, "c-1", wav_bytes(0.5))
    assert response.status_code == 201


async def test_streamed_upload_without_content_length(app, client: httpx.AsyncClient) -> None:
    token = await make_token(app, scope="pbx")
    data = wav_bytes(1.0)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    response = await client.put(
        "/api/v1/calls/streamed/recording",
        content=chunks(),
        headers={**bearer(token), "Content-Type": "audio/wav"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] == len(data)


async def test_size_limit_by_header_and_by_stream(app, client: httpx.AsyncClient) -> None:
    await set_settings(app, max_recording_mb=1)
    token = await make_token(app, scope="pbx")
    big = wav_bytes(70.0)  # 1.1 MB at 8 kHz, 16 bit
    assert len(big) > 1024 * 1024
    declared = await upload(client, token, "big", big)
    assert declared.status_code == 413
    assert "1 MB" in declared.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await client.put(
        "/api/v1/calls/big/recording",
        content=chunks(),
        headers={**bearer(token), "Content-Type": "audio/wav"},
    )
    assert streamed.status_code == 413
    # Nothing partial anywhere, no row.
    root = app.state.runtime.settings.data_dir / "recordings"
    assert stored_files(app) == []
    assert not list((root / ".incoming").glob("*"))
    assert await _recording(app, "big") is None


async def test_a_failed_replacement_keeps_the_old_recording(app, client: httpx.AsyncClient) -> None:
    await set_settings(app, max_recording_mb=1)
    token = await make_token(app, scope="pbx")
    good = wav_bytes(1.0)
    assert (await upload(client, token, "keep", good)).status_code == 201
    assert (await upload(client, token, "keep", wav_bytes(70.0))).status_code == 413
    assert (await upload(client, token, "keep", MP3_HEAD, "audio/wav")).status_code == 415
    row = await _recording(app, "keep")
    assert row is not None and row.size_bytes == len(good)
    assert len(stored_files(app)) == 1


async def test_content_type_must_match_the_bytes(app, client: httpx.AsyncClient) -> None:
    token = await make_token(app, scope="pbx")
    mismatch = await upload(client, token, "x", MP3_HEAD, "audio/wav")
    assert mismatch.status_code == 415
    assert "looks like audio/mpeg" in mismatch.json()["detail"]
    unknown = await upload(client, token, "x", wav_bytes(0.1), "video/mp4")
    assert unknown.status_code == 415
    assert "unsupported Content-Type video/mp4" in unknown.json()["detail"]
    missing = await upload(client, token, "x", b"plain text, not audio", "audio/ogg")
    assert missing.status_code == 415
    assert "not a known audio format" in missing.json()["detail"]
    mp3 = await upload(client, token, "x", MP3_HEAD, "audio/mpeg")
    assert mp3.status_code == 201
    assert mp3.json()["duration_seconds"] is None
    assert stored_files(app)[0].endswith(".mp3")
    empty = await upload(client, token, "y", b"", "audio/wav")
    assert empty.status_code == 400


async def test_tokens_and_scopes(app, client: httpx.AsyncClient) -> None:
    admin = await make_token(app, scope="admin")
    anonymous = await client.put(
        "/api/v1/calls/x/recording", content=wav_bytes(0.1), headers={"Content-Type": "audio/wav"}
    )
    assert anonymous.status_code == 401
    wrong_scope = await upload(client, admin, "x", wav_bytes(0.1))
    assert wrong_scope.status_code == 403


async def test_admin_api_reads_and_deletes(app, client: httpx.AsyncClient) -> None:
    pbx = await make_token(app, scope="pbx")
    admin = await make_token(app, scope="admin", name="ops")
    await upload(client, pbx, "gone-soon", wav_bytes(0.2))
    detail = await client.get("/api/v1/calls/gone-soon/recording", headers=bearer(admin))
    assert detail.status_code == 200
    assert detail.json()["monitor_link"].endswith("/monitor_link/gone-soon")
    deleted = await client.delete("/api/v1/calls/gone-soon/recording", headers=bearer(admin))
    assert deleted.status_code == 204
    assert stored_files(app) == []
    again = await client.delete("/api/v1/calls/gone-soon/recording", headers=bearer(admin))
    assert again.status_code == 404
    async with app.state.runtime.sessionmaker() as session:
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.delete"))
        ).one()
    assert (entry.actor, entry.target) == ("token:ops", "gone-soon")


async def test_the_call_view_shows_the_recording(app, client: httpx.AsyncClient) -> None:
    await add_call(app, "viewed", agents=("1001",))
    pbx = await make_token(app, scope="pbx")
    admin = await make_token(app, scope="admin", name="ops")
    before = await client.get("/api/v1/calls/viewed", headers=bearer(admin))
    assert before.json()["recording"] is None
    await upload(client, pbx, "viewed", wav_bytes(1.0))
    call = (await client.get("/api/v1/calls/viewed", headers=bearer(admin))).json()
    assert call["recording"]["duration_seconds"] == pytest.approx(1.0)
    assert call["recording"]["playback_path"] == "/monitor_link/viewed"
    # The entry the call's timeline shows.
    from callbridge.calls.store import TIMELINE_PROVIDERS
    from callbridge.models import Call
    from callbridge.recordings.call_view import recording_timeline

    assert recording_timeline in TIMELINE_PROVIDERS
    async with app.state.runtime.sessionmaker() as session:
        row = (await session.scalars(select(Call).where(Call.call_id == "viewed"))).one()
        (entry,) = await recording_timeline(session, row)
    assert (entry.title, entry.link) == ("Recording received", "/monitor_link/viewed")
    assert entry.detail == "0:01 · 15.7 KB"


async def test_mp3_ogg_and_m4a_durations_come_from_their_headers(
    app, client: httpx.AsyncClient
) -> None:
    token = await make_token(app, scope="pbx")
    mp3 = await upload(client, token, "mp3", mp3_bytes(100), "audio/mpeg")
    assert mp3.status_code == 201
    # 100 frames of 417 bytes at 128 kbit/s (no Xing header: size and bit rate tell).
    assert mp3.json()["duration_seconds"] == pytest.approx(2.606, abs=0.001)
    ogg = await upload(client, token, "ogg", ogg_opus_bytes(3.0), "audio/ogg")
    assert ogg.json()["duration_seconds"] == pytest.approx(3.0)
    m4a = await upload(client, token, "m4a", m4a_bytes(4.5), "audio/mp4")
    assert m4a.json()["duration_seconds"] == pytest.approx(4.5)
    detail = await client.get(
        "/api/v1/calls/m4a/recording", headers=bearer(await make_token(app, scope="admin"))
    )
    assert detail.json()["duration_seconds"] == pytest.approx(4.5)
    # Headers that do not tell (one lone frame) leave it unknown.
    lone = await upload(client, token, "lone", MP3_HEAD, "audio/mpeg")
    assert lone.json()["duration_seconds"] is None


async def test_an_upload_whose_commit_fails_leaves_no_file(app, client: httpx.AsyncClient) -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    token = await make_token(app, scope="pbx")

    def refuse(session: Session) -> None:
        # The upload's own commit (its audit entry is still to be written).
        if any(getattr(o, "action", None) == "recording.upload" for o in session.new):
            raise RuntimeError("the database refused the commit")

    event.listen(Session, "before_commit", refuse)
    try:
        failed = await upload(client, token, "doomed", wav_bytes(0.5))
    finally:
        event.remove(Session, "before_commit", refuse)
    assert failed.status_code == 500
    assert await _recording(app, "doomed") is None
    assert stored_files(app) == []
    # The next upload of that call is stored as usual.
    again = await upload(client, token, "doomed", wav_bytes(0.5))
    assert again.status_code == 201 and len(stored_files(app)) == 1
