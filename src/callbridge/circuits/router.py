"""``/api/v1/circuits``: the CRMs that are not processing requests, and what waits."""

from __future__ import annotations

from fastapi import APIRouter

from callbridge.auth.deps import AdminAccess
from callbridge.circuits import service
from callbridge.circuits.service import CircuitRead
from callbridge.db.session import SessionDep

router = APIRouter(prefix="/api/v1", tags=["circuits"])


@router.get("/circuits", operation_id="list_open_circuits")
async def list_open_circuits(session: SessionDep, principal: AdminAccess) -> list[CircuitRead]:
    """Every open circuit (account or host, since when, last error, parked calls,
    probes sent)."""
    return await service.open_circuits(session)
