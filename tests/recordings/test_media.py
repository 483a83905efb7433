"""Magic bytes and WAV durations."""

from __future__ import annotations

import struct

import pytest

from callbridge.recordings.media import detect_format, format_for, wav_duration
from tests.recordings.support import MP3_HEAD, OGG_HEAD, wav_bytes


@pytest.mark.parametrize(
    ("content_type", "canonical"),
    [
        ("audio/wav", "audio/wav"),
        ("audio/x-wav", "audio/wav"),
        ("AUDIO/WAVE; x=1", "audio/wav"),
        ("audio/mpeg", "audio/mpeg"),
        ("audio/ogg", "audio/ogg"),
        ("audio/mp4", "audio/mp4"),
        ("audio/webm", "audio/webm"),
        ("audio/flac", "audio/flac"),
    ],
)
def test_accepted_content_types(content_type: str, canonical: str) -> None:
    found = format_for(content_type)
    assert found is not None and found.content_type == canonical


@pytest.mark.parametrize("content_type", [None, "", "video/mp4", "application/octet-stream"])
def test_refused_content_types(content_type: str | None) -> None:
    assert format_for(content_type) is None


def test_detection() -> None:
    assert detect_format(wav_bytes(0.01)).content_type == "audio/wav"  # type: ignore[union-attr]
    assert detect_format(MP3_HEAD).content_type == "audio/mpeg"  # type: ignore[union-attr]
    assert detect_format(b"\xff\xfb\x90\x64").content_type == "audio/mpeg"  # type: ignore[union-attr]
    assert detect_format(OGG_HEAD).content_type == "audio/ogg"  # type: ignore[union-attr]
    assert detect_format(b"\x00\x00\x00\x20ftypM4A ").content_type == "audio/mp4"  # type: ignore[union-attr]
    assert detect_format(b"\x1a\x45\xdf\xa3\x01").content_type == "audio/webm"  # type: ignore[union-attr]
    assert detect_format(b"fLaC\x00").content_type == "audio/flac"  # type: ignore[union-attr]
    assert detect_format(b"<html>") is None
    assert detect_format(b"RIFF\x00\x00\x00\x00AVI ") is None


@pytest.mark.parametrize(("seconds", "rate"), [(1.0, 8000), (2.5, 16000), (0.25, 44100)])
def test_wav_duration(seconds: float, rate: int) -> None:
    data = wav_bytes(seconds, rate=rate)
    assert wav_duration(data[:4096], len(data)) == pytest.approx(seconds)


def _wav(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"WAVE" + b"".join(
        cid + struct.pack("<I", len(c)) + c + b"\x00" * (len(c) & 1) for cid, c in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


FMT = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)


def test_wav_duration_with_chunks_before_data() -> None:
    data = _wav(
        [(b"fmt ", FMT), (b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00"), (b"data", bytes(32000))]
    )
    assert wav_duration(data, len(data)) == pytest.approx(2.0)


def test_wav_duration_of_a_streamed_header() -> None:
    # Streaming writers leave the data size at 0 or 0xFFFFFFFF: the file size counts.
    header = _wav([(b"fmt ", FMT)]) + b"data" + struct.pack("<I", 0xFFFFFFFF)
    assert wav_duration(header, len(header) + 8000) == pytest.approx(0.5)
    truncated = _wav([(b"fmt ", FMT), (b"data", bytes(16000))])
    assert wav_duration(truncated[:-8000], len(truncated) - 8000) == pytest.approx(0.5)


def test_wav_duration_unknown() -> None:
    assert wav_duration(MP3_HEAD, 1000) is None
    assert wav_duration(_wav([(b"data", bytes(10))]), 100) is None  # no fmt chunk first
