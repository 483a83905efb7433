"""The pydantic pieces of a request: features compose them into their create, update and
read models (secrets are write-only and read back as ``*_set`` flags)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from callbridge.errors import FieldError
from callbridge.kit.ids import ConfigId
from callbridge.kit.patch import Patch
from callbridge.requests.fields import AuthType, Method, lower, upper

LongText = Annotated[str, Field(max_length=20_000)]
ShortText = Annotated[str, Field(max_length=300)]
Url = Annotated[str, Field(min_length=1, max_length=20_000)]
Password = Annotated[str, Field(max_length=1000)]
Token = Annotated[str, Field(max_length=10_000)]


class Warning_(BaseModel):
    """A hint or normalisation found when saving; the configuration is saved anyway."""

    field: str
    message: str
    position: int | None = None
    code: str = Field(default="", description="The kind of warning (machine-readable)")
    # The message's id and parameters, for pages in the admin's language (not in the API).
    msg: dict[str, Any] | None = Field(default=None, exclude=True)

    @classmethod
    def of_error(cls, error: FieldError, field: str) -> Warning_:
        """An error of a saved configuration (a rule whose OAuth account was deleted since)
        shown as a warning: the configuration is read as it is, the run records the error."""
        return cls(
            field=field,
            message=error.message,
            position=error.position,
            code=error.code,
            msg=error.msg.to_json() if error.msg else None,
        )

    @model_serializer(mode="wrap")
    def _code_when_known(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("code"):
            data.pop("code", None)  # a warning written without a catalogue message
        return data


class RequestFields(BaseModel):
    """Unknown fields are refused; methods and authentication types read in any case."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("method", mode="before", check_fields=False)
    @classmethod
    def _method_upper(cls, value: Any) -> Any:
        return upper(value)

    @field_validator("auth_type", mode="before", check_fields=False)
    @classmethod
    def _auth_lower(cls, value: Any) -> Any:
        return lower(value)


class AuthIn(RequestFields):
    auth_type: AuthType = "none"
    oauth_account_id: ConfigId | None = None
    basic_username: ShortText = ""
    basic_password: Password | None = Field(default=None, description="Write-only")
    bearer_token: Token | None = Field(default=None, description="Write-only")


class TargetIn(RequestFields):
    url: Url
    method: Method = "GET"
    headers: LongText = Field(default="", description="One 'Name: value' a line")
    body: LongText = ""


class RequestIn(AuthIn, TargetIn):
    """A request with its own authentication (a call-action rule, an IVR)."""


class AuthUpdate(RequestFields):
    auth_type: AuthType | None = None
    oauth_account_id: ConfigId | None = None
    basic_username: ShortText | None = None
    basic_password: Password | None = None
    bearer_token: Token | None = None


class TargetUpdate(RequestFields):
    url: Url | None = None
    method: Method | None = None
    headers: LongText | None = None
    body: LongText | None = None


class RequestUpdate(AuthUpdate, TargetUpdate, Patch):
    """Partial update: a field left out keeps its value; a secret given as "" is cleared."""


class AuthRead(BaseModel):
    auth_type: str
    oauth_account_id: int | None
    basic_username: str
    basic_password_set: bool
    bearer_token_set: bool


class TargetRead(BaseModel):
    url: str
    method: str
    headers: str
    body: str


class RequestRead(AuthRead, TargetRead):
    pass
