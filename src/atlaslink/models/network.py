"""Networks, countries, units and what a unit holds besides capabilities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from atlaslink.models.base import Base, UTCDateTime, utcnow


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")


class Country(Base):
    __tablename__ = "countries"

    # ISO 3166-1 alpha-2 is stored; EU display codes (EL, UK) are derived for display.
    iso2: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # "eu", "associated" or "other"
    status: Mapped[str] = mapped_column(String(16))


class NetworkMember(Base):
    __tablename__ = "network_members"
    __table_args__ = (UniqueConstraint("network_id", "country_iso2"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id", ondelete="CASCADE"))
    country_iso2: Mapped[str] = mapped_column(ForeignKey("countries.iso2"))
    voting: Mapped[bool] = mapped_column(Boolean, default=True)


class Unit(Base):
    __tablename__ = "units"
    # The directory's order; listings page through it.
    __table_args__ = (Index("ix_units_directory_order", "country_iso2", "name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    network_id: Mapped[int] = mapped_column(ForeignKey("networks.id"), index=True)
    country_iso2: Mapped[str] = mapped_column(ForeignKey("countries.iso2"), index=True)
    base_location: Mapped[str] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # ISO 639-1 codes the unit declares; never derived from the country.
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    competent_authority: Mapped[str] = mapped_column(String(300), default="")
    # Derived: the field groups the matching engine may use (sharing.matching_groups, one bit
    # per group), rewritten with every write of the unit's sharing agreement, so that ranking
    # need not join sharing_rules for every entry it scores.
    matching_groups: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    contacts: Mapped[list[UnitContact]] = relationship(
        back_populates="unit", cascade="all, delete-orphan", lazy="raise", order_by="UnitContact.id"
    )


class UnitContact(Base):
    """A 24/7 contact point of a unit (phone, e-mail, radio)."""

    __tablename__ = "unit_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(String(200))

    unit: Mapped[Unit] = relationship(back_populates="contacts", lazy="raise")


class TransportAsset(Base):
    __tablename__ = "transport_assets"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    # "helicopter", "aircraft", "armoured_vehicle", "boat"
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(300), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    capacity_persons: Mapped[int | None] = mapped_column(Integer)
