"""Process settings read from the environment (prefix ``CALLBRIDGE_``).

Only what a process needs to start lives here. Settings an administrator changes at
run time (playback authentication, retention, ...) are stored in the database and
edited through ``/api/v1/settings``; the values here are their defaults.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret.key"
# An origin as a CSP source: scheme, host (optionally "*." first), optional port.
_FRAME_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:(\d{1,5}|\*))?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLBRIDGE_", extra="ignore")

    data_dir: Path = Field(default=Path("./callbridge-data"))
    database_url: str | None = None
    secret_key: str | None = Field(default=None, repr=False)
    # Older keys, comma separated: secrets encrypted with them still decrypt (rotation).
    previous_secret_keys: str | None = Field(default=None, repr=False)
    public_url: str | None = None
    timezone: str = "Asia/Tokyo"
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    # Seconds without a byte of a request body before the request is answered 408 (the
    # time between two reads, like nginx's client_body_timeout).
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # One log line per HTTP request (uvicorn's access log). Off by default: at hundreds of
    # PBX requests a second it costs CPU and floods the log; metrics and request IDs in
    # the application's own lines cover the same ground.
    access_log: bool = False
    # Defaults of the run-time settings an admin may change in the UI.
    playback_auth: Literal["url", "admin", "signed"] = "admin"
    retention_days: int = Field(default=90, ge=1, le=3650)
    max_recording_mb: int = Field(default=200, ge=1, le=10240)
    # Outbound HTTP.
    allow_insecure_http: bool = False
    # CRM outages (DESIGN.md §6): work the CRM did not process waits (is parked) this
    # long at most, then fails saying why. Parked work resumes at up to this many calls
    # a second per CRM (starting at a tenth of it and reaching it within ten seconds).
    park_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    resume_calls_per_second: float = Field(default=50.0, gt=0, le=10_000)
    # Sessions and sign-in throttling.
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    # Dispatcher.
    # Calls in flight per dispatcher process: each mostly waits for the CRM, so this is
    # sized for hundreds of calls a second, not for the CPU.
    worker_concurrency: int = Field(default=200, ge=1, le=10000)
    lease_seconds: int = Field(default=30, ge=5, le=3600)
    # New work wakes workers at once (LISTEN/NOTIFY, in-process signal); polling is the
    # fallback for lost notifications and expired leases.
    dispatch_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    # An event carrying occurred_at waits until occurred_at + this window (at most this
    # long after it arrived), so events of one call delivered out of order run in order.
    reorder_window_ms: int = Field(default=200, ge=0, le=60_000)
    # An event whose processing was interrupted this many times (worker crashes) is
    # marked failed instead of being taken again.
    max_event_attempts: int = Field(default=5, ge=1, le=100)
    # PostgreSQL connections kept per process: concurrent requests and in-flight events
    # each use one for a moment; connections beyond the pool are opened and closed again.
    database_pool_size: int = Field(default=20, ge=1, le=500)
    database_max_overflow: int = Field(default=30, ge=0, le=500)
    # The call store's two asyncpg pools per process (calls/pg_store.py): this many
    # connections for events, executions and variables, half as many for the
    # dispatcher's bookkeeping. Unset: database_pool_size, at most 20. ``serve`` with
    # several processes shares all three sizes out (db/connections.py) unless set.
    database_call_store_pool_size: int | None = Field(default=None, ge=1, le=500)
    # History link (DESIGN §11.4): how often the history worker looks for due rows besides
    # being woken, how long new rows are gathered into one batch, the most rows one batch
    # takes (five sObject Collections of 200: one Composite request), the default phone
    # region of caller numbers, and whether this process runs the worker at all.
    history_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    history_gather_seconds: float = Field(default=2.0, ge=0, le=60)
    history_batch_rows: int = Field(default=200, ge=1, le=1000)
    history_phone_region: str = "JP"
    history_worker: bool = True
    # Recording storage: "local" (recordings/ in the data directory) or "s3" (any
    # S3-compatible API, so several servers share recordings). Retention purge interval.
    recording_storage: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = Field(default=None, repr=False)
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_prefix: str = "recordings/"
    s3_addressing_style: Literal["path", "virtual"] = "path"
    retention_interval_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # Origins, besides Salesforce's, that may frame the Open CTI softphone page
    # (/agent/opencti): its Content-Security-Policy frame-ancestors. Separated by spaces
    # or commas, each "https://host" with an optional port and "*." wildcard.
    softphone_frame_ancestors: str = ""

    @field_validator("public_url")
    @classmethod
    def _normalise_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") + "/"

    @field_validator("softphone_frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: str) -> str:
        origins = [part for part in re.split(r"[\s,]+", value) if part]
        for origin in origins:
            if not _FRAME_ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write https://host, https://*.domain "
                    "or http://host:port, separated by spaces or commas"
                )
        return " ".join(origins)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'callbridge.db').resolve()}"

    @property
    def database_kind(self) -> str:
        url = self.resolved_database_url
        return "postgresql" if url.startswith("postgresql") else "sqlite"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def load_secret_key(self) -> str:
        """The configured key, else the one in the data directory (created once, 0600)."""
        if self.secret_key:
            return self.secret_key
        path = self.ensure_data_dir() / SECRET_KEY_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        key = secrets.token_urlsafe(48)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, stat.S_IRUSR | stat.S_IWUSR)
        except FileExistsError:  # another process won the race
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key

    def previous_keys(self) -> list[str]:
        if not self.previous_secret_keys:
            return []
        return [k.strip() for k in self.previous_secret_keys.split(",") if k.strip()]
