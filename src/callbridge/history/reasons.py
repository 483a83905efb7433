"""Why a history row (or a whole link) stands where it does: catalogue messages stored
with the row, so the 連携通話履歴 page and the API show them in the reader's language.

A row keeps its reason twice, as call-action outcomes do (``reason`` / ``reason_msg``):
the English text in ``reason`` (the keyword filter searches it; logs) and the message's id
and parameters in ``reason_msg``. A link keeps ``backoff_reason`` / ``backoff_reason_msg``
the same way. Salesforce's own words (an error message, the start of an unreadable answer)
are a parameter, ``salesforce``, and are shown verbatim in every language.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from callbridge.messages import Message, define
from callbridge.messages import render as render_message

define(
    {
        "history_no_match.skip": "no record matched; nothing is created (on no match: skip)",
        "history_no_match.fallback": "no record matched: linked to the fallback record",
        "history_no_match.unlinked": "no record matched: a Task without a related record",
        "history_searching": "no record matched yet; searching again",
        "history_multiple.fallback": (
            "{count} {object} records matched: linked to the fallback record"
        ),
        "history_multiple.first": "{count} {object} records matched: the most recently modified",
        "history_too_many_matches": (
            "{count} or more {object} records matched, more than one search returns: "
            "no Task is created rather than some (on several matches: all)"
        ),
        "history_search_failed": "search failed: {salesforce}",
        # A record's error as Salesforce gave it ("CODE: message").
        "history_salesforce_error": "{salesforce}",
        "history_record_not_saved": "the record was not saved",
        "history_case_error": "Case: {salesforce}",
        "history_case_not_created": "Case: not created",
        "history_result_count": "Salesforce answered {count} results for {records} records",
        "history_notes_failed": "notes not updated: {salesforce}",
        "history_unreadable": (
            "Salesforce's answer could not be read ({detail}); it began with {salesforce}"
        ),
        "history_outcome_unknown": "outcome unknown, checked before resending: {reason}",
        "history_backoff.auth": "waiting for the OAuth account: {reason}",
        "history_backoff.unavailable": "Salesforce unavailable, retried later: {reason}",
        "history_account_deleted": "OAuth account {id} was deleted: choose another",
        "history_account_not_connected": (
            "OAuth account '{name}' is not connected: connect it first"
        ),
    }
)


def salesforce_error(text: str | None) -> Message:
    """Salesforce's message for a record or request (``CODE: message``)."""
    return (
        Message("history_salesforce_error", salesforce=text)
        if text
        else Message("history_record_not_saved")
    )


def stored_reason(message: Message | None) -> dict[str, Any]:
    """The row's (or link's) two columns for ``message``: English text and message."""
    if message is None:
        return {"reason": None, "reason_msg": None}
    return {"reason": message.text, "reason_msg": message.to_json()}


def shown_reason(
    text: str | None, message: Mapping[str, Any] | None, gettext: Callable[[str], str]
) -> str | None:
    """The reason in the language of ``gettext``; a row stored before reasons had ids (or
    with an id this version does not know) shows its English text."""
    if text is None and message is None:
        return None
    return render_message({"message": text or "", "msg": message}, gettext) or text


def reason_code(message: Mapping[str, Any] | None) -> str | None:
    """The machine-readable code of a stored reason (its id up to the first dot)."""
    if not message or not message.get("id"):
        return None
    return str(message["id"]).partition(".")[0]
