"""From an accepted offer to a team back home: the arrangements record both sides confirm, the
movement checklist (manifest with host approval per item, convoy and border notifications,
overflight and landing clearances) and the deployment steps."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound
from atlaslink.models import Arrangement, ManifestItem, MovementRecord, Offer, utcnow
from atlaslink.operations import offer_equipment, schemas, service, timeline
from atlaslink.operations.answers import _offer_for_update, _set_offer
from atlaslink.operations.states import (
    ASSISTING_STEPS,
    MANIFEST_OPEN,
    REPORTS_STATUS,
    REQUESTER_STEPS,
    OfferStatus,
)

OS = OfferStatus


def _arrangement(session: Session, offer: Offer) -> Arrangement:
    arr = session.scalar(
        select(Arrangement).where(Arrangement.offer_id == offer.id).with_for_update()
    )
    if arr is None:
        raise Conflict("This offer has no arrangements record (it was not accepted).")
    return arr


def update_arrangement(
    session: Session, p: Principal, request_id: int, offer_id: int, body: schemas.ArrangementBody
) -> Arrangement:
    req, offer, requester, _own = _offer_for_update(session, p, request_id, offer_id)
    p.require(Permission.REQUESTS_CREATE if requester else Permission.REQUESTS_RESPOND)
    if offer.status != OS.ACCEPTED:
        raise Conflict(
            f"The arrangements can change only before both sides agree ({offer.status})."
        )
    arr = _arrangement(session, offer)
    before = {k: getattr(arr, k) for k in body.model_dump()}
    for k, v in body.model_dump().items():
        setattr(arr, k, v)
    arr.revision += 1
    # Both sides confirm what is written now, not what was written before.
    arr.requester_confirmed_at = arr.assisting_confirmed_at = None
    arr.requester_confirmed_by = arr.assisting_confirmed_by = None
    session.flush()
    timeline.record(
        session,
        p,
        req,
        "arrangement.edited",
        f"Arrangements with {timeline.unit_code(session, offer.unit_id)} edited "
        f"(revision {arr.revision})",
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        object_type="arrangement",
        object_id=arr.id,
        before=before,
        after=body.model_dump(),
    )
    return arr


def confirm_arrangement(
    session: Session, p: Principal, request_id: int, offer_id: int, revision: int
) -> Arrangement:
    req, offer, requester, own = _offer_for_update(session, p, request_id, offer_id)
    p.require(Permission.REQUESTS_CREATE if requester else Permission.REQUESTS_RESPOND)
    if offer.status != OS.ACCEPTED:
        raise Conflict(f"The offer is {offer.status}; only an accepted offer is agreed.")
    arr = _arrangement(session, offer)
    if revision != arr.revision:
        raise Conflict(
            f"You confirmed revision {revision}, but the arrangements are at revision "
            f"{arr.revision}. Read them again."
        )
    now = utcnow()
    side = "requesting" if requester else "assisting"
    if requester:
        arr.requester_confirmed_at, arr.requester_confirmed_by = now, p.label
    if own:
        arr.assisting_confirmed_at, arr.assisting_confirmed_by = now, p.label
    session.flush()
    code = timeline.unit_code(session, offer.unit_id)
    timeline.record(
        session,
        p,
        req,
        "arrangement.confirmed",
        f"Arrangements with {code} confirmed by the {side} side",
        unit_id=offer.unit_id,
        offer_id=offer.id,
        object_type="arrangement",
        object_id=arr.id,
    )
    if arr.requester_confirmed_at and arr.assisting_confirmed_at:
        before = _set_offer(session, offer, OS.AGREED)
        offer.agreed_at = now
        session.flush()
        timeline.record(
            session,
            p,
            req,
            "offer.agreed",
            f"Deployment of {code} agreed by both sides",
            unit_id=offer.unit_id,
            offer_id=offer.id,
            object_type="offer",
            object_id=offer.id,
            before={"status": before},
            after={"status": offer.status},
            pinned=True,
        )
        timeline.notify_users(
            session,
            timeline.unit_responders(session, [offer.unit_id])
            + timeline.requesting_side(session, req),
            req,
            "offer.agreed",
            f"{req.reference}: deployment of {code} agreed",
        )
    return arr


def add_manifest_item(
    session: Session, p: Principal, request_id: int, offer_id: int, body: schemas.ManifestItemIn
) -> ManifestItem:
    req, offer, _, own = _offer_for_update(session, p, request_id, offer_id)
    if not own:
        raise Forbidden("The assisting unit declares what it brings.")
    p.require(Permission.DEPLOYMENTS_REPORT)
    if offer.status not in MANIFEST_OPEN:
        raise Conflict(f"The manifest is closed once the team is {offer.status}.")
    item = ManifestItem(offer_id=offer.id, **body.model_dump())
    session.add(item)
    session.flush()
    timeline.record(
        session,
        p,
        req,
        "manifest.declared",
        f"{timeline.unit_code(session, offer.unit_id)} declares "
        f"{item.quantity} x {item.description} ({item.category})",
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        object_type="manifest_item",
        object_id=item.id,
        after=body.model_dump(),
    )
    return item


def decide_manifest_item(
    session: Session,
    p: Principal,
    request_id: int,
    offer_id: int,
    item_id: int,
    body: schemas.ManifestDecision,
) -> ManifestItem:
    req, offer, requester, _ = _offer_for_update(session, p, request_id, offer_id)
    if not requester:
        raise Forbidden("The host (the requesting country) approves or prohibits each item.")
    p.require(Permission.REQUESTS_CREATE)
    item = session.get(ManifestItem, item_id, with_for_update=True)
    if item is None or item.offer_id != offer.id:
        raise NotFound(f"No manifest item {item_id} on this offer.")
    if body.decision == "prohibited" and not body.note:
        raise Invalid(
            "Say why the item is prohibited.", errors=[{"field": "note", "message": "required"}]
        )
    before = item.host_decision
    item.host_decision = body.decision
    item.decision_note = body.note
    item.decided_by = p.label
    item.decided_at = utcnow()
    session.flush()
    timeline.record(
        session,
        p,
        req,
        "manifest.decided",
        f"Host {body.decision} {item.description}" + (f": {body.note}" if body.note else ""),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        object_type="manifest_item",
        object_id=item.id,
        before={"host_decision": before},
        after={"host_decision": body.decision},
    )
    return item


def add_movement(
    session: Session, p: Principal, request_id: int, offer_id: int, body: schemas.MovementIn
) -> MovementRecord:
    req, offer, requester, _own = _offer_for_update(session, p, request_id, offer_id)
    p.require(Permission.REQUESTS_CREATE if requester else Permission.DEPLOYMENTS_REPORT)
    if body.valid_from and body.valid_to and body.valid_to <= body.valid_from:
        raise Invalid(
            "The validity ends before it starts.",
            errors=[{"field": "valid_to", "message": "must be after valid_from"}],
        )
    if (
        body.kind in ("overflight_clearance", "landing_clearance")
        and body.status == "granted"
        and not body.reference
    ):
        raise Invalid(
            "A granted clearance needs its reference.",
            errors=[{"field": "reference", "message": "required"}],
        )
    rec = MovementRecord(
        offer_id=offer.id,
        kind=body.kind,
        country_iso2=body.country.upper(),
        reference=body.reference,
        route=body.route,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        status=body.status,
        note=body.note,
        recorded_by=p.label,
    )
    session.add(rec)
    session.flush()
    timeline.record(
        session,
        p,
        req,
        "movement.recorded",
        f"{body.kind.replace('_', ' ').capitalize()} ({rec.country_iso2}) {body.status}"
        + (f", ref. {body.reference}" if body.reference else ""),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        object_type="movement",
        object_id=rec.id,
        after=body.model_dump(mode="json"),
    )
    return rec


def set_status(
    session: Session, p: Principal, request_id: int, offer_id: int, body: schemas.StatusBody
) -> Offer:
    req, offer, requester, own = _offer_for_update(session, p, request_id, offer_id)
    target = OS(body.status)
    allowed = (ASSISTING_STEPS if own else frozenset()) | (
        REQUESTER_STEPS if requester else frozenset()
    )
    if target not in allowed:
        raise Forbidden(f"Your side does not report {target}.")
    p.require(Permission.DEPLOYMENTS_REPORT if own else Permission.REQUESTS_CREATE)
    if target == OS.EN_ROUTE:
        pending = session.scalars(
            select(ManifestItem.description).where(
                ManifestItem.offer_id == offer.id, ManifestItem.host_decision == "pending"
            )
        ).all()
        if pending:
            raise Conflict(
                "The host has not decided on every manifest item yet: " + ", ".join(pending)
            )
    before = _set_offer(session, offer, target)
    now = utcnow()
    if target == OS.ON_SITE and offer.on_site_at is None:
        offer.on_site_at = now
    if target == OS.HOME:
        offer.home_at = now
    session.flush()
    if target == OS.HOME:
        offer_equipment.release(session, p, req, offer, "team home")
    code = timeline.unit_code(session, offer.unit_id)
    timeline.record(
        session,
        p,
        req,
        f"deployment.{target.lower()}",
        f"{code}: {target.replace('_', ' ').lower()}" + (f" — {body.note}" if body.note else ""),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        object_type="offer",
        object_id=offer.id,
        data={"note": body.note},
        before={"status": before},
        after={"status": target, "note": body.note},
        pinned=target == OS.ON_SITE,
    )
    other = (
        timeline.requesting_side(session, req)
        if own
        else timeline.unit_responders(session, [offer.unit_id])
    )
    timeline.notify_users(
        session,
        other,
        req,
        "deployment.status",
        f"{req.reference}: {code} {target.lower()}",
        body.note,
    )
    service.refresh_status(session, p, req)
    return offer


def ask_status(session: Session, p: Principal, request_id: int, offer_id: int) -> Offer:
    """The requesting side asks a committed team for a status report. It goes out as an
    EDXL-RM RequestResourceDeploymentStatus to the parties' systems; the unit's system
    answers with a ReportResourceDeploymentStatus (a platform unit is told on the platform)."""
    req, offer, requester, _own = _offer_for_update(session, p, request_id, offer_id)
    if not requester:
        raise Forbidden("The requesting side asks a team for its status.")
    p.require(Permission.REQUESTS_CREATE)
    if offer.status not in REPORTS_STATUS:
        raise Conflict(f"A team that is {offer.status} has no deployment status to report.")
    code = timeline.unit_code(session, offer.unit_id)
    timeline.record(
        session,
        p,
        req,
        "deployment.status_asked",
        f"Status report asked of {code} ({offer.status})",
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        object_type="offer",
        object_id=offer.id,
    )
    timeline.notify_users(
        session,
        timeline.unit_responders(session, [offer.unit_id]),
        req,
        "deployment.status_asked",
        f"{req.reference}: the requesting side asks {code} for a status report",
    )
    return offer


def confirm_status(
    session: Session, p: Principal, request_id: int, offer_id: int, note: str
) -> Offer:
    """A report of the step the team is already at (an answer to a status request): recorded
    on the timeline, nothing moves."""
    req, offer, requester, own = _offer_for_update(session, p, request_id, offer_id)
    if not (own or requester):
        raise Forbidden("Only the two parties report a team's status.")
    p.require(Permission.DEPLOYMENTS_REPORT if own else Permission.REQUESTS_CREATE)
    code = timeline.unit_code(session, offer.unit_id)
    timeline.record(
        session,
        p,
        req,
        "deployment.status_reported",
        f"{code}: still {offer.status.replace('_', ' ').lower()}" + (f" — {note}" if note else ""),
        unit_id=offer.unit_id,
        offer_id=offer.id,
        scope="parties",
        data={"note": note},
        object_type="offer",
        object_id=offer.id,
    )
    return offer


def recall(session: Session, p: Principal, request_id: int, offer_id: int, reason: str) -> Offer:
    """The assisting state may recall its officers at any time (2008/617)."""
    req, offer, _, own = _offer_for_update(session, p, request_id, offer_id)
    if not own:
        raise Forbidden("Only the assisting unit recalls its team.")
    p.require(Permission.DEPLOYMENTS_REPORT)
    if not reason:
        raise Invalid(
            "Say why the team is recalled.", errors=[{"field": "reason", "message": "required"}]
        )
    before = _set_offer(session, offer, OS.RECALLED)
    offer.reason = reason
    offer.recalled_at = utcnow()
    session.flush()
    offer_equipment.release(session, p, req, offer, "team recalled")
    code = timeline.unit_code(session, offer.unit_id)
    timeline.record(
        session,
        p,
        req,
        "deployment.recalled",
        f"{code} recalled its team: {reason}",
        unit_id=offer.unit_id,
        offer_id=offer.id,
        object_type="offer",
        object_id=offer.id,
        before={"status": before},
        after={"status": offer.status},
        pinned=True,
    )
    timeline.notify_users(
        session,
        timeline.requesting_side(session, req),
        req,
        "deployment.recalled",
        f"{req.reference}: {code} recalled its team",
        reason,
        urgent=True,
    )
    service.refresh_status(session, p, req)
    return offer
