"""Equipment offered with an answer to an assistance request (issue 5 §3, ADR 0005 §12).

An addressed unit may include items of its own inventory in an offer. While the offer is
pending nothing is held: the items are checked to be the unit's own, in service and free from
the answer until the end offered (``AnswerBody.equipment_until``, by default
``ATLASLINK_OFFER_EQUIPMENT_DAYS`` days). When the requester accepts, every item is booked for
the operation through ``equipment.service.book`` (the one path that never double-books), as a
loan of purpose "operation" ("exercise" for an exercise request) from acceptance to that end,
already RESERVED (the owner agreed by offering it); the borrower is the requesting unit, or,
for a request raised by a country without a unit, the offering unit itself (it keeps the item
with its team; the loan's note names the country). If one item cannot be booked the
acceptance is refused (409) and nothing of it is written.

The reservation ends with the deployment: when the team is home, the team is recalled, or the
accepted offer ends otherwise (withdrawn, declined, the request cancelled or closed), an
operation loan still RESERVED (never handed over) is cancelled and its reservation cut at that
moment (the days it was held stay on the calendar). A loan whose item was handed over
(ISSUED and later) is left to its lifecycle: the owner records the return and check-in, which
frees the rest of the period as for any loan.

Offered items are offer terms: they are shown to the two parties only (``policy.
sees_offer_details``). Offering an item discloses it to the requesting side even if the item's
own sharing audience is narrower; each disclosure is audited (``equipment.offer_disclose``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.equipment import repository as equipment_repo
from atlaslink.equipment import service as equipment
from atlaslink.equipment.states import LOAN_TRANSITIONS, LoanStatus
from atlaslink.errors import Conflict
from atlaslink.models import (
    AssistanceRequest,
    EquipmentCategory,
    EquipmentItem,
    EquipmentLoan,
    EquipmentLoanEvent,
    Offer,
    OfferEquipment,
    utcnow,
)
from atlaslink.operations import schemas, timeline
from atlaslink.operations.states import check

L = LoanStatus


def label(item: EquipmentItem, *, first: bool = False) -> str:
    return f"{'Item' if first else 'item'} {item.id} ({item.ref}, {item.model})"


def default_until(now: datetime) -> datetime:
    return now + timedelta(days=get_settings().offer_equipment_days)


def check_offered(
    session: Session, unit_id: int, body: schemas.AnswerBody, now: datetime
) -> tuple[list[EquipmentItem], datetime, list[dict[str, str]]]:
    """The items of ``body.equipment`` (own unit's, in service, free until the end offered),
    the end of the period, and the problems found (one per item, naming it)."""
    problems: list[dict[str, str]] = []
    until = body.equipment_until or default_until(now)
    if not body.equipment:
        return [], until, problems
    if body.answer not in ("accept", "counter_propose"):
        problems.append({"field": "equipment", "message": "equipment is offered with an offer"})
        return [], until, problems
    if until <= now:
        problems.append({"field": "equipment_until", "message": "the end is in the past"})
        return [], until, problems
    if until - now > timedelta(days=get_settings().equipment_max_period_days):
        problems.append(
            {
                "field": "equipment_until",
                "message": f"at most {get_settings().equipment_max_period_days} days from now",
            }
        )
        return [], until, problems
    found = {
        i.id: i
        for i in session.scalars(select(EquipmentItem).where(EquipmentItem.id.in_(body.equipment)))
    }
    items = []
    for item_id in body.equipment:
        item = found.get(item_id)
        if item is None or item.unit_id != unit_id:
            # The same words whether the item exists elsewhere or not at all.
            problems.append(
                {"field": "equipment", "message": f"item {item_id} is not in your unit's inventory"}
            )
            continue
        if item.status != "available":
            problems.append(
                {
                    "field": "equipment",
                    "message": f"{label(item)} is not in service ({item.status})",
                }
            )
            continue
        busy = equipment.availability_problem(session, item, now, until)
        if busy is not None:
            problems.append({"field": "equipment", "message": f"{label(item)}: {busy}"})
            continue
        items.append(item)
    return items, until, problems


def attach(
    session: Session,
    p: Principal,
    req: AssistanceRequest,
    offer: Offer,
    items: Sequence[EquipmentItem],
    until: datetime,
) -> None:
    """Record the offered items, audit their disclosure to the requesting side, and note them
    on the timeline for the two parties."""
    if not items:
        return
    for item in items:
        session.add(OfferEquipment(offer_id=offer.id, item_id=item.id, until=until))
        audit.append(
            session,
            p,
            "equipment.offer_disclose",
            "equipment_item",
            item.id,
            unit_id=item.unit_id,
            after={
                "offer": offer.id,
                "request": req.reference,
                "disclosed_to": req.requesting_country,
                "item_audience": item.audience,
                "until": until,
            },
        )
    session.flush()
    timeline.record(
        session,
        p,
        req,
        "offer.equipment",
        "Equipment offered: " + "; ".join(f"{i.model} ({i.ref})" for i in items),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        object_type="offer",
        object_id=offer.id,
        after={"items": [i.id for i in items], "until": until},
    )


def reserve(
    session: Session, p: Principal, req: AssistanceRequest, offer: Offer
) -> list[EquipmentLoan]:
    """Book every offered item for the operation (at acceptance). A clash is a 409 naming
    the item; the caller's transaction then writes nothing."""
    rows = list(
        session.scalars(
            select(OfferEquipment)
            .where(OfferEquipment.offer_id == offer.id)
            .order_by(OfferEquipment.id)
        )
    )
    if not rows:
        return []
    # Every item of the offer is locked before the first is booked, in id order: two
    # acceptances of offers naming the same items the other way round queue, not deadlock.
    equipment.hold_items(session, [oe.item_id for oe in rows])
    now = utcnow()
    borrower = req.requesting_unit_id or offer.unit_id
    made = []
    for oe in rows:
        item = session.get(EquipmentItem, oe.item_id)
        assert item is not None
        if item.status != "available":
            raise Conflict(
                f"{label(item, first=True)} is no longer in service ({item.status}); "
                "ask the unit to withdraw the offer and offer again."
            )
        if oe.until <= now:
            raise Conflict(
                f"The period offered for {label(item)} ended at {oe.until:%Y-%m-%d %H:%M} UTC."
            )
        loan = EquipmentLoan(
            item_id=item.id,
            owner_unit_id=item.unit_id,
            borrower_unit_id=borrower,
            # An exercise request's equipment is booked for an exercise, like its timeline.
            purpose="exercise" if req.exercise else "operation",
            purpose_note=f"{req.reference}: {req.title}"
            + ("" if req.requesting_unit_id else f" (for {req.requesting_country})"),
            starts_at=now,
            ends_at=oe.until,
            status=L.RESERVED.value,
            requested_by=p.label,
            decided_by=offer.created_by_label,
            decided_at=offer.created_at,
        )
        session.add(loan)
        session.flush()
        try:
            equipment.book(
                session,
                p,
                item,
                now,
                oe.until,
                kind="loan",
                loan_id=loan.id,
                note=f"Operation {req.reference}",
            )
        except Conflict as exc:
            raise Conflict(
                f"{label(item, first=True)} cannot be reserved for the operation: {exc.detail}",
                errors=[{"field": "equipment", "message": f"item {item.id}: {exc.detail}"}],
            ) from None
        oe.loan_id = loan.id
        session.add(
            EquipmentLoanEvent(
                loan_id=loan.id,
                occurred_at=now,
                from_status=None,
                to_status=L.RESERVED.value,
                actor_user_id=p.user_id,
                actor_label=p.label,
                notes=f"Offered with offer {offer.id} on {req.reference}; accepted by {p.label}.",
            )
        )
        session.flush()
        audit.append(
            session,
            p,
            "loan.operation_reserve",
            "equipment_loan",
            loan.id,
            unit_id=item.unit_id,
            after={
                "item_id": item.id,
                "offer": offer.id,
                "request": req.reference,
                "borrower_unit_id": borrower,
                "starts_at": now,
                "ends_at": oe.until,
                "status": loan.status,
            },
        )
        made.append(loan)
    return made


def release(
    session: Session, p: Principal, req: AssistanceRequest, offer: Offer, reason: str
) -> None:
    """The deployment is over (team home, recalled) or the accepted offer ended: cancel the
    operation loans that were never handed over and cut their reservations now."""
    rows = session.execute(
        select(OfferEquipment, EquipmentLoan)
        .join(EquipmentLoan, EquipmentLoan.id == OfferEquipment.loan_id)
        .where(OfferEquipment.offer_id == offer.id, EquipmentLoan.status == L.RESERVED.value)
        .order_by(OfferEquipment.id)
    ).tuples()
    now = utcnow()
    for _oe, loan in rows:
        check("loan", loan.status, L.CANCELLED, LOAN_TRANSITIONS)  # type: ignore[arg-type]
        held = equipment_repo.loan_reservation(session, loan.id)
        if held is not None:
            if now <= held.starts_at:
                held.active = False
            elif now < held.ends_at:
                held.ends_at = now  # the days it was held stay on the calendar
        loan.status = L.CANCELLED.value
        session.add(
            EquipmentLoanEvent(
                loan_id=loan.id,
                occurred_at=now,
                from_status=L.RESERVED.value,
                to_status=L.CANCELLED.value,
                actor_user_id=p.user_id,
                actor_label=p.label,
                notes=f"Operation {req.reference}: {reason}",
            )
        )
        session.flush()
        audit.append(
            session,
            p,
            "loan.operation_release",
            "equipment_loan",
            loan.id,
            unit_id=loan.owner_unit_id,
            before={"status": L.RESERVED.value},
            after={"status": loan.status, "reason": reason, "offer": offer.id},
        )


def offered(session: Session, offer_ids: Sequence[int]) -> dict[int, list[schemas.OfferedItemOut]]:
    """The items of these offers (the caller decides who may see them)."""
    out: dict[int, list[schemas.OfferedItemOut]] = {}
    if not offer_ids:
        return out
    rows = session.execute(
        select(OfferEquipment, EquipmentItem, EquipmentCategory, EquipmentLoan)
        .join(EquipmentItem, EquipmentItem.id == OfferEquipment.item_id)
        .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
        .outerjoin(EquipmentLoan, EquipmentLoan.id == OfferEquipment.loan_id)
        .where(OfferEquipment.offer_id.in_(list(offer_ids)))
        .order_by(OfferEquipment.id)
    ).tuples()
    for oe, item, cat, loan in rows:
        out.setdefault(oe.offer_id, []).append(
            schemas.OfferedItemOut(
                item_id=item.id,
                ref=item.ref,
                category=cat.code,
                category_name=cat.name,
                model=item.model,
                quantity=item.quantity,
                serial_numbers=list(item.serial_numbers or []),
                weight_kg=item.weight_kg,
                length_cm=item.length_cm,
                width_cm=item.width_cm,
                height_cm=item.height_cm,
                air_transportable=item.air_transportable,
                needs_vehicle=item.needs_vehicle,
                operator_training=item.operator_training,
                restrictions=item.restrictions,
                until=oe.until,
                loan_id=loan.id if loan is not None else None,
                loan_status=loan.status if loan is not None else None,
            )
        )
    return out


def available_items(
    session: Session, unit_id: int, now: datetime, until: datetime
) -> list[tuple[EquipmentItem, EquipmentCategory, str | None]]:
    """The unit's items in service, each with why it is not free now (None if it is): the
    list the answer form shows."""
    rows = session.execute(
        select(EquipmentItem, EquipmentCategory)
        .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
        .where(EquipmentItem.unit_id == unit_id, EquipmentItem.status == "available")
        .order_by(EquipmentCategory.sort_order, EquipmentItem.model, EquipmentItem.id)
        .limit(200)
    ).tuples()
    items = list(rows)
    busy = equipment_repo.periods(session, [i.id for i, _ in items], now, until)
    out = []
    for item, cat in items:
        clash = busy[item.id]
        out.append(
            (
                item,
                cat,
                f"busy from {clash[0][0].starts_at:%d %b %H:%M} UTC" if clash else None,
            )
        )
    return out
