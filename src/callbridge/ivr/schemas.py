"""The ``ivrs`` resource (DESIGN.md §3.6), the invoke contract (§3.3) and the test panel."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from callbridge.calls.schemas import MAX_VARIABLE_LENGTH, MAX_VARIABLES, RESERVED_VARIABLE_NAMES
from callbridge.kit.ids import ConfigId
from callbridge.kit.text import clean_text
from callbridge.messages import Message, MessageError, define, without_stored
from callbridge.requests.fields import AuthType, lower
from callbridge.requests.schemas import (
    LongText,
    RequestFields,
    RequestIn,
    RequestRead,
    RequestUpdate,
    ShortText,
    TargetIn,
    Warning_,
)

TransferKind = Literal["callcenter", "extension", "ivr", "external", "hangup", "end_rule"]
Outcome = Literal["matched", "no_match", "request_error", "input_invalid"]

IvrKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="What the PBX calls: POST /api/v1/ivr/{key}/invoke",
    ),
]
StepName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="Letters, digits and _ (the IVR's own request is called 'main')",
    ),
]
Timeout = Annotated[float, Field(ge=0.1, le=60)]
Priority = Annotated[int, Field(ge=1, le=10_000)]
MAIN_STEP = "main"
RESPONSE_CODE_RE = re.compile(r"^(?:\*|[1-5](?:\d\d|xx))$")
VARIABLE_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
CODE_NAME_RE = re.compile(r"^CODE\d+$")

define(
    {
        "transfer_target": "a '{kind}' transfer needs a target",
        # A transfer kind by the name the API gives it.
        "transfer_kind.callcenter": "callcenter",
        "transfer_kind.extension": "extension",
        "transfer_kind.ivr": "ivr",
        "transfer_kind.external": "external",
        "transfer_kind.hangup": "hangup",
        "transfer_kind.end_rule": "end_rule",
        "transfer_target.none": "a '{kind}' transfer takes no target",
        "response_code": 'use a status code such as "200", a class such as "2xx", or "*"',
        "variable_name": "{name} is not a variable name ([A-Z][A-Z0-9_]*)",
        "priority_twice": "priority {priority} is used twice",
        "step_name.main": "'main' is the IVR's own request: choose another step name",
        "step_name": "step name {name} is used twice",
    }
)


# ---- guidance and transfer ---------------------------------------------------------


class TtsGuidance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["tts"]
    text: Annotated[str, Field(min_length=1, max_length=5000)] = Field(
        description="Real-time TTS text; a template (plain context) with {CODE1}, {NAME}…"
    )


class AudioGuidance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["audio"]
    file: Annotated[str, Field(min_length=1, max_length=300)] = Field(
        description="An audio file name known to the PBX"
    )


Guidance = Annotated[TtsGuidance | AudioGuidance, Field(discriminator="type")]


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: TransferKind = "end_rule"
    target: Annotated[str, Field(max_length=300)] | None = Field(
        default=None,
        description="Call center, extension, IVR or number; none for hangup and end_rule. "
        "May use variables such as {RESPONSE_OWNER_EXT}.",
    )

    @field_validator("kind", mode="before")
    @classmethod
    def _kindlower(cls, value: Any) -> Any:
        return lower(value)

    @model_validator(mode="after")
    def _target_fits_kind(self) -> Transfer:
        target = (self.target or "").strip()
        if self.kind in ("hangup", "end_rule"):
            if target:
                raise MessageError(
                    Message("transfer_target.none", kind=Message(f"transfer_kind.{self.kind}"))
                )
            self.target = None
        elif not target:
            raise MessageError(
                Message("transfer_target", kind=Message(f"transfer_kind.{self.kind}"))
            )
        else:
            self.target = target
        return self


class Behaviour(BaseModel):
    """What the PBX is told in a special case (error, invalid input, no match)."""

    model_config = ConfigDict(extra="forbid")

    guidance: Guidance | None = None
    transfer: Transfer = Field(default_factory=Transfer)


# ---- response settings and steps ---------------------------------------------------


class ResponseSettingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority = Field(description="Tested in ascending order; the first match answers")
    response_code: str = Field(
        default="200", description='"200", "2xx" or "*" (any code or class such as "404")'
    )
    response_pattern: LongText = Field(default="", description="/pattern/ the body must match")
    extract_pattern: LongText = Field(
        default="", description="/pattern/ with groups ({CODE1}…, {NAME}) or 'NAME = $.path'"
    )
    condition_code: LongText = Field(default="", description="A template, e.g. {RESPONSE_X}")
    condition_pattern: LongText = Field(
        default="", description="/pattern/ the expanded condition code must match"
    )
    step: StepName | None = Field(
        default=None,
        description="Whose response is tested: null = the last request sent, 'main' = the "
        "IVR's own request, else a step's name",
    )
    guidance: Guidance | None = None
    transfer: Transfer = Field(default_factory=Transfer)
    memo: LongText = ""

    @field_validator("response_code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("", "any", "任意"):
                value = "*"
            if not RESPONSE_CODE_RE.match(value):
                raise MessageError(Message("response_code"))
        return value


class ResponseSettingRead(ResponseSettingIn):
    id: int


class StepIn(TargetIn):
    name: StepName
    auth_type: AuthType | None = Field(
        default=None, description="null: the IVR's own authentication"
    )
    oauth_account_id: ConfigId | None = Field(
        default=None, description="null with auth_type oauth: the IVR's OAuth account"
    )
    extract_pattern: LongText = ""
    condition_code: LongText = Field(default="", description="Run only when the condition matches")
    condition_pattern: LongText = ""

    @field_validator("auth_type", mode="before")
    @classmethod
    def _authlower(cls, value: Any) -> Any:
        value = lower(value)
        return None if value in ("", "inherit") else value


class StepRead(StepIn):
    id: int


# ---- the IVR ------------------------------------------------------------------------


class IvrFields(RequestFields):
    @field_validator("pbx_variables", mode="after", check_fields=False)
    @classmethod
    def _variable_names(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [name.strip() for name in value if name.strip()]
        for name in names:
            if not VARIABLE_NAME_RE.match(name):
                raise MessageError(Message("variable_name", name=repr(name)))
        return list(dict.fromkeys(names))

    @field_validator("responses", mode="after", check_fields=False)
    @classmethod
    def _unique_priorities(
        cls, value: list[ResponseSettingIn] | None
    ) -> list[ResponseSettingIn] | None:
        if value is None:
            return None
        seen: set[int] = set()
        for setting in value:
            if setting.priority in seen:
                raise MessageError(Message("priority_twice", priority=setting.priority))
            seen.add(setting.priority)
        return sorted(value, key=lambda s: s.priority)

    @field_validator("steps", mode="after", check_fields=False)
    @classmethod
    def _unique_step_names(cls, value: list[StepIn] | None) -> list[StepIn] | None:
        if value is None:
            return None
        seen: set[str] = set()
        for step in value:
            lowered = step.name.lower()
            if lowered == MAIN_STEP:
                raise MessageError(Message("step_name.main"))
            if lowered in seen:
                raise MessageError(Message("step_name", name=repr(step.name)))
            seen.add(lowered)
        return value


class IvrCreate(IvrFields, RequestIn):
    key: IvrKey
    name: ShortText = ""
    timeout_seconds: Timeout = Field(
        default=10, description="The budget of the whole invocation, every step included"
    )
    extract_pattern: LongText = Field(
        default="", description="Extraction on the IVR's own response ({RESPONSE_NAME} for steps)"
    )
    max_digits: int = Field(default=0, ge=0, le=64, description="0 = no digit input")
    digits_pattern: LongText = Field(default="", description="/pattern/ the digits must match")
    pre_guidance: Guidance | None = None
    on_error: Behaviour | None = None
    on_input_invalid: Behaviour | None = None
    on_no_match: Behaviour | None = None
    pbx_variables: list[str] = Field(
        default_factory=list, description="Names of extra `variables` the PBX sends"
    )
    memo: LongText = ""
    responses: list[ResponseSettingIn] = Field(default_factory=list)
    steps: list[StepIn] = Field(default_factory=list)


class IvrUpdate(IvrFields, RequestUpdate):
    """Partial update; ``responses`` and ``steps``, when given, replace the whole list."""

    create_schema = IvrCreate

    key: IvrKey | None = None
    name: ShortText | None = None
    timeout_seconds: Timeout | None = None
    extract_pattern: LongText | None = None
    max_digits: int | None = Field(default=None, ge=0, le=64)
    digits_pattern: LongText | None = None
    pre_guidance: Guidance | None = None
    on_error: Behaviour | None = None
    on_input_invalid: Behaviour | None = None
    on_no_match: Behaviour | None = None
    pbx_variables: list[str] | None = None
    memo: LongText | None = None
    responses: list[ResponseSettingIn] | None = None
    steps: list[StepIn] | None = None


class IvrRead(RequestRead):
    id: int
    key: str
    name: str
    revision: int
    timeout_seconds: float
    extract_pattern: str
    max_digits: int
    digits_pattern: str
    pre_guidance: dict[str, Any] | None
    on_error: dict[str, Any] | None
    on_input_invalid: dict[str, Any] | None
    on_no_match: dict[str, Any] | None
    pbx_variables: list[str]
    memo: str
    responses: list[ResponseSettingRead]
    steps: list[StepRead]
    produces: list[str] = Field(description="RESPONSE_ variables this IVR stores on the call")
    created_at: datetime
    updated_at: datetime
    warnings: list[Warning_] = Field(default_factory=list)


# ---- invoke ---------------------------------------------------------------------------


def _text(value: Any) -> Any:
    """PBXs send numbers as JSON numbers now and then: take them as text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


