"""Runtime knobs: added latency, injected failures and the limits a test wants to provoke."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

FailureTarget = Literal["rest", "oauth", "all"]


class FailureKind(StrEnum):
    """What an injected failure looks like on the wire."""

    UNAVAILABLE = "unavailable"  # 503 SERVER_UNAVAILABLE
    SERVER_ERROR = "server_error"  # 500 UNKNOWN_EXCEPTION
    HANG = "hang"  # no answer for hang_seconds (longer than any client timeout), then 503
    INVALID_SESSION = "invalid_session"  # 401 INVALID_SESSION_ID (oauth: invalid_grant)
    REQUEST_LIMIT = "request_limit"  # 403 REQUEST_LIMIT_EXCEEDED TotalRequests
    CONCURRENT_LIMIT = "concurrent_limit"  # 403 REQUEST_LIMIT_EXCEEDED ConcurrentPerOrgLongTxn
    # The request is processed (and committed) normally, then no answer for hang_seconds:
    # the client's timeout fires although the org saved everything.
    HANG_AFTER_COMMIT = "hang_after_commit"
    # The request is processed, then the answer is replaced by a text that is not JSON.
    GARBLED_AFTER_COMMIT = "garbled_after_commit"


@dataclass
class ValidationRule:
    """A validation rule of the org: saving a ``sobject`` record whose ``field`` equals
    ``equals`` fails with FIELD_CUSTOM_VALIDATION_EXCEPTION and ``message``."""

    sobject: str
    field: str
    equals: Any
    message: str = "Validation rule failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "sobject": self.sobject,
            "field": self.field,
            "equals": self.equals,
            "message": self.message,
        }


@dataclass
class FailurePlan:
    """Fail the next ``count`` matching requests, or each one with probability ``rate``."""

    kind: FailureKind
    count: int | None = None
    rate: float = 0.0
    target: FailureTarget = "rest"
    path_contains: str | None = None
    # Only requests whose body contains this text (a Composite that writes Tasks).
    body_contains: str | None = None

    def applies_to(self, kind: str, path: str, body: bytes = b"") -> bool:
        if self.target != "all" and self.target != kind:
            return False
        if self.body_contains is not None and self.body_contains.encode() not in body:
            return False
        return self.path_contains is None or self.path_contains in path

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "count": self.count,
            "rate": self.rate,
            "target": self.target,
            "path_contains": self.path_contains,
            "body_contains": self.body_contains,
        }


@dataclass
class Knobs:
    """Settable at any time, from Python (``handle.knobs``) or ``/_sandbox/knobs``.

    Safe to change from another thread while the sandbox serves requests.
    """

    latency_ms: float = 0.0
    hang_seconds: float = 120.0
    session_timeout_seconds: float = 7200.0
    code_lifetime_seconds: float = 900.0
    api_request_limit: int = 15000
    log_requests: bool = True
    max_logged_requests: int = 10000
    seed: int = 0
    failures: list[FailurePlan] = field(default_factory=list)
    validation_rules: list[ValidationRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def fail_next(
        self,
        count: int,
        kind: FailureKind | str = FailureKind.UNAVAILABLE,
        *,
        target: FailureTarget = "rest",
        path_contains: str | None = None,
        body_contains: str | None = None,
    ) -> FailurePlan:
        """Make the next ``count`` matching requests fail; plans are used in the order added."""
        if count < 1:
            raise ValueError("count must be at least 1")
        plan = FailurePlan(
            FailureKind(kind),
            count=count,
            target=target,
            path_contains=path_contains,
            body_contains=body_contains,
        )
        with self._lock:
            self.failures.append(plan)
        return plan

    def fail_fraction(
        self,
        rate: float,
        kind: FailureKind | str = FailureKind.UNAVAILABLE,
        *,
        target: FailureTarget = "rest",
        path_contains: str | None = None,
    ) -> FailurePlan:
        """Make each matching request fail with probability ``rate`` (seeded, repeatable)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        plan = FailurePlan(FailureKind(kind), rate=rate, target=target, path_contains=path_contains)
        with self._lock:
            self.failures.append(plan)
        return plan

    def clear_failures(self) -> None:
        with self._lock:
            self.failures.clear()

    def add_validation_rule(
        self, sobject: str, field_name: str, equals: Any, message: str = "Validation rule failed"
    ) -> ValidationRule:
        rule = ValidationRule(sobject, field_name, equals, message)
        with self._lock:
            self.validation_rules.append(rule)
        return rule

    def failed_validation(self, sobject: str, record: dict[str, Any]) -> ValidationRule | None:
        """The first validation rule the record breaks, or None."""
        with self._lock:
            rules = list(self.validation_rules)
        for rule in rules:
            if rule.sobject.lower() == sobject.lower() and record.get(rule.field) == rule.equals:
                return rule
        return None

    def reseed(self, seed: int) -> None:
        with self._lock:
            self.seed = seed
            self._random.seed(seed)

    def reset(self) -> None:
        """Back to a well-behaved org (no latency, no failures, default limits)."""
        fresh = Knobs()
        with self._lock:
            self.latency_ms = fresh.latency_ms
            self.hang_seconds = fresh.hang_seconds
            self.session_timeout_seconds = fresh.session_timeout_seconds
            self.code_lifetime_seconds = fresh.code_lifetime_seconds
            self.api_request_limit = fresh.api_request_limit
            self.log_requests = fresh.log_requests
            self.max_logged_requests = fresh.max_logged_requests
            self.failures.clear()
            self.validation_rules.clear()
            self.seed = 0
            self._random.seed(0)

    def pick_failure(self, kind: str, path: str, body: bytes = b"") -> FailureKind | None:
        """The failure this request should get, consuming one use of a counted plan."""
        with self._lock:
            for plan in list(self.failures):
                if not plan.applies_to(kind, path, body):
                    continue
                if plan.count is not None:
                    plan.count -= 1
                    if plan.count <= 0:
                        self.failures.remove(plan)
                    return plan.kind
                if self._random.random() < plan.rate:
                    return plan.kind
        return None

    def update(self, values: dict[str, Any]) -> None:
        """Set the scalar knobs named in ``values`` (the HTTP admin endpoint's PATCH)."""
        allowed = {
            "latency_ms": float,
            "hang_seconds": float,
            "session_timeout_seconds": float,
            "code_lifetime_seconds": float,
            "api_request_limit": int,
            "log_requests": bool,
            "max_logged_requests": int,
        }
        unknown = set(values) - set(allowed) - {"seed"}
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(sorted(unknown))}")
        with self._lock:
            for name, value in values.items():
                if name == "seed":
                    continue
                setattr(self, name, allowed[name](value))
        if "seed" in values:
            self.reseed(int(values["seed"]))

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "hang_seconds": self.hang_seconds,
                "session_timeout_seconds": self.session_timeout_seconds,
                "code_lifetime_seconds": self.code_lifetime_seconds,
                "api_request_limit": self.api_request_limit,
                "log_requests": self.log_requests,
                "max_logged_requests": self.max_logged_requests,
                "seed": self.seed,
                "failures": [plan.to_json() for plan in self.failures],
                "validation_rules": [rule.to_json() for rule in self.validation_rules],
            }
