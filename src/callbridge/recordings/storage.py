"""Where recording bytes live: the storage interface and its local-directory
implementation (``recordings/YYYY/MM/DD/…`` under the data directory).

Uploads are first staged to a temporary file on local disk (hashed, size-checked and
type-checked while they stream in); ``store`` then moves the finished file into place.
Nothing partial ever appears under a final key. Every upload gets a key of its own, so
a replacement never overwrites bytes a reader may be streaming; the database row is the
one place that says which object is current.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio
import anyio.to_thread

READ_CHUNK = 64 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ObjectMissing(Exception):
    """The stored object is gone (deleted by hand, purged, or never written)."""


class ObjectStream:
    """An opened byte range of an object: iterate for chunks, ``aclose()`` to release it
    (idempotent; the playback route always calls it, even when the client went away)."""

    def __init__(self, chunks: AsyncIterator[bytes], close: Callable[[], Awaitable[None]]) -> None:
        self._chunks = chunks
        self._close = close
        self._closed = False

    def __aiter__(self) -> ObjectStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()


class RecordingStorage(Protocol):
    """A place for recording objects. Keys are relative, ``/``-separated paths."""

    kind: str

    @property
    def staging_dir(self) -> Path:
        """A local directory for uploads in progress."""
        ...

    async def store(self, staged: Path, key: str, content_type: str, sha256: str) -> None:
        """Move a fully written staged file to ``key`` (consumes the staged file)."""
        ...

    async def open(self, key: str, start: int, length: int) -> ObjectStream:
        """``length`` bytes from offset ``start``; ``ObjectMissing`` at once if gone."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""
        ...

    async def close(self) -> None: ...


def new_storage_key(call_id: str, extension: str, now: datetime) -> str:
    """``YYYY/MM/DD/<call id>-<random>.<ext>`` (UTC date of the upload)."""
    safe = _UNSAFE.sub("_", call_id).strip("._")[:80] or "call"
    return f"{now:%Y/%m/%d}/{safe}-{secrets.token_hex(6)}.{extension}"


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"bad storage key {key!r}")


class LocalStorage:
    """Recordings as files under one directory (``<data dir>/recordings``)."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._staging = root / ".incoming"

    @property
    def staging_dir(self) -> Path:
        self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def path_for(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    async def store(self, staged: Path, key: str, content_type: str, sha256: str) -> None:
        target = self.path_for(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Same file system as the staging directory: an atomic rename.
            os.replace(staged, target)

        await anyio.to_thread.run_sync(move)

    async def open(self, key: str, start: int, length: int) -> ObjectStream:
        path = self.path_for(key)

        def open_and_read_first() -> tuple[BinaryIO, bytes]:
            # One trip to a worker thread for open, seek and the first chunk: the time to
            # first byte of a seek is mostly these hops.
            handle = path.open("rb")
            try:
                handle.seek(start)
                return handle, handle.read(min(READ_CHUNK, length))
            except BaseException:
                handle.close()
                raise

        try:
            handle, first = await anyio.to_thread.run_sync(open_and_read_first)
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

        async def chunks() -> AsyncIterator[bytes]:
            chunk, remaining = first, length
            while chunk and remaining > 0:
                remaining -= len(chunk)
                yield chunk
                if remaining > 0:
                    chunk = await anyio.to_thread.run_sync(handle.read, min(READ_CHUNK, remaining))

        async def close() -> None:
            handle.close()

        return ObjectStream(chunks(), close)

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        await anyio.to_thread.run_sync(self._delete_sync, key)

    def _delete_sync(self, key: str) -> None:
        path = self.path_for(key)
        path.unlink(missing_ok=True)
        # Drop the day/month/year folders once they are empty.
        for parent in list(path.parents)[:3]:
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    async def close(self) -> None:
        return None
