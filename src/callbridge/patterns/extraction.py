"""What an extraction returns, and the errors matching can raise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from callbridge.messages import Message
from callbridge.templating.problems import Problem


class PatternError(ValueError):
    """A pattern (or JSONPath extraction) cannot be compiled.

    ``message`` and ``position`` (0-based offset in the text as the admin wrote it)
    describe the first error; ``problems`` lists every problem found.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.position)
        errors = [p for p in self.problems if p.severity == "error"] or self.problems
        self.errors = [p for p in self.problems if p.severity == "error"]
        self.message = errors[0].message if errors else "invalid pattern"
        self.msg: Message | None = errors[0].msg if errors else None
        self.position = errors[0].position if errors else 0
        super().__init__(f"{self.message} (at position {self.position})")


class ExtractionError(RuntimeError):
    """Matching a response failed (the step fails with this message)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.text)
        self.msg = message


class PatternTimeout(ExtractionError):
    """A pattern took longer than its time limit on one response."""


@dataclass(frozen=True, slots=True)
class Extraction:
    """The outcome of one extraction.

    ``named``: each named group (or JSONPath line) by name, ``""`` when it took no part
    in the match; ``groups``: every capturing group in order (for ``CODE1``, ``CODE2``…).
    """

    matched: bool
    named: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)

    def response_variables(self) -> dict[str, str]:
        """Call variables for later steps: ``{"RESPONSE_NAME": value}``."""
        return {f"RESPONSE_{name}": value for name, value in self.named.items()}

    def ivr_variables(self) -> dict[str, str]:
        """Variables for an IVR's own guidance: ``CODE1``… and each ``NAME``."""
        values = {f"CODE{index}": value for index, value in enumerate(self.groups, 1)}
        values.update(self.named)
        return values


NO_MATCH = Extraction(False)


class Extractor(Protocol):
    """A compiled regex pattern or a set of JSONPath extractions."""

    @property
    def group_names(self) -> tuple[str, ...]: ...

    @property
    def normalisations(self) -> tuple[Problem, ...]: ...

    @property
    def hints(self) -> tuple[Problem, ...]: ...

    def extract(self, text: str, *, timeout: float, json_body: bool = False) -> Extraction: ...


def decode_json_string_content(captured: str) -> str:
    """``O\\"Brien`` → ``O"Brien``, ``\\u3042`` → ``あ``; other text is kept exactly."""
    if "\\" not in captured:
        return captured
    try:
        decoded = json.loads(f'"{captured}"')
    except ValueError:
        return captured
    return decoded if isinstance(decoded, str) else captured
