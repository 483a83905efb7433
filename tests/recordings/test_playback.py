"""GET /monitor_link/{id} and its audio: the page, Range, conditional requests, 404."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from callbridge.models import AuditEntry
from tests.helpers import make_token, make_user, sign_in
from tests.recordings.support import add_call, upload, wav_bytes

AUDIO = "/monitor_link/1700000000.42/audio"


@pytest.fixture
async def recorded(app, client: httpx.AsyncClient) -> bytes:
    """A call handled by agent 1001 with a 2-second recording; signed in as admin."""
    await add_call(app, "1700000000.42", unique_id="uniq-42", agents=("1001",))
    token = await make_token(app, scope="pbx")
    data = wav_bytes(2.0)
    assert (await upload(client, token, "1700000000.42", data)).status_code == 201
    await make_user(app)
    await sign_in(client)
    return data


async def _audit_actions(app) -> list[str]:
    async with app.state.runtime.sessionmaker() as session:
        return list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


async def test_page_by_call_id_and_unique_id(app, client, recorded) -> None:
    for ref in ("1700000000.42", "uniq-42"):
        page = await client.get(f"/monitor_link/{ref}", headers={"Accept-Language": "en"})
        assert page.status_code == 200, page.text
        html = page.text
        assert "07075373713 (CDF 株式会社)" in html
        assert "0312345678" in html
        assert ">1001<" in html
        assert "0:02" in html  # recording length from the WAV header
        assert "1:35" in html  # call duration
        assert f'src="/monitor_link/{ref}/audio"' in html
        assert f'href="/monitor_link/{ref}/audio?download=1"' in html
    assert (await _audit_actions(app)).count("recording.view") == 2


async def test_page_in_japanese(app, client, recorded) -> None:
    page = await client.get("/monitor_link/1700000000.42", headers={"Accept-Language": "ja"})
    assert page.status_code == 200
    assert "通話録音" in page.text
    assert "発信電話番号" in page.text
    assert "ダウンロード" in page.text


async def test_agent_names_are_shown(app, client, recorded) -> None:
    await make_user(app, "suzuki", role="agent", agent_id="1001")
    page = await client.get("/monitor_link/1700000000.42")
    assert "suzuki (1001)" in page.text


async def test_full_and_ranged_audio(app, client, recorded) -> None:
    data = recorded
    size = len(data)
    full = await client.get(AUDIO)
    assert full.status_code == 200
    assert full.content == data
    assert full.headers["content-type"] == "audio/wav"
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-length"] == str(size)
    assert full.headers["etag"].startswith('"')
    assert full.headers["last-modified"].endswith("GMT")
    assert full.headers["content-disposition"].startswith("inline;")

    bounded = await client.get(AUDIO, headers={"Range": "bytes=10-19"})
    assert bounded.status_code == 206
    assert bounded.content == data[10:20]
    assert bounded.headers["content-range"] == f"bytes 10-19/{size}"
    assert bounded.headers["content-length"] == "10"

    open_ended = await client.get(AUDIO, headers={"Range": "bytes=100-"})
    assert open_ended.status_code == 206
    assert open_ended.content == data[100:]
    assert open_ended.headers["content-range"] == f"bytes 100-{size - 1}/{size}"

    suffix = await client.get(AUDIO, headers={"Range": "bytes=-500"})
    assert suffix.status_code == 206
    assert suffix.content == data[-500:]
    assert suffix.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"

    beyond_end = await client.get(AUDIO, headers={"Range": f"bytes={size - 5}-{size + 100}"})
    assert beyond_end.status_code == 206
    assert beyond_end.content == data[-5:]

    long_suffix = await client.get(AUDIO, headers={"Range": f"bytes=-{size * 2}"})
    assert long_suffix.status_code == 206
    assert long_suffix.content == data

    last_byte = await client.get(AUDIO, headers={"Range": f"bytes={size - 1}-{size - 1}"})
    assert last_byte.content == data[-1:]


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=-0"])
async def test_unsatisfiable_range(app, client, recorded, header: str) -> None:
    response = await client.get(AUDIO, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(recorded)}"


@pytest.mark.parametrize("header", ["bytes=5-2", "items=0-10", "bytes=abc", "bytes=0-1,5-9"])
async def test_ignored_range_sends_everything(app, client, recorded, header: str) -> None:
    response = await client.get(AUDIO, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == recorded


async def test_conditional_requests(app, client, recorded) -> None:
    first = await client.get(AUDIO)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert (await client.get(AUDIO, headers={"If-None-Match": etag})).status_code == 304
    assert (await client.get(AUDIO, headers={"If-None-Match": f"W/{etag}"})).status_code == 304
    assert (await client.get(AUDIO, headers={"If-None-Match": '"other"'})).status_code == 200
    assert (
        await client.get(AUDIO, headers={"If-Modified-Since": last_modified})
    ).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert (await client.get(AUDIO, headers={"If-Modified-Since": old})).status_code == 200
    # If-Range: the range is honoured only for the current version.
    current = await client.get(AUDIO, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert current.status_code == 206
    by_date = await client.get(AUDIO, headers={"Range": "bytes=0-9", "If-Range": last_modified})
    assert by_date.status_code == 206
    stale = await client.get(AUDIO, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == recorded
    assert (await client.get(AUDIO, headers={"If-Match": '"stale"'})).status_code == 412
    assert (await client.get(AUDIO, headers={"If-Match": etag})).status_code == 200


async def test_head_and_download(app, client, recorded) -> None:
    head = await client.head(AUDIO, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206
    assert head.headers["content-length"] == "100"
    assert head.content == b""
    download = await client.get(AUDIO + "?download=1")
    assert download.headers["content-disposition"] == (
        'attachment; filename="recording-1700000000.42.wav"'
    )
    actions = await _audit_actions(app)
    assert "recording.download" in actions


async def test_plays_are_audited_once_per_playback(app, client, recorded) -> None:
    await client.get(AUDIO, headers={"Range": "bytes=0-"})
    await client.get(AUDIO, headers={"Range": "bytes=1000-"})  # a seek
    await client.get(AUDIO, headers={"Range": "bytes=2000-"})
    async with app.state.runtime.sessionmaker() as session:
        plays = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "recording.play"))
        )
    assert len(plays) == 1
    assert (plays[0].actor, plays[0].target) == ("user:admin", "1700000000.42")
    assert plays[0].details["mode"] == "admin"


async def test_missing_recording_page(app, client: httpx.AsyncClient) -> None:
    await make_user(app)
    await sign_in(client)
    await add_call(app, "no-audio", agents=("1001",))
    for ref in ("no-audio", "never-heard-of"):
        page = await client.get(f"/monitor_link/{ref}", headers={"Accept-Language": "ja"})
        assert page.status_code == 404
        assert "ファイルが存在しません" in page.text
        audio = await client.get(f"/monitor_link/{ref}/audio")
        assert audio.status_code == 404


async def test_deleted_file_and_deleted_recording(app, client, recorded) -> None:
    root = app.state.runtime.settings.data_dir / "recordings"
    for path in root.rglob("*.wav"):
        path.unlink()  # removed behind callbridge's back
    page = await client.get("/monitor_link/1700000000.42")
    assert page.status_code == 404
    assert "The file does not exist." in page.text
    assert (await client.get(AUDIO)).status_code == 404


async def test_admin_deletes_from_the_page(app, client, recorded) -> None:
    page = await client.get("/monitor_link/1700000000.42")
    assert "Delete recording" in page.text
    from tests.helpers import csrf_from

    response = await client.post(
        "/recordings/1700000000.42/delete",
        data={"csrf_token": csrf_from(page.text), "next": "/monitor_link/1700000000.42"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/monitor_link/1700000000.42"
    gone = await client.get("/monitor_link/1700000000.42")
    assert gone.status_code == 404
    assert "recording.delete" in await _audit_actions(app)
    listing = await client.get("/recordings")
    assert listing.status_code == 200
    assert "No recordings yet." in listing.text


async def test_recordings_page_and_dashboard(app, client, recorded) -> None:
    listing = await client.get("/recordings")
    assert listing.status_code == 200
    assert "1700000000.42" in listing.text
    assert "Local directory" in listing.text
    dashboard = await client.get("/")
    assert "Recording storage used" in dashboard.text
    assert "31.3 KB" in dashboard.text  # 2 s of 8 kHz 16-bit mono
    assert "Next retention purge" in dashboard.text
