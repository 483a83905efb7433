"""Waking workers the moment new work is committed (never before: a worker woken before
the commit would find nothing and go back to sleep).

The in-process signal runs from SQLAlchemy's ``after_commit`` hook of the very session
that stored the event; other processes hear PostgreSQL's NOTIFY, sent in the same
transaction (see ``repository.store_event_row``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

Waker = Callable[[datetime | None], None]

_KEY = "callbridge.after_commit"


def wake_after_commit(session: AsyncSession, waker: Waker, due_at: datetime | None) -> None:
    """Call ``waker(due_at)`` once the session's transaction has committed."""
    pending: list[tuple[Waker, datetime | None]] = session.info.setdefault(_KEY, [])
    pending.append((waker, due_at))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: list[Any] | None = session.info.pop(_KEY, None)
    for waker, due_at in pending or ():
        waker(due_at)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
