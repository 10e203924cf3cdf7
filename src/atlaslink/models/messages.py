"""Standard messages: partners and their endpoints, the message log, the outbox and its
delivery attempts (docs/messages.md).

The outbox is written in the transaction of the event it reports and delivered after the
commit by the background job; its state (next try, attempts, parked) is here, so a restart
resumes where the last process stopped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base, UTCDateTime, utcnow


class Partner(Base):
    """Another system that sends and receives standard messages: a registered unit's command
    system (it reads and acts as that unit), or an outside partner (another network, a
    civil-protection centre) that reads what observers or its country were granted."""

    __tablename__ = "partners"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # The identifier the partner uses as EDXL-DE senderID / CAP sender, and which we address
    # it by (explicitAddress).
    sender_id: Mapped[str] = mapped_column(String(200), unique=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # An outside partner reads requests granted to this country, and/or to observers.
    country_iso2: Mapped[str | None] = mapped_column(ForeignKey("countries.iso2"))
    observer: Mapped[bool] = mapped_column(Boolean, default=False)
    # "2.0" (default) or "1.0" for older peers.
    de_version: Mapped[str] = mapped_column(String(8), default="2.0")
    # Subscriptions: any of "requests", "answers", "deployments", "alerts".
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    exercise_traffic: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PartnerEndpoint(Base):
    """Where a partner's messages go: an HTTP URL (POST, HMAC-signed) or a drop directory."""

    __tablename__ = "partner_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True
    )
    # "http" or "directory"
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(500))
    # HMAC-SHA256 key for HTTP endpoints (shared with the partner out of band).
    secret: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StdMessage(Base):
    """One standard message sent or received, by its MessageID (or CAP identifier): threads
    resolve through it, and an inbound MessageID seen before changes nothing."""

    __tablename__ = "std_messages"
    __table_args__ = (UniqueConstraint("direction", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "in" or "out"
    direction: Mapped[str] = mapped_column(String(3))
    message_id: Mapped[str] = mapped_column(String(300))
    # e.g. "RequestResource", "ResponseToRequestResource", "CAP"
    message_type: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="SET NULL"), index=True
    )
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="SET NULL"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(300), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    # Inbound: the document as received (what was imported, for the record).
    payload: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """One message for one endpoint, written with the event, delivered after the commit."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id"),
        Index("ix_outbox_messages_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(300))
    message_type: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("partner_endpoints.id", ondelete="CASCADE"))
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("assistance_requests.id", ondelete="SET NULL"), index=True
    )
    # The whole document as it goes out (envelope and payload), UTF-8 XML.
    body: Mapped[str] = mapped_column(Text)
    # pending, sent, parked (kept failing: visible, retried only by hand)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryAttempt(Base):
    """The delivery log: every try of every outbox message, with its outcome."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
