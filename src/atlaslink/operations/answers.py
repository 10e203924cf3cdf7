"""Addressing units, their acknowledgements and answers, and the requester's decisions on offers.

Concurrency: the request row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite
serialises writers with ``BEGIN IMMEDIATE``) before anything that changes coverage, and offers
carry an optimistic ``lock_version``, so two people accepting the same offer at once get one
success and one 409.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound
from atlaslink.models import (
    Arrangement,
    AssistanceRequest,
    Offer,
    OfferLine,
    RequestAddressee,
    RequestGrant,
    Unit,
    utcnow,
)
from atlaslink.operations import geography, matching, offer_equipment, schemas, service, timeline
from atlaslink.operations.policy import get_visible, require_requester
from atlaslink.operations.states import (
    ADDRESSEE_TRANSITIONS,
    ENDED,
    OFFER_TRANSITIONS,
    PENDING_OFFER,
    AddresseeStatus,
    OfferStatus,
    RequestKind,
    RequestStatus,
    check,
)

A = AddresseeStatus
OS = OfferStatus
R = RequestStatus

RING_LABELS = {1: "neighbouring countries", 2: "region", 3: "whole network"}

ADDRESSABLE = frozenset({R.SUBMITTED, R.OPEN, R.PARTIALLY_COVERED, R.COVERED, R.ACTIVE, R.ALERTED})


def address(
    session: Session, p: Principal, request_id: int, body: schemas.AddressBody
) -> list[RequestAddressee]:
    req, inv = get_visible(session, p, request_id, for_update=True)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    if req.status not in ADDRESSABLE:
        raise Conflict(f"A request in state {req.status} cannot be sent to units.")
    already = set(
        session.scalars(
            select(RequestAddressee.unit_id).where(RequestAddressee.request_id == req.id)
        )
    )
    ctx = matching.load_legal_context(session, req)
    if body.next_ring:
        if body.unit_ids:
            raise Invalid("Choose units or the next ring, not both.")
        units, ring = _next_ring(session, req, already, ctx)
        if not units:
            raise Conflict("Every unit of the network that may be asked has been addressed.")
    else:
        if not body.unit_ids:
            raise Invalid(
                "Choose at least one unit.", errors=[{"field": "unit_ids", "message": "empty"}]
            )
        units = list(session.scalars(select(Unit).where(Unit.id.in_(body.unit_ids))))
        missing = set(body.unit_ids) - {u.id for u in units}
        if missing:
            raise Invalid(
                "Some units do not exist.",
                errors=[{"field": "unit_ids", "message": f"no unit {i}"} for i in sorted(missing)],
            )
        problems = []
        for u in units:
            if u.country_iso2 == req.requesting_country:
                problems.append(
                    {
                        "field": "unit_ids",
                        "message": f"{u.code}: a unit of the "
                        "requesting country is not asked through the network",
                    }
                )
            elif u.id in already:
                problems.append({"field": "unit_ids", "message": f"{u.code}: already addressed"})
            else:
                for reason in matching.legal_fit(ctx, u.country_iso2, None):
                    problems.append({"field": "unit_ids", "message": f"{u.code}: {reason}"})
        if problems:
            raise Invalid("Some units cannot be addressed.", errors=problems)
        ring = 0
    now = utcnow()
    due = now + timedelta(minutes=req.ack_minutes)
    made = []
    for u in sorted(units, key=lambda x: x.code):
        a = RequestAddressee(
            request_id=req.id,
            unit_id=u.id,
            ring=ring,
            status=A.AWAITING_ACK,
            addressed_at=now,
            addressed_by_label=p.label,
            ack_due_at=due,
            next_check_at=due,
            seen_version=req.version,
        )
        session.add(a)
        made.append(a)
    session.flush()
    if req.status == R.SUBMITTED:
        service._move(session, p, req, R.OPEN, "Request open for answers", kind="request.opened")
        req.opened_at = now
    codes = ", ".join(u.code for u in sorted(units, key=lambda x: x.code))
    ring_text = f" (ring {ring}: {RING_LABELS.get(ring, ring)})" if ring else ""
    timeline.record(
        session,
        p,
        req,
        "request.addressed",
        f"Sent to {codes}{ring_text}",
        data={"unit_ids": [u.id for u in units], "ring": ring},
    )
    kind_word = "Pre-alert" if req.kind == RequestKind.PRE_ALERT else "Request for assistance"
    timeline.notify_users(
        session,
        timeline.unit_responders(session, [u.id for u in units]),
        req,
        "request.addressed",
        f"{kind_word} {req.reference}: {req.title}",
        f"From {req.requesting_country}. Acknowledge by {due:%H:%M} UTC.",
        urgent=True,
    )
    return made


def _next_ring(
    session: Session, req: AssistanceRequest, already: set[int], ctx: matching.LegalContext
) -> tuple[list[Unit], int]:
    current = (
        session.scalar(
            select(func.max(RequestAddressee.ring)).where(RequestAddressee.request_id == req.id)
        )
        or 0
    )
    units = list(session.scalars(select(Unit).where(Unit.country_iso2 != req.requesting_country)))
    for ring in range(current + 1, 4):
        chosen = [
            u
            for u in units
            if u.id not in already
            and geography.ring_of(req.requesting_country, u.country_iso2) <= ring
            and not matching.legal_fit(ctx, u.country_iso2, None)
        ]
        if chosen:
            return chosen, ring
    return [], current


def _own_addressee(
    session: Session, p: Principal, request_id: int
) -> tuple[AssistanceRequest, RequestAddressee]:
    req, inv = get_visible(session, p, request_id, for_update=True)
    p.require(Permission.REQUESTS_RESPOND)
    if inv.addressee_id is None:
        raise Forbidden("Your unit was not asked for this request.")
    a = session.get(RequestAddressee, inv.addressee_id, with_for_update=True)
    assert a is not None
    return req, a


def _set_addressee(a: RequestAddressee, target: AddresseeStatus) -> None:
    if a.status == target:
        return
    check("answer", a.status, target, ADDRESSEE_TRANSITIONS)  # type: ignore[arg-type]
    a.status = target


def acknowledge(session: Session, p: Principal, request_id: int) -> RequestAddressee:
    req, a = _own_addressee(session, p, request_id)
    if req.status in ENDED:
        raise Conflict(f"The request is {req.status}.")
    if a.status not in (A.AWAITING_ACK, A.NO_RESPONSE):
        raise Conflict(f"Already acknowledged ({a.status}).")
    _set_addressee(a, A.ACKNOWLEDGED)
    a.acknowledged_at = utcnow()
    a.acknowledged_by_label = p.label
    a.next_check_at = None
    a.seen_version = req.version
    session.flush()
    unit = session.get(Unit, a.unit_id)
    timeline.record(
        session,
        p,
        req,
        "addressee.acknowledged",
        f"{unit.code if unit else a.unit_id} acknowledged (version {req.version})",
        unit_id=a.unit_id,
        object_type="addressee",
        object_id=a.id,
    )
    return a


def answer(
    session: Session, p: Principal, request_id: int, body: schemas.AnswerBody
) -> tuple[RequestAddressee, Offer | None]:
    req, a = _own_addressee(session, p, request_id)
    if req.kind == RequestKind.PRE_ALERT:
        raise Conflict(
            "A pre-alert is acknowledged, not answered; answer the request that follows."
        )
    service.require_live(req)
    # One open offer per unit: a second answer (a colleague at the same desk answering at the
    # same moment, or a change of mind) would otherwise double what the unit offers, or leave
    # an open offer behind a refusal. The request row is locked, so this check is race-free.
    open_offer = session.scalar(
        select(Offer.id).where(
            Offer.request_id == req.id,
            Offer.unit_id == a.unit_id,
            Offer.status.in_(PENDING_OFFER),
        )
    )
    if open_offer is not None:
        raise Conflict(
            f"Your unit already has an open offer on this request (offer {open_offer}); "
            "withdraw it first to answer differently."
        )
    unit = session.get(Unit, a.unit_id)
    code = unit.code if unit else str(a.unit_id)
    now = utcnow()
    offer = None
    items, until, item_problems = offer_equipment.check_offered(session, a.unit_id, body, now)
    if item_problems and body.answer not in ("accept", "counter_propose"):
        raise Invalid("The answer is not valid.", errors=item_problems)
    if body.answer in ("refuse", "unable_to_fill"):
        if body.answer == "refuse" and not body.reason:
            raise Invalid(
                "Say why the unit refuses.", errors=[{"field": "reason", "message": "required"}]
            )
        target = A.REFUSED if body.answer == "refuse" else A.UNABLE_TO_FILL
        _set_addressee(a, target)
        a.reason = body.reason
        word = "refused" if target == A.REFUSED else "is unable to fill the request"
        summary = f"{code} {word}" + (f": {body.reason}" if body.reason else "")
        kind = f"answer.{body.answer}"
    else:
        lines = {line.line_no: line for line in service.lines_of(session, req)}
        problems = []
        seen = set()
        for ol in body.lines:
            if ol.line_no not in lines:
                problems.append({"field": "lines", "message": f"no open line {ol.line_no}"})
            if ol.line_no in seen:
                problems.append({"field": "lines", "message": f"line {ol.line_no} twice"})
            seen.add(ol.line_no)
        if body.answer == "accept" and not body.lines:
            problems.append({"field": "lines", "message": "offer at least one line"})
        if body.answer == "counter_propose" and not (body.package or body.nature):
            problems.append(
                {"field": "package", "message": "describe the different assistance proposed"}
            )
        if body.eta_at is not None and body.eta_at < now - timedelta(minutes=5):
            problems.append({"field": "eta_at", "message": "the ETA is in the past"})
        problems += item_problems
        if problems:
            raise Invalid("The offer is not valid.", errors=problems)
        target = A.ACCEPTED if body.answer == "accept" else A.COUNTER_PROPOSED
        _set_addressee(a, target)
        a.reason = body.reason
        offer = Offer(
            request_id=req.id,
            addressee_id=a.id,
            unit_id=a.unit_id,
            request_version=req.version,
            kind="offer" if body.answer == "accept" else "counter_proposal",
            status=OS.OFFERED,
            nature=list(body.nature) or list(req.nature),
            package=body.package,
            eta_at=body.eta_at,
            conditions=body.conditions,
            costs=body.costs,
            created_by_label=p.label,
            status_changed_at=now,
        )
        session.add(offer)
        session.flush()
        for ol in body.lines:
            session.add(
                OfferLine(
                    offer_id=offer.id, request_line_id=lines[ol.line_no].id, quantity=ol.quantity
                )
            )
        session.flush()
        qty = ", ".join(f"line {ol.line_no}: {ol.quantity}" for ol in body.lines)
        summary = (
            f"{code} offers assistance ({qty})"
            if target == A.ACCEPTED
            else f"{code} proposes a different kind of assistance"
        )
        kind = "answer.offer" if target == A.ACCEPTED else "answer.counter_proposal"
    if a.acknowledged_at is None:
        a.acknowledged_at = now
        a.acknowledged_by_label = p.label
    a.answered_at = now
    a.next_check_at = None
    a.seen_version = req.version
    session.flush()
    timeline.record(
        session,
        p,
        req,
        kind,
        summary,
        unit_id=a.unit_id,
        offer_id=offer.id if offer else None,
        object_type="offer" if offer else "addressee",
        object_id=offer.id if offer else a.id,
        after=body.model_dump(mode="json"),
    )
    timeline.notify_users(
        session,
        timeline.requesting_side(session, req),
        req,
        kind,
        f"{req.reference}: {summary}",
    )
    if offer is not None:
        offer_equipment.attach(session, p, req, offer, items, until)
    service.refresh_status(session, p, req)
    return a, offer


def _offer_for_update(
    session: Session, p: Principal, request_id: int, offer_id: int
) -> tuple[AssistanceRequest, Offer, bool, bool]:
    """Returns the request, the offer, whether the caller is on the requesting side and whether
    the caller is of the offering unit."""
    req, inv = get_visible(session, p, request_id, for_update=True)
    offer = session.get(Offer, offer_id, with_for_update=True)
    if offer is None or offer.request_id != req.id:
        raise NotFound(f"No offer {offer_id} on this request.")
    own = p.unit_id is not None and p.unit_id == offer.unit_id
    if not (inv.requester or own):
        raise NotFound(f"No offer {offer_id} on this request.")
    return req, offer, inv.requester, own


def _set_offer(session: Session, offer: Offer, target: OfferStatus) -> str:
    before = offer.status
    check("offer", offer.status, target, OFFER_TRANSITIONS)  # type: ignore[arg-type]
    offer.status = target
    offer.status_changed_at = utcnow()
    return before


def accept_offer(
    session: Session, p: Principal, request_id: int, offer_id: int, body: schemas.AcceptBody
) -> Offer:
    req, offer, requester, _ = _offer_for_update(session, p, request_id, offer_id)
    if not requester:
        raise Forbidden("Only the requesting country accepts offers.")
    p.require(Permission.REQUESTS_CREATE)
    service.require_live(req)
    if body.expected_lock is not None and body.expected_lock != offer.lock_version:
        raise Conflict("The offer changed since you looked at it; reload and decide again.")
    if offer.status != OS.OFFERED:
        raise Conflict(f"The offer is already {offer.status}.")
    # The offered equipment first: a clash refuses the acceptance (409) before anything else
    # is written, and the whole transaction is rolled back.
    offer_equipment.reserve(session, p, req, offer)
    lines = {
        ol.request_line_id: ol
        for ol in session.scalars(select(OfferLine).where(OfferLine.offer_id == offer.id))
    }
    numbers = {
        line.line_no: line.id for line in service.lines_of(session, req, include_removed=True)
    }
    if body.lines:
        problems = []
        took: dict[int, int] = {}
        for al in body.lines:
            line_id = numbers.get(al.line_no)
            if line_id is None or line_id not in lines:
                problems.append({"field": "lines", "message": f"line {al.line_no} not offered"})
            elif al.quantity > lines[line_id].quantity:
                problems.append(
                    {
                        "field": "lines",
                        "message": f"line {al.line_no}: only {lines[line_id].quantity} offered",
                    }
                )
            else:
                took[line_id] = al.quantity
        if problems:
            raise Invalid("The acceptance is not valid.", errors=problems)
        for line_id, ol in lines.items():
            ol.accepted_quantity = took.get(line_id, 0)
    else:
        for ol in lines.values():
            ol.accepted_quantity = ol.quantity
    before = _set_offer(session, offer, OS.ACCEPTED)
    offer.accepted_at = utcnow()
    settings = get_settings()
    session.add(
        Arrangement(
            offer_id=offer.id,
            command=settings.default_command,
            costs=settings.default_costs,
            liability=settings.default_liability,
            working_language="en",
        )
    )
    session.flush()
    unit = session.get(Unit, offer.unit_id)
    partial = any((ol.accepted_quantity or 0) < ol.quantity for ol in lines.values())
    timeline.record(
        session,
        p,
        req,
        "offer.accepted",
        f"Offer of {unit.code if unit else offer.unit_id} accepted"
        + (" in part" if partial else ""),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        object_type="offer",
        object_id=offer.id,
        before={"status": before},
        after={"status": offer.status},
        data={"partial": partial},
    )
    timeline.notify_users(
        session,
        timeline.unit_responders(session, [offer.unit_id]),
        req,
        "offer.accepted",
        f"{req.reference}: your offer was accepted" + (" in part" if partial else ""),
        "Confirm the arrangements record to agree the deployment.",
    )
    service.refresh_status(session, p, req)
    return offer


def decline_offer(
    session: Session, p: Principal, request_id: int, offer_id: int, reason: str
) -> Offer:
    req, offer, requester, _ = _offer_for_update(session, p, request_id, offer_id)
    if not requester:
        raise Forbidden("Only the requesting country declines offers.")
    p.require(Permission.REQUESTS_CREATE)
    before = _set_offer(session, offer, OS.DECLINED)
    offer.reason = reason
    session.flush()
    offer_equipment.release(session, p, req, offer, "offer declined")
    timeline.record(
        session,
        p,
        req,
        "offer.declined",
        "Offer declined" + (f": {reason}" if reason else ""),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        object_type="offer",
        object_id=offer.id,
        before={"status": before},
        after={"status": offer.status},
    )
    timeline.notify_users(
        session,
        timeline.unit_responders(session, [offer.unit_id]),
        req,
        "offer.declined",
        f"{req.reference}: your offer was declined",
        reason,
    )
    service.refresh_status(session, p, req)
    return offer


def withdraw_offer(
    session: Session, p: Principal, request_id: int, offer_id: int, reason: str
) -> Offer:
    req, offer, _, own = _offer_for_update(session, p, request_id, offer_id)
    if not own:
        raise Forbidden("Only the offering unit withdraws its offer.")
    p.require(Permission.REQUESTS_RESPOND)
    if not reason:
        raise Invalid(
            "Say why the offer is withdrawn.", errors=[{"field": "reason", "message": "required"}]
        )
    before = _set_offer(session, offer, OS.WITHDRAWN)
    offer.reason = reason
    session.flush()
    offer_equipment.release(session, p, req, offer, "offer withdrawn")
    timeline.record(
        session,
        p,
        req,
        "offer.withdrawn",
        f"Offer withdrawn: {reason}",
        unit_id=offer.unit_id,
        offer_id=offer.id,
        object_type="offer",
        object_id=offer.id,
        before={"status": before},
        after={"status": offer.status},
    )
    timeline.notify_users(
        session,
        timeline.requesting_side(session, req),
        req,
        "offer.withdrawn",
        f"{req.reference}: an offer was withdrawn",
        reason,
        urgent=before != OS.OFFERED,
    )
    service.refresh_status(session, p, req)
    return offer


def grant(session: Session, p: Principal, request_id: int, body: schemas.GrantBody) -> RequestGrant:
    """The requesting side (or a supervising support office) shares the request further."""
    req, inv = get_visible(session, p, request_id, for_update=True)
    if not (inv.requester or inv.supervisor):
        raise Forbidden("Only the requesting country shares a request further.")
    if body.grantee == "country" and not body.country:
        raise Invalid("Name the country.", errors=[{"field": "country", "message": "required"}])
    if body.grantee == "unit" and body.unit_id is None:
        raise Invalid("Name the unit.", errors=[{"field": "unit_id", "message": "required"}])
    if body.grantee == "unit" and session.get(Unit, body.unit_id) is None:
        raise Invalid("No such unit.", errors=[{"field": "unit_id", "message": "unknown"}])
    g = RequestGrant(
        request_id=req.id,
        grantee=body.grantee,
        country_iso2=body.country.upper() if body.grantee == "country" and body.country else None,
        unit_id=body.unit_id if body.grantee == "unit" else None,
        granted_by_label=p.label,
    )
    session.add(g)
    session.flush()
    who = body.grantee.replace("_", " ")
    if g.country_iso2:
        who += f" {g.country_iso2}"
    if g.unit_id:
        who += f" {g.unit_id}"
    timeline.record(
        session,
        p,
        req,
        "request.granted",
        f"Visibility granted to {who}",
        object_type="grant",
        object_id=g.id,
    )
    return g
