"""A unit's sharing agreement: one rule per group of fields, with its listed targets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base, UTCDateTime, utcnow


class SharingRule(Base):
    __tablename__ = "sharing_rules"
    __table_args__ = (UniqueConstraint("unit_id", "field_group"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    field_group: Mapped[str] = mapped_column(String(32))
    audience: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SharingTarget(Base):
    """A country or unit listed by a rule whose audience is "listed"."""

    __tablename__ = "sharing_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("sharing_rules.id", ondelete="CASCADE"), index=True
    )
    country_iso2: Mapped[str | None] = mapped_column(ForeignKey("countries.iso2"), index=True)
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True
    )
