"""JSONPath extractions (RFC 9535, via python-jsonpath): one ``NAME = $.path`` a line."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonpath

from callbridge.messages import Message, define
from callbridge.patterns.extraction import Extraction, ExtractionError, PatternError
from callbridge.templating.names import is_variable_name
from callbridge.templating.problems import Problem

define(
    {
        "response_not_json": "The response is not JSON, so JSONPath cannot run: {detail}",
        "jsonpath_line": "Expected 'NAME = $.path' on this line.",
        "jsonpath_name": "{name} is not a variable name: use upper-case letters, digits and _.",
        "jsonpath_duplicate": "{name} is extracted twice.",
        "jsonpath_syntax": "Invalid JSONPath: {detail}.",
        "jsonpath_empty": "No 'NAME = $.path' line found.",
    }
)

_ENV = jsonpath.JSONPathEnvironment(strict=True)
_LINE_RE = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[ \t]*\r?$")
_LOOKS_LIKE_RE = re.compile(r"[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*=[ \t]*\$")


class JSONPathExtractions:
    """Compiled ``NAME = $.path`` lines; each yields its first match as text.

    Strings come out decoded; numbers and booleans in JSON spelling; ``null`` or no match
    as ``""``; objects and arrays as compact JSON.
    """

    __slots__ = ("_paths", "group_names", "text")

    normalisations: tuple[Problem, ...] = ()
    hints: tuple[Problem, ...] = ()

    def __init__(self, text: str, paths: list[tuple[str, Any]]) -> None:
        self.text = text
        self._paths = paths
        self.group_names = tuple(name for name, _path in paths)

    def extract(
        self, text: str, *, timeout: float | None = None, json_body: bool = True
    ) -> Extraction:
        """Evaluate every line on the JSON ``text``; raises ExtractionError if not JSON.

        ``timeout`` is accepted for symmetry with regex patterns: JSONPath does not
        backtrack, so its cost is bounded by the size of the response.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ExtractionError(Message("response_not_json", detail=str(exc))) from None
        named: dict[str, str] = {}
        groups: list[str] = []
        matched = False
        for name, path in self._paths:
            try:
                found = path.match(data)
            except (jsonpath.JSONPathError, RecursionError):
                found = None
            value = "" if found is None else _as_text(found.obj)
            matched = matched or found is not None
            named[name] = value
            groups.append(value)
        return Extraction(matched, named, groups)

    def __repr__(self) -> str:
        return f"JSONPathExtractions({self.text!r})"


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def looks_like_jsonpath(text: str) -> bool:
    """True when every non-blank, non-comment line reads ``NAME = $…``."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return bool(lines) and all(_LOOKS_LIKE_RE.match(line) for line in lines)


def compile_jsonpath_extractions(text: str) -> JSONPathExtractions:
    """Validate ``NAME = $.path`` lines; raises PatternError with the fault's position.

    Blank lines and lines starting with ``#`` are ignored.
    """
    problems: list[Problem] = []
    paths: list[tuple[str, Any]] = []
    seen: set[str] = set()
    offset = 0
    for line in text.split("\n"):
        start = offset
        offset += len(line) + 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE_RE.fullmatch(line)
        if match is None:
            problems.append(Problem(Message("jsonpath_line"), start))
            continue
        name, path_text = match.group(1), match.group(2)
        if not is_variable_name(name):
            problems.append(
                Problem(Message("jsonpath_name", name=repr(name)), start + match.start(1))
            )
        elif name in seen:
            problems.append(
                Problem(Message("jsonpath_duplicate", name=name), start + match.start(1))
            )
        seen.add(name)
        path_start = start + match.start(2)
        try:
            paths.append((name, _ENV.compile(path_text)))
        except jsonpath.JSONPathError as exc:
            token = getattr(exc, "token", None)
            index = getattr(token, "index", -1)
            if not isinstance(index, int) or index > len(path_text):
                index = 0
            column = index if index >= 0 else len(path_text)  # -1: at the end of the path
            detail = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
            problems.append(Problem(Message("jsonpath_syntax", detail=detail), path_start + column))
        except Exception as exc:  # the library must not turn a typo into a crash
            problems.append(Problem(Message("jsonpath_syntax", detail=str(exc)), path_start))
    if not paths and not problems:
        problems.append(Problem(Message("jsonpath_empty"), 0))
    if problems:
        raise PatternError(problems)
    return JSONPathExtractions(text, paths)
