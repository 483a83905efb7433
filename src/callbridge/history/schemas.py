"""The ``history-links`` resource (DESIGN §11.1) and its history list (§11.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from callbridge.kit.ids import ConfigId
from callbridge.requests.schemas import Warning_

LinkStatus = Literal["enabled", "disabled", "paused"]
OnMultiple = Literal["fallback", "first", "all"]
OnNoMatch = Literal["fallback", "unlinked", "skip"]
Activity = Literal["task", "case_and_task"]
Language = Literal["ja", "en"]
RowState = Literal["held", "waiting", "searching", "synced", "no_match", "failed"]

ApiName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=80, pattern=r"^[A-Za-z][A-Za-z0-9_]*$"
    ),
]
PhoneNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
VariableName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z][A-Z0-9_-]*$", max_length=100)
]

DEFAULT_SUBJECT = "{DIRECTION_LABEL} {TEL} {DATE-YYYY}/{DATE-MM}/{DATE-DD} {DATE-HH}:{DATE-II}"


class LinkedObject(BaseModel):
    """A Salesforce object calls are linked to (seed 001 手順5: API参照名, タブ名, タブコード,
    優先順位)."""

    model_config = ConfigDict(extra="forbid")

    api_name: ApiName
    tab_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    key_prefix: Annotated[str, StringConstraints(strip_whitespace=True)]
    priority: Annotated[int, Field(ge=1, le=1000)]


DEFAULT_OBJECTS = [
    LinkedObject(api_name="Contact", tab_name="取引先責任者", key_prefix="003", priority=1),
    LinkedObject(api_name="Account", tab_name="取引先", key_prefix="001", priority=2),
    LinkedObject(api_name="Lead", tab_name="リード", key_prefix="00Q", priority=3),
]


class MappingCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variable: VariableName
    equals: Annotated[str, Field(max_length=1000)] = ""
    value: Annotated[str, Field(max_length=32000)] = ""


class FieldMapping(BaseModel):
    """One extra Task field (seed 004 オブジェクト フィールドのマッピング and 条件付きマッピング):
    the first condition that holds sets the value, else the template, else the default."""

    model_config = ConfigDict(extra="forbid")

    field: ApiName
    template: Annotated[str, Field(max_length=32000)] = ""
    default: Annotated[str, Field(max_length=32000)] = ""
    conditions: list[MappingCondition] = Field(default_factory=list, max_length=100)


class HistoryLinkFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    oauth_account_id: ConfigId
    fallback_record: Annotated[str, Field(max_length=2000)] = ""
    api_consent: bool = False
    memo: Annotated[str, Field(max_length=500)] = ""
    on_multiple: OnMultiple = "fallback"
    on_no_match: OnNoMatch = "fallback"
    activity: Activity = "task"
    status: LinkStatus = "disabled"
    objects: list[LinkedObject] = Field(
        default_factory=lambda: [o.model_copy() for o in DEFAULT_OBJECTS], max_length=50
    )
    phone_numbers: list[PhoneNumber] = Field(default_factory=list, max_length=5000)
    search_retries: Annotated[int, Field(ge=0, le=100)] = 3
    retry_minutes: Annotated[float, Field(ge=0.05, le=1440)] = 5.0
    language: Language = "ja"
    subject_template: Annotated[str, Field(max_length=2000)] = DEFAULT_SUBJECT
    field_mappings: list[FieldMapping] = Field(default_factory=list, max_length=100)
    owner_from_agent: bool = False


class HistoryLinkCreate(HistoryLinkFields):
    pass


class HistoryLinkUpdate(BaseModel):
    """PATCH: every field optional; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    oauth_account_id: ConfigId | None = None
    fallback_record: Annotated[str, Field(max_length=2000)] | None = None
    api_consent: bool | None = None
    memo: Annotated[str, Field(max_length=500)] | None = None
    on_multiple: OnMultiple | None = None
    on_no_match: OnNoMatch | None = None
    activity: Activity | None = None
    status: LinkStatus | None = None
    objects: list[LinkedObject] | None = Field(default=None, max_length=50)
    phone_numbers: list[PhoneNumber] | None = Field(default=None, max_length=5000)
    search_retries: Annotated[int, Field(ge=0, le=100)] | None = None
    retry_minutes: Annotated[float, Field(ge=0.05, le=1440)] | None = None
    language: Language | None = None
    subject_template: Annotated[str, Field(max_length=2000)] | None = None
    field_mappings: list[FieldMapping] | None = Field(default=None, max_length=100)
    owner_from_agent: bool | None = None


class HistoryLinkRead(HistoryLinkFields):
    model_config = ConfigDict(from_attributes=True)

    id: int
    backoff_until: datetime | None = None
    # Why the link waits, in the reader's language (session, else Accept-Language), and
    # its machine-readable code.
    backoff_reason: str | None = None
    backoff_reason_code: str | None = None
    backoff_reason_msg: dict[str, Any] | None = Field(default=None, exclude=True)
    counts: dict[str, int] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    warnings: list[Warning_] = Field(default_factory=list)


class CheckMessage(BaseModel):
    field: str
    message: str


class CheckResult(BaseModel):
    ok: bool
    messages: list[CheckMessage]


class HistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    call_id: str
    unique_id: str | None
    phone_from: str | None
    phone_to: str | None
    started_at: datetime
    ended_at: datetime
    agent_id_from: str | None
    agent_id_to: str | None
    naisen_from: str | None
    naisen_to: str | None
    processed_at: datetime | None
    retry_count: int
    next_retry_at: datetime | None
    state: RowState
    # Why, in the reader's language (session, else Accept-Language; English by default),
    # and its machine-readable code (a catalogue id up to its first dot).
    reason: str | None
    reason_code: str | None = None
    task_ids: list[str]
    task_urls: list[str] = Field(default_factory=list)


class RetryResult(BaseModel):
    retried: int
