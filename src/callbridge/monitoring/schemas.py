"""Filters and rows of the audit log and of the execution search."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, field_validator

from callbridge.outbound.types import ErrorKind

ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
STATUS_RE = re.compile(r"^(?:[1-5]\d\d|[1-5]xx|none)$")


# A search's period, read as every API reads one (callbridge.kit.query.period).
Since = Annotated[
    datetime | None,
    Field(
        description="At or after (without an offset: the configured time zone; a date: from "
        "that day's start)"
    ),
]
Until = Annotated[
    datetime | None,
    Field(
        description="Before (without an offset: the configured time zone; a date: up to that "
        "day's end)"
    ),
]


class ExecutionFilters(BaseModel):
    """Every filter optional; all given ones must hold."""

    source: Literal["call_action", "ivr", "screen_pop"] | None = Field(
        default=None,
        description="call_action (a rule), ivr or screen_pop (a screen-pop profile's accesses)",
    )
    rule_id: int | None = Field(
        default=None, description="The rule's (or the IVR's, or the screen-pop profile's) id"
    )
    status: str | None = Field(
        default=None, description='A status code ("404"), a class ("5xx") or "none" (no answer)'
    )
    error_kind: Literal["any", ErrorKind] | None = Field(
        default=None, description="'any': every failed request"
    )
    outcome: Literal["matched", "no_match", "request_error", "input_invalid"] | None = Field(
        default=None, description="IVR answers with this outcome (the invocation's last request)"
    )
    since: Since = None
    until: Until = None
    url: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="Text in the request's URL (any case)"
    )

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().lower()
        if not STATUS_RE.match(value):
            raise ValueError('use a status code such as "404", a class such as "5xx", or "none"')
        return value


class ExecutionHit(BaseModel):
    id: int
    call_id: str
    at: datetime
    source: str
    rule_id: int | None
    label: str
    event: str | None
    method: str | None
    url: str | None
    status: int | None
    error_kind: str | None
    error_message: str | None
    duration_ms: float | None
    outcome: str | None = Field(description="IVR: the answer's outcome (its last request)")


class AuditFilters(BaseModel):
    actor: Annotated[str, Field(max_length=200)] | None = None
    kind: Annotated[str, Field(max_length=100)] | None = Field(
        default=None, description="The part of the action before the dot: ivr, call_action, …"
    )
    since: Since = None
    until: Until = None


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    source: str = Field(description="The client's address; empty from the command line")
    details: dict[str, Any]
