"""List pagination shared by every collection of the JSON API."""

from __future__ import annotations

import re
from typing import Annotated, Generic, TypeVar

from fastapi import Query, Request
from pydantic import BaseModel

from callbridge.errors import NotFound
from callbridge.messages import Message, define

T = TypeVar("T")

# The largest integer either database stores (a signed 64-bit integer): no id is larger,
# and an offset beyond it is refused before it reaches the database.
MAX_DB_INT = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]+")

define({"id_out_of_range": "Nothing has the id {value}: ids are whole numbers up to {limit}."})


async def ids_a_database_can_hold(request: Request) -> None:
    """Every route: a whole-number path parameter beyond 64 bits names nothing (404),
    instead of failing in the database driver."""
    for value in request.path_params.values():
        if isinstance(value, str) and _INTEGER.fullmatch(value) and abs(int(value)) > MAX_DB_INT:
            raise NotFound(Message("id_out_of_range", value=value, limit=MAX_DB_INT))


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int


class PageParams(BaseModel):
    limit: int = 50
    offset: int = 0


def page_params(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)
