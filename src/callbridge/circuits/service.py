"""What the UI and the API show of CRM outages: the open circuits with their parked
calls."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.circuits.store import PARKED_COUNTS
from callbridge.models import CrmCircuit, OAuthAccount


class CircuitRead(BaseModel):
    key: str
    # The OAuth account's name, or the host.
    name: str
    oauth_account_id: int | None
    opened_at: datetime
    last_error: str
    # Calls waiting for this CRM (their earliest unfinished event is parked).
    parked_calls: int
    # Probe requests sent since it opened.
    probes: int


async def open_circuits(session: AsyncSession, call_pk: int | None = None) -> list[CircuitRead]:
    """Every open circuit; with ``call_pk`` only those that call waits for."""
    circuits = list(
        await session.scalars(
            select(CrmCircuit).where(CrmCircuit.state == "open").order_by(CrmCircuit.opened_at)
        )
    )
    if not circuits:
        return []
    if call_pk is not None:
        from callbridge.models import CallEvent

        waited = set(
            await session.scalars(
                select(CallEvent.park_key).where(
                    CallEvent.call_pk == call_pk,
                    CallEvent.park_key.is_not(None),
                    CallEvent.status == "pending",
                )
            )
        )
        circuits = [c for c in circuits if c.key in waited]
        if not circuits:
            return []
    counts = {str(k): int(n) for k, n in await session.execute(PARKED_COUNTS)}
    account_ids = [int(c.key.split(":", 1)[1]) for c in circuits if c.key.startswith("account:")]
    names: dict[int, str] = {}
    if account_ids:
        rows = await session.execute(
            select(OAuthAccount.id, OAuthAccount.name).where(OAuthAccount.id.in_(account_ids))
        )
        names = {int(i): str(n) for i, n in rows}
    result = []
    for circuit in circuits:
        kind, _, value = circuit.key.partition(":")
        account_id = int(value) if kind == "account" else None
        name = names.get(account_id, f"#{account_id}") if account_id is not None else value
        result.append(
            CircuitRead(
                key=circuit.key,
                name=name,
                oauth_account_id=account_id,
                opened_at=circuit.opened_at,
                last_error=circuit.last_error,
                parked_calls=counts.get(circuit.key, 0),
                probes=circuit.probes,
            )
        )
    return result


async def parked_total(session: AsyncSession) -> int:
    from callbridge.models import CallEvent

    total = await session.scalar(
        select(func.count())
        .select_from(CallEvent)
        .where(CallEvent.park_key.is_not(None), CallEvent.status == "pending")
    )
    return int(total or 0)
