"""Retry decisions: which failures are repeated, and how long to wait before the next try."""

from __future__ import annotations

import random
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from callbridge.outbound.types import RetryPolicy

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A PATCH to one Salesforce record (by Id or by external ID) sets fields: repeating it
# leaves the record as one PATCH would.
_RECORD_PATH = re.compile(r"/sobjects/[^/]+/[^/]+(?:/[^/]+)?/?$", re.IGNORECASE)


def is_idempotent(method: str, url: str) -> bool:
    if method in IDEMPOTENT_METHODS:
        return True
    if method == "PATCH":
        try:
            path = urlsplit(url).path
        except ValueError:
            return False
        return _RECORD_PATH.search(path) is not None
    return False


def backoff_delay(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": between half and all of the step."""
    step = min(policy.max_delay, policy.base_delay * float(2 ** (retry_number - 1)))
    jitter: float = rng.uniform(0, step / 2)
    return step / 2 + jitter


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
