"""IVR-API configurations: the request(s) an IVR sends, and its prioritised response settings.

Guidance and transfer targets are stored as small JSON objects in the shapes of the
invoke answer (DESIGN.md §3.3), so what an admin saves is what the PBX receives.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callbridge.db.base import NEVER_REUSED_IDS, Base, TimestampMixin
from callbridge.requests.columns import AuthColumns, ConditionColumns, TargetColumns

GUIDANCE_TYPES = ("tts", "audio")
TRANSFER_KINDS = ("callcenter", "extension", "ivr", "external", "hangup", "end_rule")
TARGETLESS_TRANSFER_KINDS = ("hangup", "end_rule")


class Ivr(AuthColumns, TargetColumns, TimestampMixin, Base):
    __tablename__ = "ivr"
    __table_args__ = NEVER_REUSED_IDS

    id: Mapped[int] = mapped_column(primary_key=True)
    # What the PBX calls: POST /api/v1/ivr/{key}/invoke.
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # Bumped by every change: processes cache the compiled IVR per revision.
    revision: Mapped[int] = mapped_column(default=1)
    # The budget of the whole invocation (every step), in seconds.
    # (Its own request's extract_pattern: names {RESPONSE_<NAME>} for the steps.)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=10.0)
    max_digits: Mapped[int] = mapped_column(default=0)
    digits_pattern: Mapped[str] = mapped_column(Text, default="")
    pre_guidance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Each {"guidance": …, "transfer": …} or NULL (then: no guidance, end_rule).
    on_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    on_input_invalid: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    on_no_match: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Names of the extra `variables` the PBX sends, usable as {NAME} in templates.
    pbx_variables: Mapped[list[str]] = mapped_column(JSON, default=list)
    memo: Mapped[str] = mapped_column(Text, default="")

    responses: Mapped[list[IvrResponse]] = relationship(
        back_populates="ivr",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="IvrResponse.priority",
    )
    steps: Mapped[list[IvrStep]] = relationship(
        back_populates="ivr",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="IvrStep.position",
    )


class IvrResponse(Base):
    """One response setting: tested in ascending ``priority``; the first match answers."""

    __tablename__ = "ivr_response"
    __table_args__ = (
        Index("ix_ivr_response_ivr_priority", "ivr_id", "priority"),
        NEVER_REUSED_IDS,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ivr_id: Mapped[int] = mapped_column(ForeignKey("ivr.id", ondelete="CASCADE"))
    priority: Mapped[int]
    # "200", "2xx" or "*" (any three-digit code or "Nxx" class is accepted).
    response_code: Mapped[str] = mapped_column(String(3), default="200")
    response_pattern: Mapped[str] = mapped_column(Text, default="")
    extract_pattern: Mapped[str] = mapped_column(Text, default="")
    condition_code: Mapped[str] = mapped_column(Text, default="")
    condition_pattern: Mapped[str] = mapped_column(Text, default="")
    # Whose response code/pattern/extraction are tested: NULL = the last request sent,
    # "main" = the IVR's own request, else a step's name.
    step: Mapped[str | None] = mapped_column(String(50))
    guidance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    transfer: Mapped[dict[str, Any]] = mapped_column(JSON)
    memo: Mapped[str] = mapped_column(Text, default="")

    ivr: Mapped[Ivr] = relationship(back_populates="responses", lazy="raise")


class IvrStep(TargetColumns, ConditionColumns, Base):
    """A further request, run in ``position`` order after the IVR's own request."""

    __tablename__ = "ivr_step"
    __table_args__ = (Index("ix_ivr_step_ivr_position", "ivr_id", "position"), NEVER_REUSED_IDS)

    id: Mapped[int] = mapped_column(primary_key=True)
    ivr_id: Mapped[int] = mapped_column(ForeignKey("ivr.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(50))
    # NULL: the IVR's own authentication (type, account and credentials).
    auth_type: Mapped[str | None] = mapped_column(String(20))
    oauth_account_id: Mapped[int | None]

    ivr: Mapped[Ivr] = relationship(back_populates="steps", lazy="raise")
