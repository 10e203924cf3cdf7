"""Append-only, hash-chained audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The actor's account, if any; not a foreign key: the log outlives what it names, and every
    # request that reads restricted fields appends here (migration 0011). Only the indexes the
    # audit page filters by are kept.
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64), index=True)
    object_id: Mapped[str] = mapped_column(String(200))
    # The unit whose data the event concerns, if any: decides who may read the event.
    unit_id: Mapped[int | None] = mapped_column(Integer, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """Single row holding the chain's tip; locking it serialises appenders on PostgreSQL."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    # The tip before the last append: lets one UPDATE … RETURNING both move the head and name
    # the link of the new entry (audit.service._append_row on PostgreSQL).
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    # The number of the newest timeline event or notification (operations.timeline.number_live):
    # taken under this row's lock, so the numbers follow commit order (migration 0012).
    live_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
