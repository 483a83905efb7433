"""The call-event contract (DESIGN.md §3.2) and the read models of calls (§3.8)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from callbridge.kit.text import clean_text
from callbridge.messages import without_stored
from callbridge.templating.names import (
    CALL_NAMES,
    REFUSED_NAMES,
    SYSTEM_URL_NAMES,
    VARIABLE_NAME_RE,
)

EventType = Literal["incoming", "queue", "answer", "disconnect", "outgoing"]

# BIZTEL's names for the same events, accepted as they are (DESIGN.md §3.8).
EVENT_ALIASES: dict[str, str] = {
    "着信": "incoming",
    "コールセンターキュー": "queue",
    "コールセンター応答": "answer",
    "コールセンター切断": "disconnect",
    "発信": "outgoing",
}

MAX_BODY_BYTES = 64 * 1024
OUT_OF_RANGE = "is out of range: give a time between the years 1 and 9999"
MAX_VARIABLES = 100
MAX_VARIABLE_LENGTH = 4000
# Names a PBX variable may not take: the built-ins (DESIGN.md §3.2, §4) and the names
# callbridge refuses or supplies itself (system URLs, {APW}, ...).
RESERVED_VARIABLE_NAMES = CALL_NAMES | SYSTEM_URL_NAMES | frozenset(REFUSED_NAMES)


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


_Clean = AfterValidator(clean_text)
_Blank = BeforeValidator(_blank_to_none)
Text100 = Annotated[Annotated[str, StringConstraints(max_length=100), _Clean] | None, _Blank]
Text200 = Annotated[Annotated[str, StringConstraints(max_length=200), _Clean] | None, _Blank]
Text300 = Annotated[Annotated[str, StringConstraints(max_length=300), _Clean] | None, _Blank]


CallId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(clean_text),
]


class CallEventIn(BaseModel):
    """A call event as the PBX posts it, JSON or form-encoded."""

    model_config = ConfigDict(
        extra="ignore",
        coerce_numbers_to_str=True,
        json_schema_extra={
            "examples": [
                {
                    "event": "queue",
                    "call_id": "1700000000.42",
                    "event_id": "1700000000.42-queue",
                    "tel": "07075373713",
                    "called": "0312345678",
                    "direction": "inbound",
                    "queue": "support",
                }
            ]
        },
    )

    event: EventType = Field(
        description="incoming, queue, answer, disconnect or outgoing "
        "(BIZTEL's Japanese event names are accepted too)"
    )
    call_id: CallId = Field(description="The PBX's ID of the call, shared by all its events")
    event_id: Text200 = Field(
        default=None, description="Unique ID of this delivery; a repeat is not processed again"
    )
    occurred_at: datetime | None = Field(
        default=None,
        description="ISO 8601 (an offset is recommended; without one the configured time "
        "zone applies) or UNIX seconds; default: when received",
    )
    tel: Text100 = None
    tel_name: Text300 = None
    called: Text100 = None
    called_name: Text300 = None
    direction: Literal["inbound", "outbound"] | None = None
    queue: Text200 = None
    agent_id: Text100 = None
    extension: Text100 = None
    unique_id: Text200 = None
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Extra values, available to templates as {NAME}; names are "
        "upper-case [A-Z][A-Z0-9_]* and must not shadow a built-in",
    )

    @field_validator("event", mode="before")
    @classmethod
    def _event_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            stripped = value.strip()
            return EVENT_ALIASES.get(stripped, stripped.lower())
        return value

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, value: Any) -> Any:
        value = _blank_to_none(value)
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _occurred_at(cls, value: Any, info: ValidationInfo) -> Any:
        value = _blank_to_none(value)
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return datetime.fromtimestamp(value, UTC)
            if isinstance(value, str) and re.fullmatch(r"\d{9,11}(\.\d+)?", value.strip()):
                return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(OUT_OF_RANGE) from None
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            tz = (info.context or {}).get("timezone") or "UTC"
            value = value.replace(tzinfo=ZoneInfo(tz))
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError(OUT_OF_RANGE) from None

    @field_validator("variables", mode="before")
    @classmethod
    def _variables_shape(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            converted: dict[Any, Any] = {}
            for name, item in value.items():
                if isinstance(item, int | float) and not isinstance(item, bool):
                    item = str(item)
                converted[name] = item
            return converted
        return value

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        problems: list[str] = []
        if len(value) > MAX_VARIABLES:
            problems.append(f"at most {MAX_VARIABLES} variables")
        for name, item in value.items():
            if not VARIABLE_NAME_RE.fullmatch(name):
                problems.append(f"{name!r}: names are upper-case letters, digits and _")
            elif name in RESERVED_VARIABLE_NAMES or name.startswith("RESPONSE_"):
                problems.append(f"{name!r} is reserved (a built-in or a callbridge value)")
            if len(item) > MAX_VARIABLE_LENGTH:
                problems.append(f"{name!r}: at most {MAX_VARIABLE_LENGTH} characters")
            try:
                clean_text(item)
            except ValueError as exc:
                problems.append(f"{name!r}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class IngestAnswer(BaseModel):
    status: Literal["accepted", "duplicate", "processed"]
    event_id: str | None
    call_id: str
    executions: list[ExecutionRead] | None = None


# ---- reads -------------------------------------------------------------------------


class RequestRead(BaseModel):
    method: str
    url: str
    headers: dict[str, str] | list[list[str]]
    body: str | None


class ResponseRead(BaseModel):
    status: int
    headers: dict[str, str] | list[list[str]]
    body: str
    truncated: bool


class ErrorRead(BaseModel):
    kind: str
    message: str


class ExecutionRead(BaseModel):
    id: int
    source: Literal["call_action", "ivr"] | str
    rule_id: int | None
    label: str
    event: str | None
    event_pk: int | None
    attempt: int
    request: dict[str, Any]
    response: dict[str, Any] | None
    duration_ms: float | None
    extracted: dict[str, Any]
    error: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    notes: list[str] = Field(description="Hints shown with the execution, in English")
    at: datetime
    # The execution this one re-ran (an admin's re-run), None for a first run.
    rerun_of: int | None = None
    # The notes as stored (a catalogue message keeps its id and parameters): the timeline
    # shows them in the admin's language.
    _shown_notes: list[str | dict[str, Any]] = PrivateAttr(default_factory=list)

    @field_validator("notes", mode="before")
    @classmethod
    def _english_notes(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [note.get("message", "") if isinstance(note, dict) else note for note in value]
        return value

    @property
    def shown_notes(self) -> list[str | dict[str, Any]]:
        return self._shown_notes or list(self.notes)

    @field_serializer("error", "attempts")
    def _english_only(self, value: Any) -> Any:
        return without_stored(value)


class EventRead(BaseModel):
    id: int
    event: str
    event_id: str | None
    occurred_at: datetime
    received_at: datetime
    status: str
    attempts: int
    late: bool
    processed_at: datetime | None
    agent_id: str | None
    data: dict[str, Any]
    outcome: list[dict[str, Any]] | None
    error: str | None
    # CRM outages (DESIGN.md §6): parked since, resumed at, and the CRM waited for
    # ("account:<id>" or "host:<url>") while it is still parked.
    parked_at: datetime | None = None
    resumed_at: datetime | None = None
    parked_for: str | None = None

    @field_serializer("outcome")
    def _english_only(self, value: Any) -> Any:
        return without_stored(value)


class CallSummary(BaseModel):
    call_id: str
    unique_id: str | None
    tel: str | None
    tel_name: str | None
    called: str | None
    direction: str | None
    queue: str | None
    status: Literal["pending", "ok", "error"]
    last_event: str | None
    event_count: int
    error_count: int
    started_at: datetime
    ended_at: datetime | None


class CallDetail(CallSummary):
    agent_ids: list[str]
    events: list[EventRead]
    variables: dict[str, str]
    executions: list[ExecutionRead]
    recording: dict[str, Any] | None


IngestAnswer.model_rebuild()