class InvokeRequest(BaseModel):
    """The PBX's question (JSON, or a form with the same names and ``variables[NAME]``)."""

    model_config = ConfigDict(extra="ignore")

    call_id: Annotated[str, Field(min_length=1, max_length=200)]
    tel: Annotated[str, Field(max_length=100)] | None = None
    called: Annotated[str, Field(max_length=100)] | None = None
    tel_name: Annotated[str, Field(max_length=300)] | None = None
    digits: Annotated[str, Field(max_length=200)] | None = None
    variables: dict[str, Annotated[str, Field(max_length=MAX_VARIABLE_LENGTH)]] = Field(
        default_factory=dict,
        description="Extra values, usable as {NAME} where the IVR declares them",
    )

    @field_validator("call_id", "tel", "called", "tel_name", "digits", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("call_id", "tel", "called", "tel_name", "digits")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return None if value is None else clean_text(value)

    @field_validator("variables", mode="before")
    @classmethod
    def _variables_as_text(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            return {k: _text(v) for k, v in value.items()}
        return value

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        problems: list[str] = []
        if len(value) > MAX_VARIABLES:
            problems.append(f"at most {MAX_VARIABLES} variables")
        for name, item in value.items():
            try:
                clean_text(item)
            except ValueError as exc:
                problems.append(f"{name!r}: {exc}")
            if not VARIABLE_NAME_RE.match(name):
                problems.append(f"{name!r}: names are upper-case letters, digits and _")
            elif (
                name in RESERVED_VARIABLE_NAMES
                or name == "DIGITS"
                or name.startswith("RESPONSE_")
                or CODE_NAME_RE.match(name)
            ):
                problems.append(f"{name!r} is reserved (a built-in or a callbridge value)")
        if problems:
            raise ValueError("; ".join(problems))
        return value


class GuidanceOut(BaseModel):
    type: Literal["tts", "audio"]
    text: str | None = None
    file: str | None = None


class TransferOut(BaseModel):
    kind: TransferKind
    target: str | None = None


class InvokeAnswer(BaseModel):
    call_id: str
    outcome: Outcome
    matched_priority: int | None
    guidance: GuidanceOut | None
    transfer: TransferOut
    variables: dict[str, str]


# ---- test panel -------------------------------------------------------------------------


class IvrTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tel: Annotated[str, Field(max_length=100)] = ""
    digits: Annotated[str, Field(max_length=200)] = ""
    called: Annotated[str, Field(max_length=100)] = ""
    tel_name: Annotated[str, Field(max_length=300)] = ""
    call_id: Annotated[str, Field(max_length=200)] = "test"
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Sample PBX variables and earlier call values such as RESPONSE_X",
    )
    send: bool = Field(default=True, description="Send the requests (else only expand the first)")


class StepTrace(BaseModel):
    name: str
    skipped: str | None = None
    # Why it was skipped as a catalogue message, for the test panel (not in the API).
    skipped_msg: dict[str, Any] | None = Field(default=None, exclude=True)
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    duration_ms: float | None = None
    extracted: dict[str, str] = Field(default_factory=dict)
    error: dict[str, Any] | None = None

    @field_serializer("error")
    def _english_only(self, value: Any) -> Any:
        return without_stored(value)

    @classmethod
    def skipped_by(cls, name: str, reason: Message) -> StepTrace:
        return cls(name=name, skipped=reason.text, skipped_msg=reason.to_json())


class ResponseCheckOut(BaseModel):
    priority: int
    matched: bool | None = Field(description="null: not tested (an earlier setting matched)")
    reason: str
    # The reason as a catalogue message, for the test panel (not in the API).
    reason_msg: dict[str, Any] = Field(exclude=True)

    @classmethod
    def of(cls, priority: int, matched: bool | None, reason: Message) -> ResponseCheckOut:
        return cls(
            priority=priority, matched=matched, reason=reason.text, reason_msg=reason.to_json()
        )


class IvrTestResult(InvokeAnswer):
    # As the invoke answer sends them (no null "file" in a TTS guidance).
    guidance: dict[str, str] | None  # type: ignore[assignment]
    transfer: dict[str, str]  # type: ignore[assignment]
    steps: list[StepTrace]
    responses: list[ResponseCheckOut]
    warnings: list[Warning_]
    error: dict[str, Any] | None
    duration_ms: float
    request: dict[str, Any] | None = Field(description="The first request, as sent")
    response: dict[str, Any] | None = Field(description="The last response received")
    extracted: dict[str, str] = Field(description="Every RESPONSE_ variable the call would get")

    @field_serializer("error")
    def _english_only(self, value: Any) -> Any:
        return without_stored(value)
