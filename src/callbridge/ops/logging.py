"""Logging set-up: plain text, or one JSON object a line (CALLBRIDGE_LOG_FORMAT=json),
each record carrying the request ID of the request that produced it."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# The address of the client of the request being answered (for the audit log).
client_address_var: ContextVar[str] = ContextVar("client_address", default="")

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "request_id"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


# Query parameters that carry a credential: the OAuth callback's code and state, the
# first-run setup token, a playback link's signature.
SECRET_QUERY_NAMES = frozenset({"code", "state", "token", "sig", "access_token", "password"})
_SECRET_QUERY = re.compile(
    r"(?P<name>(?:^|[?&;])(?:" + "|".join(sorted(SECRET_QUERY_NAMES)) + r")=)[^&;#\s]*",
    re.IGNORECASE,
)


def redact_query(target: str) -> str:
    """A request target with the values of credential parameters replaced."""
    if "?" not in target:
        return target
    path, _, query = target.partition("?")
    return path + "?" + _SECRET_QUERY.sub(r"\g<name>[redacted]", query)


class AccessLogRedaction(logging.Filter):
    """uvicorn's access log prints the request target: keep credentials out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


# asyncpg names the value it could not send ("invalid input for query argument $2:
# '0312345678' (…)"): SQLAlchemy's hide_parameters does not reach into that text.
_DRIVER_VALUE = re.compile(r"(query argument \$\d+: )(.*?)( \([^()\n]*\))?$", re.M)


def scrub_traceback(text: str) -> str:
    """A formatted traceback without the statement parameters a driver quotes."""
    return _DRIVER_VALUE.sub(r"\1[hidden]\3", text)


class TextFormatter(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return scrub_traceback(super().formatException(ei))


class JsonFormatter(TextFormatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            payload["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(log_format: str, level: str, access_log: bool = False) -> None:
    """Log lines to stderr in ``log_format`` from ``level`` up; uvicorn's one line per
    request only with ``access_log`` (``CALLBRIDGE_ACCESS_LOG``)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedaction) for f in access.filters):
        access.addFilter(AccessLogRedaction())
    # uvicorn asks whether the access logger has a handler (the root's counts) before
    # formatting a line: without one it skips the work entirely.
    logging.getLogger("uvicorn.access").propagate = access_log
