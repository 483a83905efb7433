"""Every SQL statement about IVR configurations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from callbridge.kit.time import utcnow
from callbridge.models.call import Call, CallVariable, Execution
from callbridge.models.ivr import Ivr
from callbridge.models.oauth_account import OAuthAccount

_WITH_CHILDREN = (selectinload(Ivr.responses), selectinload(Ivr.steps))


async def get_by_key(session: AsyncSession, key: str) -> Ivr | None:
    return await session.scalar(select(Ivr).where(Ivr.key == key).options(*_WITH_CHILDREN))


async def get_by_id(session: AsyncSession, ivr_id: int) -> Ivr | None:
    return await session.scalar(select(Ivr).where(Ivr.id == ivr_id).options(*_WITH_CHILDREN))


async def revision_of(session: AsyncSession, key: str) -> tuple[int, int] | None:
    """``(id, revision)`` of the IVR with this key: enough to know a cached copy is current."""
    row = (await session.execute(select(Ivr.id, Ivr.revision).where(Ivr.key == key))).first()
    return (int(row[0]), int(row[1])) if row is not None else None


async def key_taken(session: AsyncSession, key: str, except_id: int | None = None) -> bool:
    statement = select(Ivr.id).where(Ivr.key == key)
    if except_id is not None:
        statement = statement.where(Ivr.id != except_id)
    return (await session.scalar(statement)) is not None


async def list_ivrs(session: AsyncSession, limit: int, offset: int) -> tuple[list[Ivr], int]:
    total = await session.scalar(select(func.count()).select_from(Ivr)) or 0
    rows = await session.scalars(
        select(Ivr).options(*_WITH_CHILDREN).order_by(Ivr.key).limit(limit).offset(offset)
    )
    return list(rows), int(total)


async def all_ivrs(session: AsyncSession) -> list[Ivr]:
    return list(await session.scalars(select(Ivr).options(*_WITH_CHILDREN).order_by(Ivr.key)))


async def count_ivrs(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Ivr)) or 0)


async def oauth_accounts(session: AsyncSession) -> list[OAuthAccount]:
    return list(await session.scalars(select(OAuthAccount).order_by(OAuthAccount.name)))


async def oauth_account(session: AsyncSession, account_id: int) -> OAuthAccount | None:
    return await session.get(OAuthAccount, account_id)


# ---- the call store, in bulk (the invocation log writer) -----------------------------------


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


# Bulk statements run as one "executemany" each: the statement is compiled once and cached,
# whatever the number of rows (a multi-row VALUES clause would be compiled for every batch).


async def ensure_calls(
    session: AsyncSession, calls: Mapping[str, Mapping[str, str | None]]
) -> dict[str, int]:
    """The primary key of each call by ``call_id``, creating the new ones (without events),
    as ``calls.store.ensure_call`` does for one."""
    now = utcnow()
    rows = [
        {
            "call_id": call_id,
            "tel": details.get("tel"),
            "called": details.get("called"),
            "tel_name": details.get("tel_name"),
            "event_count": 0,
            "error_count": 0,
            "started_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for call_id, details in calls.items()
    ]
    table = _table(Call)
    await session.execute(
        _insert(session, table).on_conflict_do_nothing(index_elements=[table.c.call_id]), rows
    )
    found = await session.execute(
        select(table.c.call_id, table.c.id).where(table.c.call_id.in_(list(calls)))
    )
    return {str(call_id): int(pk) for call_id, pk in found}


async def upsert_call_variables(
    session: AsyncSession, variables: Mapping[tuple[int, str], tuple[str, str]]
) -> None:
    """``(call_pk, name) → (value, source)``, stored or overwritten."""
    if not variables:
        return
    now = utcnow()
    table = _table(CallVariable)
    statement = _insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.call_pk, table.c.name],
        set_={
            "value": statement.excluded.value,
            "source": statement.excluded.source,
            "updated_at": statement.excluded.updated_at,
        },
    )
    await session.execute(
        statement,
        [
            {"call_pk": call_pk, "name": name, "value": value, "source": source, "updated_at": now}
            for (call_pk, name), (value, source) in variables.items()
        ],
    )


async def add_executions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert execution records; a call with failed ones counts them as errors."""
    if not rows:
        return
    await session.execute(insert(_table(Execution)), list(rows))
    errors = Counter(row["call_pk"] for row in rows if row.get("error") is not None)
    if errors:
        table = _table(Call)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("pk"))
            .values(error_count=table.c.error_count + bindparam("n")),
            [{"pk": pk, "n": n} for pk, n in errors.items()],
        )
