"""Audio formats: which content types are accepted, their magic bytes, and the duration
of a recording: a WAV file's from its header (pure), MP3, Ogg, MP4/M4A and FLAC files'
from theirs read by mutagen (a file on disk)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mutagen

# How many leading bytes the upload keeps to check the type and parse a WAV header.
HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class AudioFormat:
    content_type: str  # canonical, as served back on playback
    extension: str
    matches: Callable[[bytes], bool]
    min_header: int  # bytes needed before ``matches`` can decide


def _is_wav(head: bytes) -> bool:
    return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"


def _is_mpeg(head: bytes) -> bool:
    if head[:3] == b"ID3":
        return True
    # An MPEG audio frame header: 11 sync bits, then a valid version and layer.
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def _is_ogg(head: bytes) -> bool:
    return head[:4] == b"OggS"


def _is_mp4(head: bytes) -> bool:
    return head[4:8] == b"ftyp"


def _is_webm(head: bytes) -> bool:
    return head[:4] == b"\x1a\x45\xdf\xa3"


def _is_flac(head: bytes) -> bool:
    return head[:4] == b"fLaC"


_WAV = AudioFormat("audio/wav", "wav", _is_wav, 12)
_MPEG = AudioFormat("audio/mpeg", "mp3", _is_mpeg, 3)
_OGG = AudioFormat("audio/ogg", "ogg", _is_ogg, 4)
_MP4 = AudioFormat("audio/mp4", "m4a", _is_mp4, 8)
_WEBM = AudioFormat("audio/webm", "webm", _is_webm, 4)
_FLAC = AudioFormat("audio/flac", "flac", _is_flac, 4)

# Content types a PBX may send, with their aliases.
FORMATS: dict[str, AudioFormat] = {
    "audio/wav": _WAV,
    "audio/x-wav": _WAV,
    "audio/wave": _WAV,
    "audio/vnd.wave": _WAV,
    "audio/mpeg": _MPEG,
    "audio/mp3": _MPEG,
    "audio/ogg": _OGG,
    "audio/opus": _OGG,
    "application/ogg": _OGG,
    "audio/mp4": _MP4,
    "audio/x-m4a": _MP4,
    "audio/m4a": _MP4,
    "audio/aac": _MP4,
    "audio/webm": _WEBM,
    "audio/flac": _FLAC,
    "audio/x-flac": _FLAC,
}


def format_for(content_type: str | None) -> AudioFormat | None:
    """The accepted format of a ``Content-Type`` header (parameters ignored), or None."""
    if not content_type:
        return None
    return FORMATS.get(content_type.split(";", 1)[0].strip().lower())


def detect_format(head: bytes) -> AudioFormat | None:
    """The format the leading bytes show, whatever was declared (for error messages)."""
    for candidate in (_WAV, _OGG, _MP4, _WEBM, _FLAC, _MPEG):
        if candidate.matches(head):
            return candidate
    return None


def wav_duration(head: bytes, total_size: int) -> float | None:
    """Seconds of audio in a RIFF/WAVE file, from the ``fmt `` byte rate and the ``data``
    chunk. ``head`` holds the file's first bytes; ``total_size`` caps a ``data`` size that
    streaming writers leave at 0 or 0xFFFFFFFF. None when the header cannot tell."""
    if not _is_wav(head):
        return None
    byte_rate: int | None = None
    offset = 12
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        (chunk_size,) = struct.unpack_from("<I", head, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt " and body + 16 <= len(head):
            (byte_rate,) = struct.unpack_from("<I", head, body + 8)
        elif chunk_id == b"data":
            if not byte_rate:
                return None
            available = max(total_size - body, 0)
            size = available if chunk_size in (0, 0xFFFFFFFF) else min(chunk_size, available)
            return size / byte_rate
        offset = body + chunk_size + (chunk_size & 1)
    return None


# Formats whose duration mutagen reads from the stored file (WebM it does not know).
TAGGED_EXTENSIONS = frozenset({"mp3", "ogg", "m4a", "flac"})


def tagged_duration(path: Path) -> float | None:
    """Seconds of audio of an MP3 (Xing/VBRI header, else frames and bit rate), Ogg
    (Vorbis, Opus, …: the last page's position), MP4/M4A (the audio track's ``mdhd``) or
    FLAC (``STREAMINFO``) file. None when its headers do not tell."""
    try:
        audio = mutagen.File(path)
    except (mutagen.MutagenError, OSError, ValueError, struct.error):
        return None
    length = getattr(getattr(audio, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) and length > 0 else None
