"""The vocabulary of the template language: contexts, built-in variables and functions."""

from __future__ import annotations

import re
from enum import StrEnum

from callbridge.messages import define


class Context(StrEnum):
    """Where an expanded template goes; decides how every value is escaped."""

    URL = "url"
    HEADER = "header"
    BODY_JSON = "body_json"
    BODY_FORM = "body_form"
    BODY_TEXT = "body_text"
    BODY_XML = "body_xml"
    PLAIN = "plain"


# Values the PBX sends with every call event (DESIGN §3.2).
CALL_NAMES: frozenset[str] = frozenset(
    {
        "EVENT",
        "ID",
        "TEL",
        "TELNAME",
        "CALLED",
        "CALLEDNAME",
        "DIRECTION",
        "QUEUE",
        "AID",
        "EXT",
        "UNIQUE_ID",
    }
)

# Trusted base URLs supplied by callbridge itself, never by a caller.
SYSTEM_URL_NAMES: frozenset[str] = frozenset({"OAUTH_INSTANCE_URL", "SFAPI", "SVADDR"})

DATE_NAMES: dict[str, str] = {
    "DATE-YYYY": "%Y",
    "DATE-MM": "%m",
    "DATE-DD": "%d",
    "DATE-HH": "%H",
    "DATE-II": "%M",
    "DATE-SS": "%S",
}

RESPONSE_PREFIX = "RESPONSE_"

BUILTIN_NAMES: frozenset[str] = CALL_NAMES | SYSTEM_URL_NAMES | frozenset(DATE_NAMES)

# BIZTEL names that callbridge deliberately does not provide: the id of the message (in
# callbridge.messages) giving the reason shown to admins.
REFUSED_NAMES: dict[str, str] = {
    "APW": "refused_variable.apw",
    "SFSID": "refused_variable.sfsid",
    "SFID": "refused_variable.sfid",
}
define(
    {
        "refused_variable.apw": (
            "{variable} (the agent's password) is not available: callbridge never holds passwords "
            "in clear. Use an OAuth account or a bearer token instead."
        ),
        "refused_variable.sfsid": (
            "{variable} (a Salesforce session ID) is not available: choose the OAuth "
            "authentication type and callbridge sends the access token itself."
        ),
        "refused_variable.sfid": (
            "{variable} (the Salesforce login ID of the softphone) is not available in "
            "callbridge; rules run on the server, not in a signed-in softphone."
        ),
    }
)

# BIZTEL softphone names whose callbridge equivalent is a RESPONSE_ variable.
CRM_VALUE_NAMES: frozenset[str] = frozenset({"COMPANY", "NAME", "EXT_ID"})

FUNCTION_NAMES: tuple[str, ...] = (
    "MD5",
    "SHA256",
    "LOWERCASE",
    "UPPERCASE",
    "E164",
    "NATIONAL",
    "DIGITS",
    "MONITOR_LINK",
)

VARIABLE_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]*")


def is_variable_name(name: str) -> bool:
    """True for names a pattern group or a caller variable may take (``[A-Z][A-Z0-9_]*``)."""
    return VARIABLE_NAME_RE.fullmatch(name) is not None
