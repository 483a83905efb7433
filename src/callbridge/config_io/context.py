"""What one import carries from section to section: the session, the problems found
(each named by its place in the document), warnings, and the work left for after the
commit. Paths are tuples such as ``("ivrs", 2, "responses", 0, "response_pattern")``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.errors import CallbridgeError, FieldError, FieldErrors
from callbridge.runtime import Runtime

Path = tuple[str | int, ...]

# Field names of the services that the document spells differently.
DOCUMENT_NAMES = {"oauth_account_id": "oauth_account", "execution_order": "order"}


def path_text(path: Path) -> str:
    """``("ivrs", 2, "responses", 0, "x")`` → ``ivrs[2].responses[0].x``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def split_field(name: str | int) -> Path:
    """A service's field name, perhaps dotted with indices (``responses.0.guidance``)."""
    if isinstance(name, int):
        return (name,)
    parts: list[str | int] = []
    for part in name.split("."):
        parts.append(int(part) if part.isdigit() else DOCUMENT_NAMES.get(part, part))
    return tuple(parts)


def document_loc(loc: tuple[str | int, ...], values: Any) -> Path:
    """A schema error's place in the document: in its names (``oauth_account_id`` is
    written ``oauth_account``) and its levels (a union's tag, such as the ``tts`` of
    ``guidance: {type: tts}`` or the ``custom`` of ``lookup: {kind: custom}``, is a level
    of the error's place, not of the document)."""
    where: list[str | int] = []
    current = values
    for part in loc:
        if (
            isinstance(part, str)
            and isinstance(current, dict)
            and part not in current
            and part in (v for v in current.values() if isinstance(v, str))
        ):
            continue
        where.append(DOCUMENT_NAMES.get(part, part) if isinstance(part, str) else part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(where)


# Schema errors whose text names a class of ours ("… or instance of StepIn").
_MAPPING_ERRORS = ("dict_type", "model_type", "model_attributes_type", "dataclass_type")


def schema_message(error: Any) -> str:
    """A schema error in the document's words."""
    if error["type"] in _MAPPING_ERRORS:
        return "expected a mapping of fields (name: value)"
    if error["loc"] and error["loc"][-1] == "oauth_account_id" and error["input"] is None:
        return "give the OAuth account's name"
    return str(error["msg"]).removeprefix("Value error, ")


class DocumentProblem(FieldError):
    """One problem of the document, named by its path."""

    def __init__(self, path: Path, message: str, position: int | None = None) -> None:
        super().__init__(path_text(path) or "document", message, position)
        self.path = path

    def detail(self) -> list[dict[str, Any]]:
        item: dict[str, Any] = {
            "loc": ["body", *self.path],
            "path": path_text(self.path) or "document",
            "msg": self.message,
            "type": "value_error",
        }
        if self.position is not None:
            item["position"] = self.position
        return [item]


class DocumentInvalid(FieldErrors):
    """Every problem found; nothing was changed."""

    def __init__(self, problems: list[DocumentProblem]) -> None:
        super().__init__(list(problems))
        self.problems = problems


class Note(BaseModel):
    path: str
    message: str


@dataclass
class ImportContext:
    session: AsyncSession
    runtime: Runtime
    actor: str
    prune: bool
    problems: list[DocumentProblem] = field(default_factory=list)
    warnings: list[Note] = field(default_factory=list)
    # Objects callbridge has and the document does not (kept without prune): labels.
    kept: list[tuple[str, str]] = field(default_factory=list)
    secrets_set: list[str] = field(default_factory=list)
    after_commit: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    # Names of the OAuth accounts (lower case) → id, once the accounts are applied.
    account_ids: dict[str, int] = field(default_factory=dict)

    def problem(self, path: Path, message: str, position: int | None = None) -> None:
        self.problems.append(DocumentProblem(path, message, position))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(Note(path=path_text(path), message=message))

    def invalid(self, path: Path, exc: ValidationError, values: Any) -> None:
        """A schema's complaints about ``values``, each at its place under ``path`` (a
        place already named, such as an account that does not exist, is not named
        again)."""
        named = {problem.path for problem in self.problems}
        for error in exc.errors():
            where = (*path, *document_loc(error["loc"], values))
            if where not in named:
                self.problem(where, schema_message(error))

    def refused(
        self, path: Path, exc: CallbridgeError, index_map: Callable[[Path], Path] | None = None
    ) -> None:
        """A service's refusal; its field names become places under ``path``."""
        errors: list[FieldError]
        if isinstance(exc, FieldErrors):
            errors = exc.errors
        elif isinstance(exc, FieldError):
            errors = [exc]
        else:
            field_name = exc.extra.get("field")
            self.problem((*path, *split_field(field_name)) if field_name else path, exc.message)
            return
        for error in errors:
            where: Path = ()
            for part in getattr(error, "path", error.loc):
                where += split_field(part)
            if index_map is not None:
                where = index_map(where)
            self.problem((*path, *where), error.message, error.position)

    def account_id(self, path: Path, name: Any) -> int | None:
        """The id of the account named ``name`` (None: no account); unknown: a problem."""
        if name is None or name == "":
            return None
        if not isinstance(name, str):
            self.problem(path, "give the OAuth account's name")
            return None
        found = self.account_ids.get(name.strip().lower())
        if found is None:
            self.problem(
                path,
                f"OAuth account '{name}' does not exist (neither in the document nor in "
                "callbridge)",
            )
        return found
