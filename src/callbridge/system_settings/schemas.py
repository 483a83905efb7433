from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from callbridge.messages import Message, MessageError, define

PlaybackAuth = Literal["url", "admin", "signed"]

define(
    {
        "unknown_timezone": "unknown time zone '{name}' (use an IANA name like Asia/Tokyo)",
        "url_not_absolute.public_url": "must be an absolute http:// or https:// URL",
    }
)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MessageError(Message("unknown_timezone", name=value)) from exc
    return value


def _check_public_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not value.startswith(("http://", "https://")) or value[-3:] == "://":
        raise MessageError(Message("url_not_absolute.public_url"))
    return value.rstrip("/") + "/"


class SystemSettingsRead(BaseModel):
    playback_auth: PlaybackAuth
    retention_days: int
    public_url: str | None
    timezone: str
    max_recording_mb: int


class SystemSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playback_auth: PlaybackAuth | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    public_url: str | None = None
    timezone: str | None = None
    max_recording_mb: int | None = Field(default=None, ge=1, le=10240)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return _check_public_url(value)
