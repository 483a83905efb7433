"""Circuits: per CRM (an OAuth account, or a host), whether it is processing requests.

A circuit opens after repeated requests the CRM did not process (connection refused,
DNS, connect timeout, 503, 429, ``REQUEST_LIMIT_EXCEEDED``, a token refresh failing for a
reason other than ``invalid_grant``). While it is open, work for that CRM is parked and
one probe at a time (``probe_at``, claimed with one row update across all processes)
tests whether it is back; the probe that succeeds closes it and resumes the parked work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import Base
from callbridge.kit.time import utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")

CIRCUIT_STATES = ("open", "closed")


class CrmCircuit(Base):
    __tablename__ = "crm_circuit"

    # "account:<oauth account id>" or "host:<scheme>://<host>:<port>".
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Failures seen while open (the probes that failed included).
    failures: Mapped[int] = mapped_column(default=0)
    # No probe before this time; a process that moves it forward owns the next probe.
    probe_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The parked event chosen to send the probe (its requests may pass the open circuit).
    probe_event_pk: Mapped[int | None] = mapped_column(BigId)
    # Probe requests sent since the circuit last opened.
    probes: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
