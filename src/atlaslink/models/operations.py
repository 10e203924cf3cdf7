"""The rapid-response mechanism: assistance requests, who was asked, what they offered, how the
teams moved, and the shared timeline of an operation.

State names live in ``atlaslink.operations.states``; these tables store them as strings.
Deadlines (acknowledgement, escalation, lapse) are columns here, never in-memory timers, so they
still fire after a restart.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base, UTCDateTime, utcnow


class CountrySettings(Base):
    """Per-country rules the platform applies, kept as data the support office edits."""

    __tablename__ = "country_settings"

    country_iso2: Mapped[str] = mapped_column(ForeignKey("countries.iso2"), primary_key=True)
    # Outgoing requests pass the national contact point first (e.g. a government decision).
    national_approval_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # Assistance to or from this country needs a bilateral agreement with the other country.
    requires_bilateral_agreement: Mapped[bool] = mapped_column(Boolean, default=False)
    # As host: foreign officers may not bring arms / explosives (Prüm: the host may prohibit).
    prohibits_foreign_arms: Mapped[bool] = mapped_column(Boolean, default=False)
    prohibits_foreign_explosives: Mapped[bool] = mapped_column(Boolean, default=False)
    # 2008/617 is not available to this country (e.g. outside the EU framework).
    excluded_from_2008_617: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class BilateralAgreement(Base):
    __tablename__ = "bilateral_agreements"
    __table_args__ = (CheckConstraint("country_a < country_b", name="ordered_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    # Stored as an ordered pair so that (NL, BE) and (BE, NL) are the same agreement.
    country_a: Mapped[str] = mapped_column(ForeignKey("countries.iso2"), index=True)
    country_b: Mapped[str] = mapped_column(ForeignKey("countries.iso2"), index=True)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")


class AssistanceRequest(Base):
    """A pre-alert or a request for assistance, in its current version."""

    __tablename__ = "assistance_requests"
    __table_args__ = (Index("ix_assistance_requests_status_lapse", "status", "lapse_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    # "pre_alert" or "request"
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    exercise: Mapped[bool] = mapped_column(Boolean)
    requesting_country: Mapped[str] = mapped_column(ForeignKey("countries.iso2"), index=True)
    requesting_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_by_label: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    crisis_category: Mapped[str] = mapped_column(String(32))
    location_name: Mapped[str] = mapped_column(String(300))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    # Any combination of "equipment", "expertise", "intervention".
    nature: Mapped[list[str]] = mapped_column(JSON, default=list)
    operational_necessity: Mapped[str] = mapped_column(Text, default="")
    legal_basis: Mapped[str | None] = mapped_column(String(32))
    bilateral_agreement_id: Mapped[int | None] = mapped_column(
        ForeignKey("bilateral_agreements.id")
    )
    classification: Mapped[str] = mapped_column(String(32), default="none")
    distribution_marking: Mapped[str] = mapped_column(String(64), default="")
    handling_code: Mapped[str] = mapped_column(String(2), default="H0")
    handling_note: Mapped[str] = mapped_column(Text, default="")
    # Minutes each addressed unit has to acknowledge, and how often the next duty contact is
    # alerted before the support office is.
    ack_minutes: Mapped[int] = mapped_column(Integer)
    max_escalations: Mapped[int] = mapped_column(Integer)
    # A request that is not covered by then lapses (optional).
    lapse_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pre_alert_id: Mapped[int | None] = mapped_column(ForeignKey("assistance_requests.id"))
    # Stable incident identifier for standard messages (EDXL IncidentID).
    incident_id: Mapped[str] = mapped_column(String(64))
    debrief: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Optimistic lock: every change bumps it; an edit based on an older value is refused.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}


class RequestVersion(Base):
    """What a request said in each version (an amendment makes a new one)."""

    __tablename__ = "request_versions"
    __table_args__ = (UniqueConstraint("request_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_label: Mapped[str] = mapped_column(String(200))


class RequestLine(Base):
    """One thing asked for: a capability at a minimum level, a quantity, a time."""

    __tablename__ = "request_lines"
    __table_args__ = (
        UniqueConstraint("request_id", "line_no"),
        CheckConstraint("min_level BETWEEN 0 AND 3", name="min_level_range"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE"), index=True
    )
    line_no: Mapped[int] = mapped_column(Integer)
    capability_type_id: Mapped[int] = mapped_column(ForeignKey("capability_types.id"))
    min_level: Mapped[int] = mapped_column(Integer)
    # Operators (or items, for equipment) needed.
    quantity: Mapped[int] = mapped_column(Integer)
    needed_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    # Set when an amendment drops the line; offers against it stay on record.
    removed_in_version: Mapped[int | None] = mapped_column(Integer)


class RequestAddressee(Base):
    """A unit the request was sent to, with its acknowledgement ladder."""

    __tablename__ = "request_addressees"
    __table_args__ = (UniqueConstraint("request_id", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    # 0 chosen by the requester, 1 neighbouring countries, 2 region, 3 whole network.
    ring: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(32))
    addressed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    addressed_by_label: Mapped[str] = mapped_column(String(200))
    ack_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_label: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Refusal reason, or what "unable to fill" means in this case.
    reason: Mapped[str] = mapped_column(Text, default="")
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    support_office_alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the escalation job must next look at this row; NULL once nothing is pending.
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The request version the unit last saw; offers re-open when a newer one exists.
    seen_version: Mapped[int] = mapped_column(Integer, default=1)


class Offer(Base):
    """An offer (or counter-proposal) of one unit, which becomes its deployment once agreed."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE"), index=True
    )
    addressee_id: Mapped[int] = mapped_column(ForeignKey("request_addressees.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    request_version: Mapped[int] = mapped_column(Integer)
    # "offer" or "counter_proposal" (a different kind of assistance than asked)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    nature: Mapped[list[str]] = mapped_column(JSON, default=list)
    package: Mapped[str] = mapped_column(Text, default="")
    eta_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    conditions: Mapped[str] = mapped_column(Text, default="")
    costs: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_label: Mapped[str] = mapped_column(String(200))
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agreed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    on_site_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    home_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A recalled team no longer covers its lines, whatever its later movement steps.
    recalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    lock_version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": lock_version}


class OfferLine(Base):
    __tablename__ = "offer_lines"
    __table_args__ = (
        UniqueConstraint("offer_id", "request_line_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    request_line_id: Mapped[int] = mapped_column(ForeignKey("request_lines.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    # What the requester took (partial acceptance); NULL until accepted.
    accepted_quantity: Mapped[int | None] = mapped_column(Integer)


class Arrangement(Base):
    """The practical arrangements of one deployment, confirmed by both sides."""

    __tablename__ = "arrangements"

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), unique=True)
    command: Mapped[str] = mapped_column(Text)
    liaison_officer: Mapped[str] = mapped_column(String(200), default="")
    liaison_contact: Mapped[str] = mapped_column(String(200), default="")
    working_language: Mapped[str] = mapped_column(String(2), default="en")
    costs: Mapped[str] = mapped_column(Text)
    liability: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(Text, default="")
    # Every edit bumps the revision and clears both confirmations.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    requester_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requester_confirmed_by: Mapped[str | None] = mapped_column(String(200))
    assisting_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assisting_confirmed_by: Mapped[str | None] = mapped_column(String(200))


class ManifestItem(Base):
    """What a team brings across the border; the host approves or prohibits each item."""

    __tablename__ = "manifest_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    # weapon, ammunition, explosive, equipment, vehicle, aircraft
    category: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    serial_numbers: Mapped[str] = mapped_column(Text, default="")
    # pending, approved, prohibited
    host_decision: Mapped[str] = mapped_column(String(16), default="pending")
    decision_note: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MovementRecord(Base):
    """Convoy routes, border-crossing notifications, overflight and landing clearances."""

    __tablename__ = "movement_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    # convoy_route, border_crossing, overflight_clearance, landing_clearance
    kind: Mapped[str] = mapped_column(String(24))
    country_iso2: Mapped[str] = mapped_column(ForeignKey("countries.iso2"))
    reference: Mapped[str] = mapped_column(String(100), default="")
    route: Mapped[str] = mapped_column(Text, default="")
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # requested, granted, refused, notified
    status: Mapped[str] = mapped_column(String(16), default="requested")
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RequestGrant(Base):
    """Visibility of a request given beyond the requesting country and the addressed units."""

    __tablename__ = "request_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE"), index=True
    )
    # "support_office", "observers", "country" or "unit"
    grantee: Mapped[str] = mapped_column(String(16))
    country_iso2: Mapped[str | None] = mapped_column(ForeignKey("countries.iso2"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    granted_by_label: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationEvent(Base):
    """The shared timeline of a request: every transition, note and pinned item."""

    __tablename__ = "operation_events"
    __table_args__ = (
        Index("ix_operation_events_request_seq", "request_id", "id"),
        Index("ix_operation_events_request_id_live", "request_id", "live_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE")
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(48))
    summary: Mapped[str] = mapped_column(Text)
    # The unit the event concerns (an answer, an offer, a deployment step), if any.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"))
    # "all" involved, or only the "parties" (requesting side and the unit concerned).
    scope: Mapped[str] = mapped_column(String(8), default="all")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    # Its place in commit order, the live streams' cursor (operations.timeline.number_live);
    # set in the transaction that inserts the row, never seen empty by another.
    live_seq: Mapped[int | None] = mapped_column(BigInteger, index=True)


class Notification(Base):
    """An in-app notification, and the e-mail that goes with it (sent after commit)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_unread", "user_id", "read_at"),
        Index("ix_notifications_email_due", "email_state", "email_next_at"),
        Index("ix_notifications_user_id_live", "user_id", "live_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # In-app for a user; a unit's 24/7 e-mail contact gets the e-mail only.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email_to: Mapped[str] = mapped_column(String(200), default="")
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(48))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(300), default="")
    # Escalations are urgent: quiet hours never hold them back.
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    exercise: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # none (no address), pending, sent, failed (parked after retries)
    email_state: Mapped[str] = mapped_column(String(12), default="none")
    email_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_attempts: Mapped[int] = mapped_column(Integer, default=0)
    email_error: Mapped[str] = mapped_column(Text, default="")
    # As OperationEvent.live_seq (one counter numbers both).
    live_seq: Mapped[int | None] = mapped_column(BigInteger, index=True)


class UserPreferences(Base):
    """Personal settings: quiet hours hold back non-urgent e-mail, never an escalation."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # "HH:MM" in UTC; quiet when start <= now < end (wrapping past midnight).
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class IdempotencyKey(Base):
    """A create or answer call replayed with the same key returns the first result."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    # Method + path + a hash of the body: the same key with another body is an error.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
