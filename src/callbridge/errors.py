"""The one error family of callbridge; the API and the UI each have one handler for it."""

from __future__ import annotations

from typing import Any

from callbridge.messages import Message, english, message_of


class CallbridgeError(Exception):
    """``message`` is the English text the API answers; ``msg`` the catalogue message
    (``callbridge.messages``) the UI renders in the admin's language, and whose code the
    API adds."""

    status_code = 400

    def __init__(
        self, message: str | Message, status_code: int | None = None, **extra: Any
    ) -> None:
        super().__init__(english(message))
        self.message = english(message)
        self.msg = message_of(message)
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra


class NotFound(CallbridgeError):
    status_code = 404


class Conflict(CallbridgeError):
    status_code = 409


class Unauthorized(CallbridgeError):
    status_code = 401


class Forbidden(CallbridgeError):
    status_code = 403


class PayloadTooLarge(CallbridgeError):
    status_code = 413


class ServiceUnavailable(CallbridgeError):
    status_code = 503


class FieldError(CallbridgeError):
    """A business-rule validation failure tied to one field; answered like FastAPI's 422."""

    status_code = 422

    def __init__(
        self, field: str | tuple[str, ...], message: str | Message, position: int | None = None
    ) -> None:
        super().__init__(message)
        self.loc = (field,) if isinstance(field, str) else field
        self.position = position

    @property
    def code(self) -> str:
        return self.msg.code if self.msg is not None else "value_error"

    def detail(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {
            "loc": ["body", *self.loc],
            "msg": self.message,
            "type": "value_error",
        }
        if self.position is not None:
            item["position"] = self.position
        item["code"] = self.code
        return [item]


class FieldErrors(CallbridgeError):
    """Several field failures at once (every bad field is listed)."""

    status_code = 422

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{'.'.join(e.loc)}: {e.message}" for e in errors))
        self.errors = errors

    def detail(self) -> list[dict[str, Any]]:
        return [item for e in self.errors for item in e.detail()]


class LoginRequired(CallbridgeError):
    """Raised by UI dependencies; the UI handler redirects to the sign-in page."""

    status_code = 401
