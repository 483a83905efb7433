"""The ``call-actions`` resource: every field of the manual's call-action screen (seed 000
§2) plus ``enabled``, JSONPath extractions, the retry opt-in and stop-on-failure."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
)

from callbridge.calls.schemas import EVENT_ALIASES, EventType
from callbridge.messages import without_stored
from callbridge.requests.schemas import (
    LongText,
    RequestFields,
    RequestIn,
    RequestRead,
    RequestUpdate,
    Warning_,
)

Order = Annotated[int, Field(ge=0, le=100_000)]
Timeout = Annotated[int, Field(ge=1, le=60)]


def _event(value: Any) -> Any:
    if isinstance(value, str):
        stripped = value.strip()
        return EVENT_ALIASES.get(stripped, stripped.lower())
    return value


class CallActionFields(RequestFields):
    @field_validator("event", mode="before", check_fields=False)
    @classmethod
    def _event_alias(cls, value: Any) -> Any:
        return _event(value)


class CallActionCreate(CallActionFields, RequestIn):
    event: EventType = Field(description="incoming, queue, answer, disconnect or outgoing")
    order: Order = Field(default=1, description="Execution order within the event type")
    enabled: bool = True
    condition_code: LongText = Field(default="", description="A template; empty = always")
    condition_pattern: LongText = Field(
        default="", description="/pattern/ tested against the expanded condition code"
    )
    timeout_seconds: Timeout = 10
    extract_pattern: LongText = Field(
        default="", description="/pattern/ with named groups, or 'NAME = $.path' lines"
    )
    json_extractions: LongText = Field(default="", description="'NAME = $.path' lines")
    retry_non_idempotent: bool = Field(
        default=False, description="Also retry POST (it may then be received twice)"
    )
    stop_on_failure: bool = Field(
        default=False, description="When this rule fails, skip the event's later rules"
    )
    memo: LongText = ""


class CallActionUpdate(CallActionFields, RequestUpdate):
    create_schema = CallActionCreate

    event: EventType | None = None
    order: Order | None = None
    enabled: bool | None = None
    condition_code: LongText | None = None
    condition_pattern: LongText | None = None
    timeout_seconds: Timeout | None = None
    extract_pattern: LongText | None = None
    json_extractions: LongText | None = None
    retry_non_idempotent: bool | None = None
    stop_on_failure: bool | None = None
    memo: LongText | None = None


class CallActionRead(RequestRead):
    id: int
    event: str
    order: int
    enabled: bool
    condition_code: str
    condition_pattern: str
    timeout_seconds: int
    extract_pattern: str
    json_extractions: str
    retry_non_idempotent: bool
    stop_on_failure: bool
    memo: str
    created_at: datetime
    updated_at: datetime
    produces: list[str] = Field(description="RESPONSE_ variables this rule extracts")
    warnings: list[Warning_]


class ReorderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: EventType
    ids: list[int] = Field(min_length=1, description="Every rule of the event, in order")

    @field_validator("event", mode="before")
    @classmethod
    def _event_alias(cls, value: Any) -> Any:
        return _event(value)


class RuleTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: dict[str, str] = Field(
        default_factory=dict,
        description='Sample call data: {"TEL": …, "ID": …, "RESPONSE_CONTACT_ID": …}',
    )
    send: bool = Field(default=False, description="Send the request (else only expand it)")


class RuleTestResult(BaseModel):
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    extracted: dict[str, str]
    warnings: list[Warning_]
    error: dict[str, Any] | None
    condition: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)

    @field_serializer("error", "attempts")
    def _english_only(self, value: Any) -> Any:
        return without_stored(value)
