"""Borrowing: a unit asks, the owner approves or declines, the loan moves through its
lifecycle (``states.py``) with handover and return records. Every step is audited and
announced to the other unit through the existing notifications (``/notifications``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.equipment import policy, schemas, service, views
from atlaslink.equipment import repository as repo
from atlaslink.equipment.states import (
    ENDED,
    HANDOVERS,
    LABELS,
    LOAN_TRANSITIONS,
    STEP_SIDE,
    LoanStatus,
)
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound, TooLarge
from atlaslink.models import (
    EquipmentCategory,
    EquipmentItem,
    EquipmentLoan,
    EquipmentLoanEvent,
    EquipmentPhoto,
    Notification,
    Unit,
    utcnow,
)
from atlaslink.operations import timeline
from atlaslink.operations.states import check
from atlaslink.registry.service import page_bounds, page_dict

L = LoanStatus


def notify_unit(
    session: Session, unit_id: int, loan: EquipmentLoan, kind: str, title: str, body: str = ""
) -> list[Notification]:
    """Notify a unit's commanders and duty officers, linking to the loan's page."""
    made = timeline.notify_users(
        session, timeline.unit_responders(session, [unit_id]), None, kind, title, body
    )
    for n in made:
        n.link = f"/equipment/loans/{loan.id}"
    session.flush()
    return made


def _step_permission(target: LoanStatus) -> Permission:
    if target in (L.RESERVED, L.DECLINED):
        return Permission.LOANS_DECIDE
    if target is L.CANCELLED:
        return Permission.LOANS_REQUEST
    return Permission.LOANS_HANDOVER


# The order of the buttons: the way forward first, exits last.
_STEP_ORDER = (
    L.RESERVED,
    L.ISSUED,
    L.IN_TRANSIT,
    L.ON_LOAN,
    L.RETURNED,
    L.CHECKED,
    L.REPAIR,
    L.DECLINED,
    L.CANCELLED,
    L.EXPIRED,
    L.LOST,
    L.DESTROYED,
)


def allowed_steps(viewer: Principal, loan: EquipmentLoan) -> list[str]:
    """The moves ``viewer`` may make now (shown as buttons and as ``actions`` in the API)."""
    side = policy.loan_side(viewer, loan)
    if side is None:
        return []
    out = []
    moves = LOAN_TRANSITIONS.get(L(loan.status), frozenset())
    for target in (t for t in _STEP_ORDER if t in moves):
        if target is L.EXPIRED and side != "system":
            continue  # the background job's move
        who = STEP_SIDE[target]
        if side != "system" and who not in ("either", side):
            continue
        # Cancelling is also the owner's (a reserved loan it can no longer honour).
        perm = _step_permission(target)
        if target is L.CANCELLED and side == "owner":
            if loan.status == L.REQUESTED.value:
                continue  # the owner declines a request; it cancels only a reserved loan
            perm = Permission.LOANS_DECIDE
        if side == "system" or viewer.can(perm):
            out.append(target.value)
    return out


def _visible_loan(session: Session, viewer: Principal, loan_id: int) -> EquipmentLoan:
    loan = session.get(EquipmentLoan, loan_id)
    if loan is None or policy.loan_side(viewer, loan) is None:
        raise NotFound(f"There is no loan {loan_id}.")
    return loan


def _loan_snapshot(loan: EquipmentLoan) -> dict[str, Any]:
    return {
        "item_id": loan.item_id,
        "owner_unit_id": loan.owner_unit_id,
        "borrower_unit_id": loan.borrower_unit_id,
        "purpose": loan.purpose,
        "starts_at": loan.starts_at,
        "ends_at": loan.ends_at,
        "status": loan.status,
    }


def request_loan(
    session: Session, actor: Principal, item_id: int, data: schemas.LoanCreate
) -> EquipmentLoan:
    actor.require(Permission.LOANS_REQUEST)
    if actor.unit_id is None:
        raise Forbidden("Only a unit can borrow equipment.")
    item = service.visible_item(session, actor, item_id)
    if item.unit_id == actor.unit_id:
        raise Invalid("This is your own unit's item: book a maintenance window instead.")
    service.hold_items(session, [item.id])  # the status below is the committed one
    if item.status != "available":
        raise Conflict(f"The item is not in service ({item.status}).")
    service._check_period(data.starts_at, data.ends_at)
    loan = EquipmentLoan(
        item_id=item.id,
        owner_unit_id=item.unit_id,
        borrower_unit_id=actor.unit_id,
        purpose=data.purpose,
        purpose_note=data.purpose_note,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        status=L.REQUESTED.value,
        requested_by=actor.label,
    )
    session.add(loan)
    session.flush()
    # The request holds the period at once: of two overlapping requests only one is made.
    service.book(session, actor, item, data.starts_at, data.ends_at, kind="loan", loan_id=loan.id)
    session.add(
        EquipmentLoanEvent(
            loan_id=loan.id,
            from_status=None,
            to_status=L.REQUESTED.value,
            actor_user_id=actor.user_id,
            actor_label=actor.label,
            notes=data.purpose_note,
        )
    )
    session.flush()
    audit.append(
        session,
        actor,
        "loan.request",
        "equipment_loan",
        loan.id,
        unit_id=item.unit_id,
        after=_loan_snapshot(loan),
    )
    borrower = session.get(Unit, actor.unit_id)
    notify_unit(
        session,
        item.unit_id,
        loan,
        "loan.requested",
        f"Loan request: {item.model} ({item.ref})",
        f"{borrower.code if borrower else 'A unit'} asks for it from "
        f"{loan.starts_at:%d %b %Y} to {loan.ends_at:%d %b %Y} ({loan.purpose}).",
    )
    return loan


def step(
    session: Session,
    actor: Principal,
    loan_id: int,
    data: schemas.LoanStep,
    *,
    photo: tuple[str, str, bytes] | None = None,
) -> EquipmentLoan:
    """Move a loan one step; invalid moves answer 409 naming the allowed ones."""
    loan = _visible_loan(session, actor, loan_id)
    try:
        target = L(data.to)
    except ValueError:
        raise Invalid(f"'{data.to}' is not a loan state.") from None
    current = L(loan.status)
    check("loan", current, target, LOAN_TRANSITIONS)  # type: ignore[arg-type]  # StrEnum keys
    if target.value not in allowed_steps(actor, loan):
        side = STEP_SIDE.get(target, "owner")
        raise Forbidden(
            f"Moving a loan to {target} is for the "
            f"{'lending' if side == 'owner' else 'borrowing'} unit ({_step_permission(target)})."
        )
    if target in HANDOVERS and target is not L.REPAIR and not data.condition:
        raise Invalid(f"Record the condition of the item at this handover ({LABELS[target]}).")
    item = session.get(EquipmentItem, loan.item_id)
    assert item is not None
    before = _loan_snapshot(loan)
    now = utcnow()
    loan.status = target.value
    if target in (L.RESERVED, L.DECLINED):
        loan.decided_by = actor.label
        loan.decided_at = now
        loan.decline_reason = data.reason if target is L.DECLINED else ""
    held = repo.loan_reservation(session, loan.id)
    if held is not None:
        if target in (L.DECLINED, L.CANCELLED, L.EXPIRED, L.LOST, L.DESTROYED):
            held.active = False
        elif target in (L.CHECKED, L.REPAIR) and now < held.ends_at:
            # Back early: the rest of the period is free again.
            if now > held.starts_at:
                held.ends_at = now
            else:
                held.active = False
    if target is L.LOST:
        item.status = "lost"
    elif target is L.DESTROYED:
        item.status = "destroyed"
    elif target is L.REPAIR:
        item.status = "repair"
    elif target is L.CHECKED and item.status == "repair":
        item.status = "available"
    event = EquipmentLoanEvent(
        loan_id=loan.id,
        occurred_at=now,
        from_status=current.value,
        to_status=target.value,
        actor_user_id=actor.user_id,
        actor_label=actor.label,
        condition=data.condition,
        notes=data.reason if target is L.DECLINED and not data.notes else data.notes,
        signed_owner=data.signed_owner,
        signed_borrower=data.signed_borrower,
    )
    session.add(event)
    session.flush()
    if photo is not None:
        attach_photo(session, event, *photo)
    audit.append(
        session,
        actor,
        f"loan.{target.value.lower()}",
        "equipment_loan",
        loan.id,
        unit_id=loan.owner_unit_id,
        before=before,
        after={
            **_loan_snapshot(loan),
            "condition": data.condition,
            "notes": event.notes,
            "signed_owner": data.signed_owner,
            "signed_borrower": data.signed_borrower,
        },
    )
    acting = policy.loan_side(actor, loan)
    other = loan.borrower_unit_id if acting == "owner" else loan.owner_unit_id
    recipients = (
        [other] if acting in ("owner", "borrower") else [loan.owner_unit_id, loan.borrower_unit_id]
    )
    for unit_id in recipients:
        notify_unit(
            session,
            unit_id,
            loan,
            f"loan.{target.value.lower()}",
            f"Loan {LABELS[target].lower()}: {item.model} ({item.ref})",
            data.reason or data.notes,
        )
    return loan


_MAGIC = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def attach_photo(
    session: Session, event: EquipmentLoanEvent, filename: str, content_type: str, data: bytes
) -> EquipmentPhoto:
    """A JPEG or PNG up to ``ATLASLINK_EQUIPMENT_PHOTO_MAX_BYTES``, kept in the database."""
    limit = get_settings().equipment_photo_max_bytes
    if len(data) > limit:
        raise TooLarge(f"A photo may be at most {limit // 1024} KiB.")
    kind = next((t for magic, t in _MAGIC.items() if data.startswith(magic)), None)
    if kind is None:
        raise Invalid("A photo must be a JPEG or PNG image.")
    photo = EquipmentPhoto(
        event_id=event.id, content_type=kind, filename=filename[:200], size=len(data), data=data
    )
    session.add(photo)
    session.flush()
    return photo


def add_photo(
    session: Session, actor: Principal, loan_id: int, event_id: int, upload: tuple[str, str, bytes]
) -> EquipmentPhoto:
    loan = _visible_loan(session, actor, loan_id)
    actor.require(Permission.LOANS_HANDOVER)
    event = session.get(EquipmentLoanEvent, event_id)
    if event is None or event.loan_id != loan.id:
        raise NotFound(f"There is no record {event_id} of this loan.")
    photo = attach_photo(session, event, *upload)
    audit.append(
        session,
        actor,
        "loan.photo",
        "equipment_loan",
        loan.id,
        unit_id=loan.owner_unit_id,
        after={"event": event.id, "photo": photo.id, "size": photo.size},
    )
    return photo


def get_photo(session: Session, viewer: Principal, photo_id: int) -> EquipmentPhoto:
    photo = session.get(EquipmentPhoto, photo_id)
    event = session.get(EquipmentLoanEvent, photo.event_id) if photo else None
    if photo is None or event is None:
        raise NotFound(f"There is no photo {photo_id}.")
    _visible_loan(session, viewer, event.loan_id)
    return photo


def _events(session: Session, loan_id: int) -> list[tuple[EquipmentLoanEvent, list[int]]]:
    events = list(
        session.scalars(
            select(EquipmentLoanEvent)
            .where(EquipmentLoanEvent.loan_id == loan_id)
            .order_by(EquipmentLoanEvent.id)
        )
    )
    photos: dict[int, list[int]] = {}
    if events:
        for pid, eid in session.execute(
            select(EquipmentPhoto.id, EquipmentPhoto.event_id)
            .where(EquipmentPhoto.event_id.in_([e.id for e in events]))
            .order_by(EquipmentPhoto.id)
        ).tuples():
            photos.setdefault(eid, []).append(pid)
    return [(e, photos.get(e.id, [])) for e in events]


def get_loan(session: Session, viewer: Principal, loan_id: int) -> schemas.Loan:
    loan = _visible_loan(session, viewer, loan_id)
    found = repo.item_with_refs(session, loan.item_id)
    assert found is not None
    item, _, category = found
    units = repo.units_by_ids(session, [loan.owner_unit_id, loan.borrower_unit_id])
    return views.loan_out(
        loan,
        item,
        category,
        units,
        events=_events(session, loan.id),
        actions=allowed_steps(viewer, loan),
    )


def list_loans(
    session: Session,
    viewer: Principal,
    *,
    side: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict[str, Any]:
    offset, limit = page_bounds(page, per_page)
    loans, total = repo.loans_page(
        session, viewer, side=side, status=status, offset=offset, limit=limit
    )
    items = {
        i.id: (i, c)
        for i, c in session.execute(
            select(EquipmentItem, EquipmentCategory)
            .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
            .where(EquipmentItem.id.in_({loan.item_id for loan in loans}))
        ).tuples()
    }
    units = repo.units_by_ids(
        session, sorted({u for loan in loans for u in (loan.owner_unit_id, loan.borrower_unit_id)})
    )
    out = [
        views.loan_out(
            loan,
            items[loan.item_id][0],
            items[loan.item_id][1],
            units,
            actions=allowed_steps(viewer, loan),
        )
        for loan in loans
    ]
    return page_dict(out, total, page, per_page)


def is_ended(loan: EquipmentLoan) -> bool:
    return L(loan.status) in ENDED
