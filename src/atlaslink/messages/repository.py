"""Queries of the messages domain."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.models import (
    AssistanceRequest,
    DeliveryAttempt,
    OutboxMessage,
    Partner,
    PartnerEndpoint,
    StdMessage,
    Unit,
)


def partner_by_code(session: Session, code: str) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.code == code))


def partner_by_sender(session: Session, sender_id: str) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.sender_id == sender_id))


def partners_page(session: Session, page: int, per_page: int) -> tuple[list[Partner], int]:
    total = session.scalar(select(func.count()).select_from(Partner)) or 0
    rows = session.scalars(
        select(Partner).order_by(Partner.code).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(rows), total


def endpoints_of(session: Session, partner_ids: list[int]) -> dict[int, list[PartnerEndpoint]]:
    out: dict[int, list[PartnerEndpoint]] = {}
    if not partner_ids:
        return out
    for e in session.scalars(
        select(PartnerEndpoint)
        .where(PartnerEndpoint.partner_id.in_(partner_ids))
        .order_by(PartnerEndpoint.id)
    ):
        out.setdefault(e.partner_id, []).append(e)
    return out


def outbox_counts(session: Session, partner_ids: list[int]) -> dict[tuple[int, str], int]:
    if not partner_ids:
        return {}
    rows = session.execute(
        select(OutboxMessage.partner_id, OutboxMessage.state, func.count())
        .where(OutboxMessage.partner_id.in_(partner_ids))
        .group_by(OutboxMessage.partner_id, OutboxMessage.state)
    ).tuples()
    return {(pid, state): n for pid, state, n in rows}


def unit_codes(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(Unit.id, Unit.code).where(Unit.id.in_(ids))).tuples().all())


def all_unit_codes(session: Session) -> list[str]:
    return list(session.scalars(select(Unit.code).order_by(Unit.code)))


def outbox_page(
    session: Session, page: int, per_page: int, *, state: str | None, partner_id: int | None
) -> tuple[list[tuple[OutboxMessage, str, str, str | None]], int]:
    stmt = (
        select(OutboxMessage, Partner.code, PartnerEndpoint.target, AssistanceRequest.reference)
        .join(Partner, Partner.id == OutboxMessage.partner_id)
        .join(PartnerEndpoint, PartnerEndpoint.id == OutboxMessage.endpoint_id)
        .outerjoin(AssistanceRequest, AssistanceRequest.id == OutboxMessage.request_id)
    )
    count = select(func.count()).select_from(OutboxMessage)
    if state:
        stmt = stmt.where(OutboxMessage.state == state)
        count = count.where(OutboxMessage.state == state)
    if partner_id is not None:
        stmt = stmt.where(OutboxMessage.partner_id == partner_id)
        count = count.where(OutboxMessage.partner_id == partner_id)
    total = session.scalar(count) or 0
    rows = session.execute(
        stmt.order_by(OutboxMessage.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).tuples()
    return list(rows), total


def attempts_page(
    session: Session, page: int, per_page: int, *, outbox_id: int | None, failed_only: bool
) -> tuple[list[tuple[DeliveryAttempt, str, str]], int]:
    stmt = (
        select(DeliveryAttempt, OutboxMessage.message_id, Partner.code)
        .join(OutboxMessage, OutboxMessage.id == DeliveryAttempt.outbox_id)
        .join(Partner, Partner.id == OutboxMessage.partner_id)
    )
    count = select(func.count()).select_from(DeliveryAttempt)
    if outbox_id is not None:
        stmt = stmt.where(DeliveryAttempt.outbox_id == outbox_id)
        count = count.where(DeliveryAttempt.outbox_id == outbox_id)
    if failed_only:
        stmt = stmt.where(DeliveryAttempt.ok.is_(False))
        count = count.where(DeliveryAttempt.ok.is_(False))
    total = session.scalar(count) or 0
    rows = session.execute(
        stmt.order_by(DeliveryAttempt.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).tuples()
    return list(rows), total


def inbound_seen(session: Session, message_id: str) -> StdMessage | None:
    return session.scalar(
        select(StdMessage).where(StdMessage.direction == "in", StdMessage.message_id == message_id)
    )


def thread_message(session: Session, message_id: str) -> StdMessage | None:
    """A message of either direction by its id (how a reply finds its request and offer)."""
    return session.scalars(
        select(StdMessage).where(StdMessage.message_id == message_id).order_by(StdMessage.id)
    ).first()
