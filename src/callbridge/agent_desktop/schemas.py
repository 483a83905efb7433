"""The ``screen-pops`` resource (DESIGN §12.2) and the pop message sent to consoles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from callbridge.history.schemas import DEFAULT_OBJECTS, LinkedObject, PhoneNumber
from callbridge.kit.patch import refuse_null

Trigger = Literal["incoming", "answer"]
# seed 004's ANI prefix removal: a country code (``+81``) or digits.
Prefix = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10, pattern=r"^\+?[0-9]+$"),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Template = Annotated[str, StringConstraints(max_length=8000)]


class SalesforceLookup(BaseModel):
    """Find the caller in Salesforce: objects by priority (default Contact, Account, Lead)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["salesforce"]
    oauth_account_id: int
    objects: Annotated[list[LinkedObject], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTS)
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0


class CustomAccess(BaseModel):
    """One templated access of seed 002's カスタム連携."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["browser_get", "browser_post", "server_get", "server_post"]
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    body: Template = ""
    response_format: Template = ""


class AnsweringAccess(CustomAccess):
    delay_seconds: Annotated[int, Field(ge=0, le=60)] = 0


class DisconnectAccess(CustomAccess):
    answered_only: bool = False


class FormattedAccess(CustomAccess):
    """``auth`` and ``search`` define variables from their answer: a format is required."""

    response_format: Annotated[str, StringConstraints(min_length=1, max_length=8000)]


class AuthAccess(FormattedAccess):
    session_minutes: Annotated[int, Field(ge=1, le=1440)] = 30


class CustomAccesses(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: AuthAccess | None = None
    search: FormattedAccess | None = None
    incoming: CustomAccess | None = None
    answer: AnsweringAccess | None = None
    disconnect: DisconnectAccess | None = None
    click: CustomAccess | None = None


class CustomLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["custom"]
    accesses: CustomAccesses


Lookup = Annotated[SalesforceLookup | CustomLookup, Field(discriminator="kind")]


class ScreenPopFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    enabled: bool = True
    trigger: Trigger = "incoming"
    phone_numbers: Annotated[list[PhoneNumber], Field(max_length=200)] = []
    answer_delay_seconds: Annotated[int, Field(ge=0, le=60)] = 0
    skip_internal: bool = True
    display_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    copy_number: bool = False
    anonymous_label: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = (
        "非通知"
    )
    strip_prefixes: Annotated[list[Prefix], Field(max_length=20)] = []
    wrapup_reasons: Annotated[list[Reason], Field(max_length=50)] = []
    lookup: Lookup | None = None


class ScreenPopCreate(ScreenPopFields):
    pass


class ScreenPopUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    enabled: bool | None = None
    trigger: Trigger | None = None
    phone_numbers: Annotated[list[PhoneNumber], Field(max_length=200)] | None = None
    answer_delay_seconds: Annotated[int, Field(ge=0, le=60)] | None = None
    skip_internal: bool | None = None
    display_seconds: Annotated[int, Field(ge=1, le=3600)] | None = None
    copy_number: bool | None = None
    anonymous_label: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None
    ) = None
    strip_prefixes: Annotated[list[Prefix], Field(max_length=20)] | None = None
    wrapup_reasons: Annotated[list[Reason], Field(max_length=50)] | None = None
    lookup: Lookup | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_null(value, info, ScreenPopCreate)


class ScreenPopRead(ScreenPopFields):
    model_config = ConfigDict(from_attributes=True)

    id: int
    lookup: dict[str, Any] | None = None  # type: ignore[assignment]
    created_at: datetime
    updated_at: datetime


class Match(BaseModel):
    object: str
    id: str
    name: str
    url: str


class PopData(BaseModel):
    """The ``data:`` of one SSE message (DESIGN §12.2); the fields after ``lookup_error``
    are callbridge's additions for the console."""

    call_id: str
    event: str
    tel: str | None
    tel_name: str | None
    called: str | None
    queue: str | None
    matches: list[Match] = []
    url: str | None = None
    new_record_url: str | None = None
    lookup_error: str | None = None
    anonymous: bool = False
    profile: str = ""
    open_delay_seconds: int = 0
    display_seconds: int = 30
    copy_number: bool = False
    wrapup_reasons: list[str] = []
