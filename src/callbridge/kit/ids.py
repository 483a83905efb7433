"""Ids in URLs and bodies, checked against what the databases store before a query is
made: a number beyond a column's range names nothing (404 in a path, 422 in a body),
instead of failing in the database driver (a 500)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Request
from pydantic import Field

from callbridge.errors import NotFound
from callbridge.messages import Message, define

# The call store's ids are 64-bit (BIGINT); configuration ids (users, tokens, OAuth
# accounts, rules, IVRs, history links) are PostgreSQL INTEGERs, 32-bit.
MAX_DB_INT = 2**63 - 1
MAX_CONFIG_ID = 2**31 - 1
# Path parameters that name a row of the call store; every other whole-number one names
# a configuration object.
CALL_STORE_PARAMETERS = frozenset({"execution_id"})

# A reference to a configuration object in a body (a rule's OAuth account, ...).
ConfigId = Annotated[int, Field(ge=-MAX_CONFIG_ID - 1, le=MAX_CONFIG_ID)]

_INTEGER = re.compile(r"-?[0-9]+")

define({"id_out_of_range": "Nothing has the id {value}: ids are whole numbers up to {limit}."})


async def ids_a_database_can_hold(request: Request) -> None:
    """Every route: a path parameter the route takes as a whole number (``user_id: int``)
    beyond its column's range names nothing (404). Text parameters (an IVR key, a PBX's
    call_id) may be any digits."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    for field in dependant.path_params:
        if field.field_info.annotation is not int:
            continue
        name = field.alias
        value = request.path_params.get(name)
        if not (isinstance(value, str) and _INTEGER.fullmatch(value)):
            continue
        limit = MAX_DB_INT if name in CALL_STORE_PARAMETERS else MAX_CONFIG_ID
        if not -limit - 1 <= int(value) <= limit:
            raise NotFound(Message("id_out_of_range", value=value, limit=limit))
