"""The equipment pool: categories (versioned data), items, who may see them, reservations,
loans with their handover records, and calendar feed tokens (ADR 0005)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base, UTCDateTime, utcnow


class EquipmentCategoryVersion(Base):
    """Every edit of the equipment categories makes a new version (as the capability taxonomy)."""

    __tablename__ = "equipment_category_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)


class EquipmentCategory(Base):
    __tablename__ = "equipment_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    introduced_in: Mapped[int] = mapped_column(ForeignKey("equipment_category_versions.version"))
    retired_in: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_category_versions.version")
    )


class EquipmentItem(Base):
    """One reservable item: a single serial-numbered piece, or a lot lent as a whole."""

    __tablename__ = "equipment_items"
    __table_args__ = (
        UniqueConstraint("unit_id", "ref"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
        # Search: category first, then a latitude band (bounding box before the exact distance).
        Index("ix_equipment_items_search", "category_id", "latitude"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    # The unit's own reference (inventory number); imports match rows on (unit, ref).
    ref: Mapped[str] = mapped_column(String(64))
    category_id: Mapped[int] = mapped_column(ForeignKey("equipment_categories.id"))
    model: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    serial_numbers: Mapped[list[str]] = mapped_column(JSON, default=list)
    location_name: Mapped[str] = mapped_column(String(200), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # The home unit's country (denormalised for border crossings in ETA estimates).
    country_iso2: Mapped[str] = mapped_column(String(2))
    weight_kg: Mapped[float | None] = mapped_column(Float)
    length_cm: Mapped[int | None] = mapped_column(Integer)
    width_cm: Mapped[int | None] = mapped_column(Integer)
    height_cm: Mapped[int | None] = mapped_column(Integer)
    air_transportable: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_vehicle: Mapped[bool] = mapped_column(Boolean, default=False)
    operator_training: Mapped[str] = mapped_column(Text, default="")
    restrictions: Mapped[str] = mapped_column(Text, default="")
    maintenance_due: Mapped[date | None] = mapped_column(Date)
    maintenance_notified_on: Mapped[date | None] = mapped_column(Date)
    # available, repair, lost, destroyed, retired
    status: Mapped[str] = mapped_column(String(16), default="available")
    notes: Mapped[str] = mapped_column(Text, default="")
    # Who may see the item: a sharing audience (sharing.policy.Audience) with listed targets.
    audience: Mapped[str] = mapped_column(String(32), default="own_unit")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EquipmentShareTarget(Base):
    """A country or unit listed by an item whose audience is "listed"."""

    __tablename__ = "equipment_share_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("equipment_items.id", ondelete="CASCADE"), index=True
    )
    # Indexed: the "listed" audience is looked up by the viewer's country or unit.
    country_iso2: Mapped[str | None] = mapped_column(ForeignKey("countries.iso2"), index=True)
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("units.id", ondelete="CASCADE"), index=True
    )


class EquipmentReservation(Base):
    """A period during which an item is not available: a loan's or a maintenance window.

    Active periods of one item never overlap: on PostgreSQL an exclusion constraint on
    ``tstzrange(starts_at, ends_at)`` (created by migration 0007), on SQLite the service's
    check inside the ``BEGIN IMMEDIATE`` transaction (ADR 0005)."""

    __tablename__ = "equipment_reservations"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period_order"),
        Index("ix_equipment_reservations_item_period", "item_id", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("equipment_items.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # loan or maintenance
    kind: Mapped[str] = mapped_column(String(16))
    loan_id: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_loans.id", ondelete="CASCADE"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(300), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")


class EquipmentLoan(Base):
    __tablename__ = "equipment_loans"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period_order"),
        Index("ix_equipment_loans_owner_status", "owner_unit_id", "status"),
        Index("ix_equipment_loans_borrower_status", "borrower_unit_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("equipment_items.id", ondelete="CASCADE"), index=True
    )
    owner_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    borrower_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    # exercise, operation or training
    purpose: Mapped[str] = mapped_column(String(16))
    purpose_note: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="REQUESTED")
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    overdue_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EquipmentLoanEvent(Base):
    """One step of a loan; handover and return steps carry condition, notes and signatures."""

    __tablename__ = "equipment_loan_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    loan_id: Mapped[int] = mapped_column(
        ForeignKey("equipment_loans.id", ondelete="CASCADE"), index=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(200))
    condition: Mapped[str] = mapped_column(String(16), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    signed_owner: Mapped[str] = mapped_column(String(200), default="")
    signed_borrower: Mapped[str] = mapped_column(String(200), default="")


class EquipmentPhoto(Base):
    """A photo attached to a handover or return record, kept in the database (bounded size)."""

    __tablename__ = "equipment_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("equipment_loan_events.id", ondelete="CASCADE"), index=True
    )
    content_type: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200), default="")
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EquipmentCalendarFeed(Base):
    """A secret address from which calendar clients read a unit's reservations (revocable)."""

    __tablename__ = "equipment_calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OfferEquipment(Base):
    """An item of the offering unit's own inventory included in an offer of assistance.

    Nothing is held while the offer is pending; when the requester accepts, the item is booked
    for the operation (a loan of purpose "operation", through ``equipment.service.book``) and
    ``loan_id`` points at it (ADR 0005 §12)."""

    __tablename__ = "offer_equipment"
    __table_args__ = (UniqueConstraint("offer_id", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("equipment_items.id", ondelete="CASCADE"), index=True
    )
    # The end of the period offered; the period starts when the offer is accepted.
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    loan_id: Mapped[int | None] = mapped_column(
        ForeignKey("equipment_loans.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
