"""OAuth account resources of the JSON API (DESIGN.md §3.6); the UI uses the same."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from callbridge.kit.patch import Patch
from callbridge.messages import Message
from callbridge.oauth_accounts.protocol import DEFAULT_LOGIN_URL

Provider = Literal["salesforce", "generic"]
GrantType = Literal["authorization_code", "client_credentials", "password", "jwt_bearer"]
Status = Literal["not_connected", "connected", "needs_reauthorization", "error"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Secret = Annotated[str, StringConstraints(max_length=20000)]
ABSOLUTE_URL_MESSAGE = "must be an absolute URL starting with https://"
# Requests of one account in flight at once, per process (outbound/limits.py).
MaxInFlight = Annotated[
    int,
    Field(
        ge=1,
        le=100_000,
        description="Safety cap on this account's requests in flight at once, per process",
    ),
]
LongRequestLimit = Annotated[
    int,
    Field(
        ge=0,
        le=100_000,
        description=(
            "Requests in flight for more than 5 seconds at once, per process; new requests "
            "wait while this many are running (0: no limit). Salesforce allows 25 "
            "long-running requests per org (5 on Developer Edition)"
        ),
    ),
]


def _check_url(value: str) -> str:
    if not value:
        return value
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("https", "http") or not rest or rest.startswith("/"):
        raise ValueError(ABSOLUTE_URL_MESSAGE)
    return value


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=1000),
    AfterValidator(_check_url),
]


class OAuthAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    provider: Provider = "salesforce"
    grant_type: GrantType = "authorization_code"
    login_url: Url | None = None
    authorize_url: Url | None = None
    token_url: Url | None = None
    revoke_url: Url | None = None
    base_url: Url | None = None
    client_id: Short
    client_secret: Secret | None = None
    scope: Short = ""
    username: Short | None = None
    password: Secret | None = None
    private_key: Secret | None = None
    use_pkce: bool = False
    max_in_flight: MaxInFlight = 1000
    long_request_limit: LongRequestLimit = 25

    @model_validator(mode="after")
    def _salesforce_login_url(self) -> Self:
        if self.provider == "salesforce" and not self.login_url:
            self.login_url = DEFAULT_LOGIN_URL
        return self


class OAuthAccountUpdate(Patch):
    """Every field optional; a secret left out (or null) is kept, ``""`` clears it."""

    model_config = ConfigDict(extra="forbid")
    create_schema = OAuthAccountCreate

    name: Name | None = None
    provider: Provider | None = None
    grant_type: GrantType | None = None
    login_url: Url | None = None
    authorize_url: Url | None = None
    token_url: Url | None = None
    revoke_url: Url | None = None
    base_url: Url | None = None
    client_id: Short | None = None
    client_secret: Secret | None = None
    scope: Short | None = None
    username: Short | None = None
    password: Secret | None = None
    private_key: Secret | None = None
    use_pkce: bool | None = None
    max_in_flight: MaxInFlight | None = None
    long_request_limit: LongRequestLimit | None = None


class ApiUsageRead(BaseModel):
    used: int
    allowed: int
    at: datetime


class OAuthAccountRead(BaseModel):
    id: int
    name: str
    provider: Provider
    grant_type: GrantType
    login_url: str | None
    authorize_url: str | None
    token_url: str | None
    revoke_url: str | None
    base_url: str | None
    client_id: str
    client_secret_set: bool
    scope: str
    username: str | None
    password_set: bool
    private_key_set: bool
    use_pkce: bool
    max_in_flight: int
    long_request_limit: int
    status: Status
    status_detail: str
    instance_url: str | None
    identity_url: str | None
    connected_at: datetime | None
    issued_at: datetime | None
    api_usage: ApiUsageRead | None
    callback_url: str = Field(description="The callback URL to register at the provider")
    created_at: datetime
    updated_at: datetime


class AuthorizeAnswer(BaseModel):
    authorize_url: str


class TestReport(BaseModel):
    ok: bool
    status: Status
    message: str
    code: str = Field(description="The message's id (machine-readable)")
    # The message with its parameters, for the account page (not in the API).
    msg: dict[str, Any] = Field(exclude=True)
    instance_url: str | None = None
    http_status: int | None = None
    username: str | None = None
    organization_id: str | None = None
    api_usage: ApiUsageRead | None = None

    @classmethod
    def of(cls, message: Message, **fields: Any) -> TestReport:
        return cls(message=message.text, code=message.code, msg=message.to_json(), **fields)
