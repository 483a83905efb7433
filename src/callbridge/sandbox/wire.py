"""How the sandbox writes to the wire: compact JSON and Salesforce's error shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
NO_STORE = "no-cache,must-revalidate,max-age=0,no-store,private"


def compact_json(value: Any) -> bytes:
    """JSON exactly as Salesforce writes it: no spaces, raw UTF-8, no escaped slashes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class SalesforceError(Exception):
    """A REST failure, answered as ``[{"message":…,"errorCode":…}]`` with its status."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        fields: list[str] | None = None,
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def item(self) -> dict[str, Any]:
        """The error object of a REST error body."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return item

    def save_error(self) -> dict[str, Any]:
        """The error object inside a SaveResult (sObject Collections): ``statusCode``."""
        return {
            "statusCode": self.error_code,
            "message": self.message,
            "fields": self.fields if self.fields is not None else [],
        }


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_session() -> SalesforceError:
    return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid")


@dataclass
class ApiResult:
    """One REST answer before it is written: status, JSON body (None for no body), headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    has_body: bool = True

    @classmethod
    def empty(cls, status: int = 204) -> ApiResult:
        return cls(status=status, body=None, has_body=False)

    @classmethod
    def from_error(cls, error: SalesforceError) -> ApiResult:
        return cls(status=error.status, body=[error.item()])
