"""The audit log: one call per auditable action, in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callbridge.models import AuditEntry
from callbridge.ops.logging import client_address_var


def record_audit(
    session: AsyncSession,
    actor: str,
    action: str,
    target: str = "",
    **details: object,
) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            action=action,
            target=target,
            details=details,
            source=client_address_var.get()[:100],
        )
    )
