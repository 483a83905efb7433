"""Call recordings, the key generation of signed playback links, and the lease rows that
let exactly one worker at a time run a periodic job (retention)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import Base
from callbridge.kit.time import utcnow

# BigInteger ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Recording(Base):
    """The audio of one call. Keyed by the PBX's ``call_id`` string, not by a foreign key:
    the PBX may upload the recording before any event of the call has arrived."""

    __tablename__ = "recording"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(200), unique=True)
    storage_key: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    uploaded_by: Mapped[str] = mapped_column(String(200), default="")
    # First upload; retention of a recording without call events counts from here.
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Last upload (a replacement moves it): the Last-Modified of the audio.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlaybackLinkKey(Base):
    """One row: the generation of the key that signs playback links. Rotating it (a new
    generation) revokes every signed link issued before."""

    __tablename__ = "playback_link_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(default=1)
    rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_by: Mapped[str] = mapped_column(String(200), default="")


class PeriodicJob(Base):
    """A periodic job's schedule and lease: a worker runs the job only after taking the
    lease with a conditional UPDATE, so any number of workers can share one database."""

    __tablename__ = "periodic_job"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
