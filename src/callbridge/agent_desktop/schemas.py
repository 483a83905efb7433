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
from callbridge.messages import Message, MessageError, define
from callbridge.requests.schemas import AuthIn, LongText, Url, Warning_

Trigger = Literal["incoming", "answer"]
# seed 004's ANI prefix removal: a country code (``+81``) or digits.
Prefix = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10, pattern=r"^\+?[0-9]+$"),
]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# How long the first message waits for the lookup: a lookup still running then follows
# the card as an ``update`` (DESIGN §12.2).
CARD_WAIT_SECONDS = 1.0


class SalesforceLookup(BaseModel):
    """Find the caller in Salesforce: objects by priority (default Contact, Account, Lead)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["salesforce"]
    oauth_account_id: int
    objects: Annotated[list[LinkedObject], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: list(DEFAULT_OBJECTS)
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0
    card_wait_seconds: Annotated[float, Field(ge=0, le=10)] = CARD_WAIT_SECONDS


# seed 002's access methods: opened in the agent's browser, or sent by callbridge (内部処理).
AccessMethod = Literal["browser_get", "browser_post", "server_get", "server_post"]
ACCESS_METHODS = ("browser_get", "browser_post", "server_get", "server_post")
# seed 002 also offers OS commands; a web service does not run programs on agents' PCs.
OS_COMMAND_WORDS = frozenset({"os", "os_command", "oscommand", "command", "osコマンド"})
define(
    {
        # Saved before its account was deleted (deleting an account in use is allowed, as
        # for call-action rules and history links): the profile says so, the card too.
        "screen_pop_account_deleted": (
            "The lookup's OAuth account ({id}) was deleted: choose another account for "
            "this profile."
        ),
        "os_command_not_offered": (
            "OS commands are not offered: callbridge is a web service and does not run "
            "programs on agents' PCs. Use browser_get or browser_post to open a page, or "
            "server_get or server_post to have callbridge send the request."
        ),
    }
)


class CustomAccess(BaseModel):
    """One templated access of seed 002's カスタム連携: a request of the request definition
    (URL, headers, body) whose ``method`` also says where it runs."""

    model_config = ConfigDict(extra="forbid")

    method: AccessMethod
    url: Url
    headers: LongText = Field(default="", description="server_get/server_post only")
    body: LongText = Field(
        default="", description="server_post: the request body; browser_post: the form fields"
    )

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            if value.replace(" ", "_") in OS_COMMAND_WORDS:
                raise MessageError(Message("os_command_not_offered"))
        return value


class DisconnectAccess(CustomAccess):
    answered_only: bool = Field(default=False, description="応答した時のみ切断時アクセスを実行する")


class ReadingAccess(CustomAccess):
    """``auth`` and ``search``: callbridge reads their answer with a response format."""

    response_format: Annotated[str, StringConstraints(min_length=1, max_length=8000)] = Field(
        description="/pattern/ with named groups, or NAME = $.path lines"
    )


class AuthAccess(ReadingAccess):
    session_minutes: Annotated[int, Field(ge=1, le=1440)] = Field(
        default=30, description="セッション維持時間: the auth answer is reused this long"
    )


class CustomAccesses(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth: AuthAccess | None = None
    search: ReadingAccess | None = None
    incoming: CustomAccess | None = None
    answer: CustomAccess | None = None
    disconnect: DisconnectAccess | None = None
    click: CustomAccess | None = None


class CustomLookup(AuthIn):
    """seed 002's カスタム連携 for other CRMs. The authentication (``auth_type`` and its
    account or credentials, secrets write-only) is that of the server accesses."""

    kind: Literal["custom"]
    accesses: CustomAccesses
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0
    card_wait_seconds: Annotated[float, Field(ge=0, le=10)] = CARD_WAIT_SECONDS


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
    warnings: list[Warning_] = Field(
        default_factory=list, description="Hints found when saving (saved anyway)"
    )


class BrowserForm(BaseModel):
    """A ``browser_post`` access as the console submits it: the expanded URL and the form
    fields of the expanded body, in order."""

    action: str
    fields: list[tuple[str, str]]


class ClickAction(BaseModel):
    """What clicking the card does: open ``url`` or submit ``form`` in the named tab, or
    (``server``) ask callbridge to send the click access
    (``POST /api/v1/agent/calls/{call_id}/click``)."""

    url: str | None = None
    form: BrowserForm | None = None
    server: bool = False


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
    # The same as a catalogue message ({"id", "params"}): kept with the stored message;
    # the stream renders ``lookup_error`` from it in the reading agent's language.
    lookup_error_msg: dict[str, Any] | None = Field(default=None, exclude=True)
    anonymous: bool = False
    profile: str = ""
    profile_id: int | None = None
    open_delay_seconds: int = 0
    display_seconds: int = 30
    copy_number: bool = False
    wrapup_reasons: list[str] = []
    # callbridge's additions for custom lookups (seed 002):
    # what the search's response format filled ({COMPANY}, {NAME}, {EXT_ID}),
    company: str | None = None
    name: str | None = None
    ext_id: str | None = None
    # a browser_post access: the form the console submits (to the named tab) instead of url,
    form: BrowserForm | None = None
    # the click access (when the agent clicks the card),
    click: ClickAction | None = None
    # and whether a lookup still runs: an ``update`` message follows with its result.
    lookup_pending: bool = False

    def failed(self, message: Message | None) -> None:
        """Say why the lookup failed (English text and message), or that it did not."""
        self.lookup_error = message.text if message is not None else None
        self.lookup_error_msg = message.to_json() if message is not None else None

    def stored(self) -> dict[str, Any]:
        """The message's data as stored: the API's fields and the error's message."""
        data = self.model_dump(mode="json")
        if self.lookup_error_msg is not None:
            data["lookup_error_msg"] = self.lookup_error_msg
        return data


class ScreenPopTest(BaseModel):
    """The test panel's input: a caller's number and, optionally, the rest of the call."""

    model_config = ConfigDict(extra="forbid")

    tel: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
    called: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    tel_name: Annotated[str, StringConstraints(max_length=300)] = ""
    extension: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    agent_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""


class TestedRequest(BaseModel):
    """One request of the test: sent (the lookup's own: auth, search) or only shown (the
    accesses that open in the browser or change data in the CRM)."""

    access: str
    method: str
    sent: bool
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    extracted: dict[str, str] = {}
    error: dict[str, Any] | None = None
    opens: str | None = None
    form: BrowserForm | None = None


class ScreenPopTestResult(BaseModel):
    tel: str | None
    requests: list[TestedRequest]
    pop: PopData | None
    skipped: str | None = None
