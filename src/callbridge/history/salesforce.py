"""The Salesforce requests of the history link: one Composite request carries many
subrequests (queries, searches, describes, sObject Collections) and counts as one API call.
Sent through the one outbound path (OAuth, token refresh, redaction)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from callbridge.history.reasons import salesforce_error
from callbridge.messages import Message, as_message
from callbridge.oauth_accounts.service import SALESFORCE_API_VERSION
from callbridge.outbound import OAuthAuth, Outbound, OutboundRequest, RetryPolicy
from callbridge.outbound.types import OutboundError

# Composite: at most 25 subrequests, at most 5 of them queries or Collections.
MAX_SUBREQUESTS = 25
MAX_HEAVY_SUBREQUESTS = 5
MAX_COLLECTION_RECORDS = 200
# Codes of a record's error that are worth another try later.
RETRYABLE_RECORD_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
# The batch shrinks when the org's automation makes large batches fail.
SHRINK_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"})


def api_path(path: str) -> str:
    return f"/services/data/{SALESFORCE_API_VERSION}{path}"


@dataclass
class Sub:
    """One subrequest; ``heavy`` ones (queries, searches, Collections) count against the
    five a Composite may carry."""

    method: str
    url: str
    body: Any = None
    heavy: bool = True


@dataclass
class SubAnswer:
    status: int
    body: Any


class SalesforceFailure(Exception):
    """The whole request failed. ``kind``: ``auth`` (wait for re-authorisation),
    ``transient`` (limits, 5xx, network: back off), ``unknown`` (it may have been processed:
    the answer was lost, cut or unreadable). ``said``: why, a catalogue message
    (``message``: its English text)."""

    def __init__(self, kind: str, said: Message) -> None:
        super().__init__(said.text)
        self.kind = kind
        self.said = said

    @property
    def message(self) -> str:
        return self.said.text


def pack(subs: list[Sub]) -> list[list[Sub]]:
    """Split subrequests into Composite requests within Salesforce's limits."""
    packs: list[list[Sub]] = []
    current: list[Sub] = []
    heavy = 0
    for sub in subs:
        if current and (
            len(current) >= MAX_SUBREQUESTS or (sub.heavy and heavy >= MAX_HEAVY_SUBREQUESTS)
        ):
            packs.append(current)
            current, heavy = [], 0
        current.append(sub)
        heavy += int(sub.heavy)
    if current:
        packs.append(current)
    return packs


def _failure(error: OutboundError, sent: bool) -> SalesforceFailure:
    said = as_message(error.said)
    if error.kind == "auth":
        return SalesforceFailure("auth", said)
    if error.kind in ("timeout",) and sent:
        return SalesforceFailure("unknown", said)
    return SalesforceFailure("transient", said)


async def composite(
    outbound: Outbound,
    account_id: int,
    base: str,
    subs: list[Sub],
    timeout: float,  # noqa: ASYNC109
) -> list[SubAnswer]:
    """Send one Composite request (``allOrNone:false``); the answers in order. Raises
    :class:`SalesforceFailure` when the request as a whole failed."""
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": sub.method,
                "url": sub.url,
                "referenceId": f"r{index}",
                **({"body": sub.body} if sub.body is not None else {}),
            }
            for index, sub in enumerate(subs)
        ],
    }
    writes = any(sub.method != "GET" for sub in subs)
    result = await outbound.send(
        OutboundRequest(
            method="POST",
            url=f"{base.rstrip('/')}{api_path('/composite')}",
            headers=(("Content-Type", "application/json"), ("Accept", "application/json")),
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            timeout=timeout,
            auth=OAuthAuth(account_id),
            # Reads are safe to repeat; writes are not repeated here: their outcome is
            # settled by asking Salesforce which Tasks exist before sending again.
            retry=RetryPolicy(max_attempts=1 if writes else 2, retry_non_idempotent=not writes),
        )
    )
    if result.error is not None and result.status is None:
        raise _failure(result.error, sent=writes)
    if result.status is not None and result.status >= 400:
        said = salesforce_error(_error_text(result.text) or f"HTTP {result.status}")
        if result.status == 401:
            raise SalesforceFailure("auth", said)
        raise SalesforceFailure("transient", said)
    try:
        answer = json.loads(result.text)
        entries = answer["compositeResponse"]
        if not isinstance(entries, list) or len(entries) != len(subs):
            raise ValueError(f"{len(entries) if isinstance(entries, list) else 0} answers")
        return [SubAnswer(int(e["httpStatusCode"]), e.get("body")) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        kind = "unknown" if writes else "transient"
        raise SalesforceFailure(
            kind,
            Message(
                "history_unreadable",
                detail=f"{type(exc).__name__}: {exc}",
                salesforce=repr(result.text[:120]),
            ),
        ) from None


def _error_text(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return error_message(body)


def error_message(body: Any) -> str | None:
    """``CODE: message`` from a Salesforce error body (a list of errors, REST or SaveResult)."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        code = first.get("errorCode") or first.get("statusCode") or ""
        message = first.get("message") or ""
        return f"{code}: {message}".strip(": ")
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return None


def error_code(body: Any) -> str:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode") or body[0].get("statusCode") or "")
    return ""


def query_url(soql: str) -> str:
    return api_path("/query?q=" + quote(soql, safe=""))


def search_url(sosl: str) -> str:
    return api_path("/search?q=" + quote(sosl, safe=""))
