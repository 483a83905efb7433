"""The fields of a request an admin writes, and what pasting from the manuals does to them.

The seeds print an empty cell as 「なし」; pasted verbatim it means empty. Patterns read
``¥`` as a backslash and templates take spaces in URLs and ``sobject s`` apart where they
are compiled (``callbridge.patterns``, ``callbridge.templating``): the findings of those
land beside the field like the ones here.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

from callbridge.messages import Message
from callbridge.requests.compiler import Finding

AUTH_TYPES = ("none", "basic", "bearer", "oauth")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
AuthType = Literal["none", "basic", "bearer", "oauth"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
SECRET_FIELDS = ("basic_password", "bearer_token")

# "None" as the manuals print it in empty cells: pasted verbatim, it means empty.
EMPTY_WORDS = frozenset({"なし", "無し", "ナシ"})

# The texts of a request that may be pasted as 「なし」.
REQUEST_TEXT_FIELDS = (
    "condition_code",
    "condition_pattern",
    "headers",
    "body",
    "extract_pattern",
    "json_extractions",
)


def normalise_empty_words(
    record: MutableMapping[str, Any], names: Iterable[str], prefix: str = ""
) -> list[Finding]:
    """Read 「なし」 in the ``names`` fields of ``record`` as empty (in place); a warning
    for each, named ``prefix + name``."""
    found = []
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip() in EMPTY_WORDS:
            record[name] = ""
            found.append(
                Finding(
                    f"{prefix}{name}",
                    Message("empty_word", word=value.strip()),
                    0,
                    "warning",
                )
            )
    return found


def upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value
