"""The capability taxonomy (data, versioned) and each unit's capability entries."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base, UTCDateTime, utcnow


class TaxonomyVersion(Base):
    """Every edit of the taxonomy makes a new version; types record where they came and went."""

    __tablename__ = "taxonomy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)


class CapabilityType(Base):
    __tablename__ = "capability_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    # "environment" or "skill"
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # FEMA RTLT resource typing ID, so non-EU partners can read our types.
    rtlt_id: Mapped[str | None] = mapped_column(String(32))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    introduced_in: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.version"))
    retired_in: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.version"))


# The entry columns the ranking reads (covered by ix_capability_entries_matching).
MATCHING_COLUMNS = (
    "id",
    "unit_id",
    "level",
    "package_size",
    "notice_to_move_hours",
    "may_deploy_abroad",
    "may_carry_arms_abroad",
    "may_carry_explosives_abroad",
    "confirmed_on",
)


class CapabilityEntry(Base):
    __tablename__ = "capability_entries"
    __table_args__ = (
        UniqueConstraint("unit_id", "capability_type_id"),
        CheckConstraint("level BETWEEN 0 AND 3", name="level_range"),
        # Ranking reads every entry of one type (~7,400 of 200,000): on PostgreSQL from this
        # index alone, without visiting ~2,000 heap pages (operations.matching).
        Index(
            "ix_capability_entries_matching",
            "capability_type_id",
            postgresql_include=list(MATCHING_COLUMNS),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    capability_type_id: Mapped[int] = mapped_column(ForeignKey("capability_types.id"))
    level: Mapped[int] = mapped_column(Integer)
    package_size: Mapped[int | None] = mapped_column(Integer)
    notice_to_move_hours: Mapped[int | None] = mapped_column(Integer)
    self_sufficiency_hours: Mapped[int | None] = mapped_column(Integer)
    may_deploy_abroad: Mapped[bool] = mapped_column(Boolean, default=False)
    may_carry_arms_abroad: Mapped[bool] = mapped_column(Boolean, default=False)
    may_carry_explosives_abroad: Mapped[bool] = mapped_column(Boolean, default=False)
    last_validated: Mapped[date | None] = mapped_column(Date)
    validated_exercise: Mapped[str | None] = mapped_column(String(200))
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    confirmed_on: Mapped[date] = mapped_column(Date)
