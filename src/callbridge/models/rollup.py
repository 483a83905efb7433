"""Per-minute totals of executions and calls, folded from the raw rows once each minute
is over, so the dashboard reads a few thousand totals instead of every execution."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from callbridge.db.base import Base

# Upper bounds (ms) of the latency histogram's buckets; the last one is open-ended.
LATENCY_BOUNDS_MS = (50, 100, 200, 300, 500, 750, 1000, 2000, 3000, 5000, 10000)


class _Totals:
    """The totals of one period of one kind: ``call`` (key: the direction),
    ``call_action`` (key: the rule's id), ``ivr`` (key: the IVR's id), ``screen_pop`` (the
    server accesses of screen pops; key: the profile's id) or ``ivr_outcome``
    (IVR answers; key: the outcome, ``matched``, ``no_match``…)."""

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    total_ms: Mapped[float] = mapped_column(Float, default=0.0)
    h0: Mapped[int] = mapped_column(default=0)
    h1: Mapped[int] = mapped_column(default=0)
    h2: Mapped[int] = mapped_column(default=0)
    h3: Mapped[int] = mapped_column(default=0)
    h4: Mapped[int] = mapped_column(default=0)
    h5: Mapped[int] = mapped_column(default=0)
    h6: Mapped[int] = mapped_column(default=0)
    h7: Mapped[int] = mapped_column(default=0)
    h8: Mapped[int] = mapped_column(default=0)
    h9: Mapped[int] = mapped_column(default=0)
    h10: Mapped[int] = mapped_column(default=0)
    h11: Mapped[int] = mapped_column(default=0)


class OpsRollup(_Totals, Base):
    """One minute (the 24-hour charts)."""

    __tablename__ = "ops_rollup"

    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time // 60


class OpsRollupHour(_Totals, Base):
    """One hour, summed from the minutes (the 7-day charts read 168 rows a key)."""

    __tablename__ = "ops_rollup_hour"

    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time // 3600


class OpsRollupState(Base):
    """Up to which minute (exclusive) the rows are folded."""

    __tablename__ = "ops_rollup_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    until_minute: Mapped[int] = mapped_column(BigInteger)
