from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class RecordingRead(BaseModel):
    """A stored recording as the API shows it (also the ``recording`` of a call)."""

    model_config = ConfigDict(from_attributes=True)

    call_id: str
    content_type: str
    size_bytes: int
    sha256: str
    duration_seconds: float | None
    uploaded_by: str
    created_at: datetime
    updated_at: datetime


class RecordingUploaded(RecordingRead):
    status: str = Field(description="'created' or 'replaced'")
    monitor_link: str


class RecordingDetail(RecordingRead):
    monitor_link: str


class MonitorLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, description="call_id or unique_id")
    ttl_seconds: int | None = Field(
        default=None,
        ge=60,
        le=3650 * 86400,
        description="signed mode: lifetime of the link (default: the retention period)",
    )


class MonitorLinkRead(BaseModel):
    url: str
    mode: str
    expires_at: datetime | None


class LinkKeyRead(BaseModel):
    generation: int
    rotated_at: datetime | None


class RetentionRun(BaseModel):
    """What one retention purge deleted (``POST /api/v1/retention/run``, ``callbridge
    retention run``)."""

    calls_deleted: int = Field(description="calls older than the retention period")
    events_deleted: int = Field(description="their call events")
    variables_deleted: int = Field(description="their stored variables")
    executions_deleted: int = Field(description="their request/response records")
    recordings_deleted: int = Field(description="recordings (of those calls, or without a call)")
    bytes_freed: int = Field(description="size of the deleted recordings")
    staging_files_deleted: int = Field(description="leftovers of interrupted uploads")

    @classmethod
    def from_purge(cls, result: dict[str, int]) -> RetentionRun:
        return cls(
            calls_deleted=result["calls"],
            events_deleted=result["events"],
            variables_deleted=result["variables"],
            executions_deleted=result["executions"],
            recordings_deleted=result["recordings"],
            bytes_freed=result["bytes"],
            staging_files_deleted=result["staging_files"],
        )
