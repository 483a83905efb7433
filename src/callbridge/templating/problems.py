"""Problems found while compiling or expanding templates (shared with the pattern module)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from callbridge.messages import Message

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about an admin-written text, anchored at a 0-based character offset.

    ``msg`` is a catalogue message (``callbridge.messages``): its id is the stable
    machine-readable ``code``, its English text the ``message`` an admin can act on.
    """

    msg: Message
    position: int
    severity: Severity = "error"

    @property
    def code(self) -> str:
        return self.msg.code

    @property
    def message(self) -> str:
        return self.msg.text

    def as_warning(self, field: str) -> dict[str, object]:
        """The shape used in the ``warnings`` list of a save answer."""
        return {
            "field": field,
            "message": self.message,
            "position": self.position,
            "code": self.code,
        }


def errors_of(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


class TemplateError(ValueError):
    """A template cannot be used; ``problems`` lists every error and warning found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=lambda p: p.position)
        errors = errors_of(self.problems)
        first = errors[0] if errors else (self.problems[0] if self.problems else None)
        summary = f"{first.message} (at position {first.position})" if first else "invalid template"
        if len(errors) > 1:
            summary += f" and {len(errors) - 1} more error(s)"
        super().__init__(summary)

    @property
    def errors(self) -> list[Problem]:
        return errors_of(self.problems)


class TemplateExpansionError(ValueError):
    """A value cannot be inserted safely, so the request must not be sent.

    Raised at expansion time, for example when a value would form a ``..`` path segment
    or a system URL is missing. ``position`` is the offset of the variable in the template.
    """

    def __init__(self, message: Message, position: int = 0) -> None:
        self.msg = message
        self.message = message.text
        self.position = position
        super().__init__(self.message)
