"""Assistance requests: pre-alert, draft, national gate, submission, amendment, cancellation,
lapse, stand-down and closing. Services flush, never commit; every change is recorded on the
timeline and in the audit log (``timeline.record``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission, Role
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.errors import Conflict, Forbidden, Invalid
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CapabilityType,
    CountrySettings,
    Offer,
    OfferLine,
    RequestAddressee,
    RequestLine,
    RequestVersion,
    Unit,
    utcnow,
)
from atlaslink.operations import offer_equipment, rules, schemas, timeline, vocab
from atlaslink.operations.policy import Involvement, get_visible, require_requester
from atlaslink.operations.states import (
    ACCEPTS_OFFERS,
    AT_INCIDENT,
    COMMITTED,
    ENDED,
    ENGAGED,
    FINISHED,
    OFFER_ENDED,
    PENDING_OFFER,
    REQUEST_TRANSITIONS,
    AddresseeStatus,
    OfferStatus,
    RequestKind,
    RequestStatus,
    check,
)

R = RequestStatus
OS = OfferStatus


# ------------------------------------------------------------------------------ helpers


def _errors(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"field": f, "message": m} for f, m in pairs]


def _country_settings(session: Session, country: str) -> CountrySettings | None:
    return session.get(CountrySettings, country)


def validate_body(
    session: Session, body: schemas.RequestBody, *, kind: str, country: str, complete: bool
) -> dict[str, CapabilityType]:
    """Check a request's content; ``complete`` adds what a submitted request must state.

    Returns the capability types of the lines by code.
    """
    problems: list[tuple[str, str]] = []
    settings = get_settings()
    max_rank = vocab.CLASSIFICATION_RANK.get(settings.max_classification, 1)
    if vocab.CLASSIFICATION_RANK[body.classification] > max_rank:
        problems.append(
            (
                "classification",
                f"this installation may hold information up to "
                f"{vocab.CLASSIFICATIONS[settings.max_classification]} only",
            )
        )
    if body.handling_code == "H3" and not body.handling_note:
        problems.append(("handling_note", "H3 needs the restrictions written out"))
    if (body.latitude is None) != (body.longitude is None):
        problems.append(("latitude", "give both latitude and longitude, or neither"))
    basis = body.legal_basis
    if basis == "2008/617-art3" and body.crisis_category in vocab.OUTSIDE_2008_617:
        problems.append(
            (
                "legal_basis",
                "mass gatherings, natural disasters and serious accidents are outside "
                "Decision 2008/617: use Prüm Art. 18 or a bilateral agreement",
            )
        )
    if basis == "prum-art18" and body.crisis_category not in vocab.OUTSIDE_2008_617:
        problems.append(
            (
                "legal_basis",
                "Prüm Art. 18 covers mass gatherings, disasters and serious accidents only",
            )
        )
    cs = _country_settings(session, country)
    if basis == "2008/617-art3" and cs is not None and cs.excluded_from_2008_617:
        problems.append(("legal_basis", f"{country} cannot request under Decision 2008/617"))
    if basis == "bilateral":
        if body.bilateral_agreement_id is None:
            problems.append(("bilateral_agreement_id", "name the bilateral agreement"))
        else:
            agreement = session.get(BilateralAgreement, body.bilateral_agreement_id)
            if agreement is None or country not in (agreement.country_a, agreement.country_b):
                problems.append(
                    ("bilateral_agreement_id", f"no bilateral agreement of {country} with this id")
                )
            elif (state := rules.agreement_status(agreement)) != "in_force":
                problems.append(
                    (
                        "bilateral_agreement_id",
                        f"{agreement.name} is not in force "
                        + ("yet" if state == "not_yet" else "any more"),
                    )
                )
    elif body.bilateral_agreement_id is not None:
        problems.append(("bilateral_agreement_id", "only with the legal basis 'bilateral'"))
    codes = {line.capability for line in body.lines}
    types = {
        t.code: t
        for t in session.scalars(
            select(CapabilityType).where(
                CapabilityType.code.in_(codes), CapabilityType.retired_in.is_(None)
            )
        )
    }
    for i, line in enumerate(body.lines, start=1):
        if line.capability not in types:
            problems.append((f"lines[{i}].capability", f"unknown capability {line.capability!r}"))
    if complete and kind == RequestKind.REQUEST:
        if not body.operational_necessity:
            problems.append(("operational_necessity", "a request must state its necessity"))
        if not body.nature:
            problems.append(("nature", "choose equipment, expertise and/or intervention"))
        if basis is None:
            problems.append(("legal_basis", "a request must state its legal basis"))
        if not body.lines:
            problems.append(("lines", "a request needs at least one requested line"))
    if problems:
        raise Invalid("The request is not valid.", errors=_errors(*problems))
    return types


def _apply_body(req: AssistanceRequest, body: schemas.RequestBody) -> None:
    req.exercise = body.exercise
    req.title = body.title
    req.crisis_category = body.crisis_category
    req.location_name = body.location_name
    req.latitude = body.latitude
    req.longitude = body.longitude
    req.nature = list(body.nature)
    req.operational_necessity = body.operational_necessity
    req.legal_basis = body.legal_basis
    req.bilateral_agreement_id = body.bilateral_agreement_id
    req.classification = body.classification
    req.distribution_marking = body.distribution_marking
    req.handling_code = body.handling_code
    req.handling_note = body.handling_note
    req.lapse_at = body.lapse_at


def lines_of(
    session: Session, req: AssistanceRequest, *, include_removed: bool = False
) -> list[RequestLine]:
    stmt = select(RequestLine).where(RequestLine.request_id == req.id)
    if not include_removed:
        stmt = stmt.where(RequestLine.removed_in_version.is_(None))
    return list(session.scalars(stmt.order_by(RequestLine.line_no)))


def snapshot(session: Session, req: AssistanceRequest) -> dict[str, Any]:
    """What the request says now (kept per version and in the audit log)."""
    head = {"kind": req.kind, "status": req.status, "version": req.version}
    body = body_of(session, req).model_dump(mode="json")
    for line, number in zip(
        body["lines"], (x.line_no for x in lines_of(session, req)), strict=True
    ):
        line["line_no"] = number
    return head | body


def _save_lines(
    session: Session,
    req: AssistanceRequest,
    body: schemas.RequestBody,
    types: dict[str, CapabilityType],
    *,
    new_version: int | None,
) -> None:
    """Write the body's lines.

    In a draft the lines are simply replaced (numbered 1..n). In a sent request
    (``new_version``) the body's lines map to the current ones by position: a line that keeps
    its capability and does not lower its level is updated in place (offers against it still
    apply); otherwise the old line stays on record as removed and a new number is issued.
    """
    current = lines_of(session, req)
    if new_version is None:
        for replaced in current:
            session.delete(replaced)
        session.flush()
        for i, line in enumerate(body.lines, start=1):
            session.add(_new_line(req, i, types[line.capability], line))
        session.flush()
        return
    next_no = (
        session.scalar(
            select(func.max(RequestLine.line_no)).where(RequestLine.request_id == req.id)
        )
        or 0
    )
    for i, line in enumerate(body.lines):
        ctype = types[line.capability]
        old = current[i] if i < len(current) else None
        if (
            old is not None
            and old.capability_type_id == ctype.id
            and line.min_level >= old.min_level
        ):
            old.min_level = line.min_level
            old.quantity = line.quantity
            old.needed_by = line.needed_by
            old.note = line.note
            continue
        if old is not None:
            old.removed_in_version = new_version
        next_no += 1
        session.add(_new_line(req, next_no, ctype, line))
    for old in current[len(body.lines) :]:
        old.removed_in_version = new_version
    session.flush()


def _new_line(
    req: AssistanceRequest, number: int, ctype: CapabilityType, line: schemas.LineIn
) -> RequestLine:
    return RequestLine(
        request_id=req.id,
        line_no=number,
        capability_type_id=ctype.id,
        min_level=line.min_level,
        quantity=line.quantity,
        needed_by=line.needed_by,
        note=line.note,
    )


def _requesting_unit(session: Session, p: Principal, unit_id: int | None) -> int | None:
    if p.role in (Role.UNIT_COMMANDER, Role.DUTY_OFFICER):
        if unit_id is not None and unit_id != p.unit_id:
            raise Forbidden("A unit raises requests for itself only.")
        return p.unit_id
    if unit_id is None:
        return None
    unit = session.get(Unit, unit_id)
    if unit is None or unit.country_iso2 != p.country:
        raise Invalid(
            "The requesting unit must be a unit of your country.",
            errors=_errors(("requesting_unit_id", "not a unit of your country")),
        )
    return unit.id


# ------------------------------------------------------------------------------ create


def create_request(
    session: Session, p: Principal, body: schemas.RequestCreate
) -> AssistanceRequest:
    p.require(Permission.REQUESTS_CREATE)
    if p.country is None:
        raise Forbidden("Only people of a member country raise requests.")
    types = validate_body(session, body, kind=body.kind, country=p.country, complete=body.submit)
    settings = get_settings()
    pre_alert = None
    if body.pre_alert_id is not None:
        if body.kind != RequestKind.REQUEST.value:
            raise Invalid("Only a request can follow a pre-alert.")
        pre_alert, _ = get_visible(session, p, body.pre_alert_id, for_update=True)
        if pre_alert.kind != RequestKind.PRE_ALERT or pre_alert.requesting_country != p.country:
            raise Invalid("pre_alert_id must name a pre-alert of your country.")
        if pre_alert.status != R.ALERTED:
            raise Conflict(f"That pre-alert is {pre_alert.status}; it was already followed up.")
    req = AssistanceRequest(
        reference=f"new-{uuid.uuid4().hex[:20]}",
        kind=body.kind,
        status=R.DRAFT,
        version=1,
        requesting_country=p.country,
        requesting_unit_id=_requesting_unit(session, p, body.requesting_unit_id),
        created_by_user_id=p.user_id,
        created_by_label=p.label,
        ack_minutes=body.ack_minutes or settings.ack_minutes,
        max_escalations=settings.max_escalations,
        pre_alert_id=pre_alert.id if pre_alert else None,
        incident_id=pre_alert.incident_id if pre_alert else f"urn:uuid:{uuid.uuid4()}",
    )
    _apply_body(req, body)
    session.add(req)
    session.flush()
    prefix = "PA" if body.kind == RequestKind.PRE_ALERT.value else "AR"
    req.reference = f"{prefix}-{req.created_at:%Y}-{req.id:05d}"
    _save_lines(session, req, body, types, new_version=None)
    timeline.record(
        session,
        p,
        req,
        "request.created",
        f"{'Pre-alert' if body.kind == RequestKind.PRE_ALERT.value else 'Request'} drafted",
        after=snapshot(session, req),
    )
    if body.submit:
        submit(session, p, req.id)
    return req


# ------------------------------------------------------------------------------ lifecycle


def _move(
    session: Session,
    p: Principal,
    req: AssistanceRequest,
    target: RequestStatus,
    summary: str,
    *,
    kind: str,
    reason: str = "",
    pinned: bool = False,
) -> None:
    check("request", req.status, target, REQUEST_TRANSITIONS)  # type: ignore[arg-type]
    before = req.status
    req.status = target
    now = utcnow()
    if target in (R.SUBMITTED, R.ALERTED) and req.submitted_at is None:
        req.submitted_at = now
    if target in ENDED:
        req.closed_at = now
    session.flush()
    timeline.record(
        session,
        p,
        req,
        kind,
        summary + (f": {reason}" if reason else ""),
        before={"status": before},
        after={"status": target, "reason": reason},
        pinned=pinned,
    )


def submit(session: Session, p: Principal, request_id: int) -> AssistanceRequest:
    req, inv = get_visible(session, p, request_id, for_update=True)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    if req.status != R.DRAFT:
        raise Conflict(f"Only a draft can be submitted; this one is {req.status}.")
    body = body_of(session, req)
    validate_body(session, body, kind=req.kind, country=req.requesting_country, complete=True)
    if req.kind == RequestKind.PRE_ALERT:
        req.status = R.ALERTED
        req.submitted_at = utcnow()
        session.flush()
        timeline.record(
            session, p, req, "pre_alert.issued", "Pre-alert issued: a request may come", pinned=True
        )
        _snapshot_version(session, p, req, "issued")
        return req
    cs = _country_settings(session, req.requesting_country)
    if cs is not None and cs.national_approval_required:
        _move(
            session,
            p,
            req,
            R.NATIONAL_APPROVAL,
            "Sent to the national contact point for approval",
            kind="request.national_approval",
        )
        timeline.notify_users(
            session,
            timeline.national_contacts(session, req.requesting_country),
            req,
            "request.approval_needed",
            f"{req.reference} needs national approval",
            req.title,
            urgent=True,
        )
        return req
    _submit_now(session, p, req)
    return req


def _submit_now(session: Session, p: Principal, req: AssistanceRequest) -> None:
    # Lock the pre-alert before the first audit entry takes the audit head: the job locks
    # requests first and the audit head after, so the same order here cannot deadlock with it.
    pre = (
        session.get(AssistanceRequest, req.pre_alert_id, with_for_update=True)
        if req.pre_alert_id is not None
        else None
    )
    _move(session, p, req, R.SUBMITTED, "Request submitted", kind="request.submitted", pinned=True)
    _snapshot_version(session, p, req, "submitted")
    if pre is not None and pre.status == R.ALERTED:
        _move(
            session,
            p,
            pre,
            R.FOLLOWED_UP,
            f"Followed up by request {req.reference}",
            kind="pre_alert.followed_up",
        )


def _snapshot_version(session: Session, p: Principal, req: AssistanceRequest, reason: str) -> None:
    exists = session.scalar(
        select(RequestVersion.id).where(
            RequestVersion.request_id == req.id, RequestVersion.version == req.version
        )
    )
    if exists is None:
        session.add(
            RequestVersion(
                request_id=req.id,
                version=req.version,
                snapshot=snapshot(session, req),
                reason=reason,
                created_by_label=p.label,
            )
        )
        session.flush()


def decide_national(
    session: Session, p: Principal, request_id: int, *, approve: bool, reason: str
) -> AssistanceRequest:
    req, inv = get_visible(session, p, request_id, for_update=True)
    p.require(Permission.REQUESTS_APPROVE)
    if not inv.approver:
        raise Forbidden("Only the national contact point of the requesting country decides.")
    if req.status != R.NATIONAL_APPROVAL:
        raise Conflict(f"The request is {req.status}, not awaiting national approval.")
    if approve:
        _move(
            session,
            p,
            req,
            R.SUBMITTED,
            "National approval given",
            kind="request.approved",
            reason=reason,
        )
        _snapshot_version(session, p, req, "submitted after national approval")
        if req.pre_alert_id is not None:
            pre = session.get(AssistanceRequest, req.pre_alert_id, with_for_update=True)
            if pre is not None and pre.status == R.ALERTED:
                _move(
                    session,
                    p,
                    pre,
                    R.FOLLOWED_UP,
                    f"Followed up by {req.reference}",
                    kind="pre_alert.followed_up",
                )
    else:
        if not reason:
            raise Invalid("Say why the request goes back.", errors=_errors(("reason", "required")))
        _move(
            session,
            p,
            req,
            R.DRAFT,
            "Sent back by the national contact point",
            kind="request.returned",
            reason=reason,
        )
    timeline.notify_users(
        session,
        timeline.requesting_side(session, req),
        req,
        "request.national_decision",
        f"{req.reference}: national approval {'given' if approve else 'refused'}",
        reason,
    )
    return req


def body_of(session: Session, req: AssistanceRequest) -> schemas.RequestBody:
    codes = dict(session.execute(select(CapabilityType.id, CapabilityType.code)).tuples().all())
    return schemas.RequestBody.model_construct(
        exercise=req.exercise,
        title=req.title,
        crisis_category=req.crisis_category,
        location_name=req.location_name,
        latitude=req.latitude,
        longitude=req.longitude,
        nature=list(req.nature),
        operational_necessity=req.operational_necessity,
        legal_basis=req.legal_basis,
        bilateral_agreement_id=req.bilateral_agreement_id,
        classification=req.classification,
        distribution_marking=req.distribution_marking,
        handling_code=req.handling_code,
        handling_note=req.handling_note,
        lines=[
            schemas.LineIn.model_construct(
                capability=codes[line.capability_type_id],
                min_level=line.min_level,
                quantity=line.quantity,
                needed_by=line.needed_by,
                note=line.note,
            )
            for line in lines_of(session, req)
        ],
        lapse_at=req.lapse_at,
    )


def amend(
    session: Session, p: Principal, request_id: int, body: schemas.RequestAmend
) -> AssistanceRequest:
    """Edit a draft in place; amend a sent request as a new version that re-opens answers."""
    req, inv = get_visible(session, p, request_id, for_update=True)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    if body.expected_version != req.version:
        raise Conflict(
            f"This edit is based on version {body.expected_version}, but the request is at "
            f"version {req.version}. Reload it and apply your change again."
        )
    if req.status in (R.DRAFT, R.NATIONAL_APPROVAL):
        types = validate_body(
            session, body, kind=req.kind, country=req.requesting_country, complete=False
        )
        before = snapshot(session, req)
        _apply_body(req, body)
        _save_lines(session, req, body, types, new_version=None)
        if req.status == R.NATIONAL_APPROVAL:
            # A changed request must be approved again.
            req.status = R.DRAFT
        session.flush()
        timeline.record(
            session,
            p,
            req,
            "request.edited",
            "Draft edited",
            before=before,
            after=snapshot(session, req),
        )
        return req
    if req.status not in ACCEPTS_OFFERS and req.status not in (R.SUBMITTED, R.ALERTED):
        raise Conflict(f"A request in state {req.status} can no longer be amended.")
    types = validate_body(
        session, body, kind=req.kind, country=req.requesting_country, complete=True
    )
    if body.exercise != req.exercise:
        raise Invalid(
            "An exercise cannot become an actual request, or the reverse: raise a new one.",
            errors=_errors(("exercise", "cannot change after submission")),
        )
    before = snapshot(session, req)
    req.version += 1
    _apply_body(req, body)
    _save_lines(session, req, body, types, new_version=req.version)
    _snapshot_version(session, p, req, body.reason or "amended")
    now = utcnow()
    # Pending offers were made against the old version: they expire, and every unit that had
    # answered is asked again (committed offers stay).
    for offer in session.scalars(
        select(Offer).where(Offer.request_id == req.id, Offer.status.in_(PENDING_OFFER))
    ):
        offer.status = OS.EXPIRED
        offer.status_changed_at = now
        offer.reason = f"superseded by version {req.version}"
    reopened = []
    for a in session.scalars(select(RequestAddressee).where(RequestAddressee.request_id == req.id)):
        a.status = AddresseeStatus.AWAITING_ACK
        a.ack_due_at = now + timedelta(minutes=req.ack_minutes)
        a.next_check_at = a.ack_due_at
        a.escalations = 0
        a.acknowledged_at = None
        reopened.append(a.unit_id)
    session.flush()
    timeline.record(
        session,
        p,
        req,
        "request.amended",
        f"Amended to version {req.version}" + (f": {body.reason}" if body.reason else ""),
        before=before,
        after=snapshot(session, req),
        pinned=True,
    )
    timeline.notify_users(
        session,
        timeline.unit_responders(session, reopened),
        req,
        "request.amended",
        f"{req.reference} amended (version {req.version}): please acknowledge again",
        body.reason,
        urgent=True,
    )
    refresh_status(session, p, req)
    return req


def _end_offers(session: Session, p: Principal, req: AssistanceRequest, reason: str) -> None:
    now = utcnow()
    for offer in session.scalars(
        select(Offer).where(Offer.request_id == req.id, Offer.status.not_in(OFFER_ENDED))
    ):
        if offer.status in (OS.OFFERED,):
            offer.status = OS.EXPIRED
        elif offer.status in (OS.ACCEPTED, OS.AGREED):
            offer.status = OS.DECLINED
            offer_equipment.release(session, p, req, offer, reason)
        else:
            continue
        offer.reason = reason
        offer.status_changed_at = now
    for a in session.scalars(
        select(RequestAddressee).where(
            RequestAddressee.request_id == req.id, RequestAddressee.next_check_at.is_not(None)
        )
    ):
        a.next_check_at = None
    session.flush()


def cancel(session: Session, p: Principal, request_id: int, reason: str) -> AssistanceRequest:
    req, inv = get_visible(session, p, request_id, for_update=True)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    if not reason:
        raise Invalid("Say why the request is cancelled.", errors=_errors(("reason", "required")))
    # An issued pre-alert is withdrawn; everything else is cancelled.
    target = R.WITHDRAWN if req.status == R.ALERTED else R.CANCELLED
    moving = session.scalar(
        select(func.count())
        .select_from(Offer)
        .where(Offer.request_id == req.id, Offer.status.in_(ENGAGED))
    )
    if moving:
        raise Conflict("Teams are already moving: stand them down first, then close the request.")
    _end_offers(session, p, req, f"request cancelled: {reason}")
    _move(
        session,
        p,
        req,
        target,
        "Cancelled" if target == R.CANCELLED else "Withdrawn",
        kind="request.cancelled",
        reason=reason,
        pinned=True,
    )
    _notify_involved(session, req, "request.cancelled", f"{req.reference} cancelled", reason)
    return req


def lapse(session: Session, p: Principal, req: AssistanceRequest) -> None:
    """Called by the job when ``lapse_at`` passed on a request that is not covered."""
    _end_offers(session, p, req, "request lapsed")
    _move(
        session,
        p,
        req,
        R.LAPSED,
        "Lapsed (not covered in time)",
        kind="request.lapsed",
        pinned=True,
    )
    _notify_involved(session, req, "request.lapsed", f"{req.reference} lapsed", "")


def stand_down(session: Session, p: Principal, request_id: int, reason: str) -> AssistanceRequest:
    """The requesting side ends the operation: every team still engaged is stood down."""
    req, inv = get_visible(session, p, request_id, for_update=True)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    if req.status != R.ACTIVE:
        raise Conflict(f"Only an active operation can be stood down; this one is {req.status}.")
    now = utcnow()
    for offer in session.scalars(
        select(Offer).where(
            Offer.request_id == req.id,
            Offer.status.in_([OS.MOBILISING, OS.EN_ROUTE, OS.ON_SITE, OS.ON_TASK]),
        )
    ):
        before = offer.status
        offer.status = OS.STOOD_DOWN
        offer.status_changed_at = now
        code = timeline.unit_code(session, offer.unit_id)
        timeline.record(
            session,
            p,
            req,
            "deployment.stood_down",
            f"{code}: stood down — {reason}" if reason else f"{code}: stood down",
            unit_id=offer.unit_id,
            offer_id=offer.id,
            data={"note": reason},
            before={"status": before},
            after={"status": offer.status},
            object_type="offer",
            object_id=offer.id,
        )
    _end_offers(session, p, req, "operation stood down")
    _move(
        session,
        p,
        req,
        R.DEMOBILISING,
        "Operation stood down",
        kind="request.stood_down",
        reason=reason,
        pinned=True,
    )
    _notify_involved(session, req, "request.stood_down", f"{req.reference}: stand down", reason)
    return req


def close(session: Session, p: Principal, request_id: int, debrief: str) -> AssistanceRequest:
    req, inv = get_visible(session, p, request_id, for_update=True)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    if req.status not in (R.DEMOBILISING, R.OPEN, R.PARTIALLY_COVERED, R.COVERED):
        raise Conflict(f"A request in state {req.status} cannot be closed.")
    away = session.scalar(
        select(func.count())
        .select_from(Offer)
        .where(
            Offer.request_id == req.id,
            Offer.status.in_(ENGAGED | {OS.STOOD_DOWN, OS.RECALLED, OS.RETURNING}),
        )
    )
    if away:
        raise Conflict(
            f"{away} team(s) are not home yet; close the request when every team is home."
        )
    _end_offers(session, p, req, "request closed")
    req.debrief = debrief
    if req.status != R.DEMOBILISING:
        req.status = R.DEMOBILISING  # nothing was deployed: closing ends it all the same
    _move(session, p, req, R.CLOSED, "Closed with debrief", kind="request.closed", pinned=True)
    _notify_involved(session, req, "request.closed", f"{req.reference} closed", "")
    return req


def _notify_involved(
    session: Session, req: AssistanceRequest, kind: str, title: str, body: str
) -> None:
    unit_ids = session.scalars(
        select(RequestAddressee.unit_id).where(RequestAddressee.request_id == req.id)
    ).all()
    users = {u.id: u for u in timeline.unit_responders(session, unit_ids)}
    for u in timeline.requesting_side(session, req):
        users[u.id] = u
    timeline.notify_users(session, users.values(), req, kind, title, body)


# ------------------------------------------------------------------------------ coverage


def coverage(session: Session, req: AssistanceRequest) -> dict[int, schemas.Coverage]:
    """Per line id: derived from requested vs offered, committed and on-site quantities."""
    lines = lines_of(session, req, include_removed=True)
    rows = session.execute(
        select(
            OfferLine.request_line_id,
            Offer.status,
            OfferLine.quantity,
            OfferLine.accepted_quantity,
            Offer.recalled_at,
        )
        .join(Offer, Offer.id == OfferLine.offer_id)
        .where(Offer.request_id == req.id)
    ).all()
    offered: dict[int, int] = {}
    committed: dict[int, int] = {}
    on_site: dict[int, int] = {}
    for line_id, status, qty, accepted, recalled_at in rows:
        if status in PENDING_OFFER:
            offered[line_id] = offered.get(line_id, 0) + qty
        if status in COMMITTED and recalled_at is None:
            took = accepted if accepted is not None else qty
            offered[line_id] = offered.get(line_id, 0) + qty
            committed[line_id] = committed.get(line_id, 0) + took
        if status in AT_INCIDENT:
            on_site[line_id] = on_site.get(line_id, 0) + (accepted or 0)
    out = {}
    for line in lines:
        c = committed.get(line.id, 0)
        out[line.id] = schemas.Coverage(
            requested=line.quantity,
            offered=offered.get(line.id, 0),
            committed=c,
            on_site=on_site.get(line.id, 0),
            coverage="complete" if c >= line.quantity else ("partial" if c > 0 else "none"),
        )
    return out


def refresh_status(session: Session, p: Principal, req: AssistanceRequest) -> None:
    """Derive OPEN / PARTIALLY_COVERED / COVERED / ACTIVE from offers and coverage."""
    if req.status not in (R.OPEN, R.PARTIALLY_COVERED, R.COVERED, R.ACTIVE):
        return
    statuses = session.execute(
        select(Offer.status, Offer.recalled_at).where(Offer.request_id == req.id)
    ).all()
    if any(st in ENGAGED for st, _ in statuses):
        target = R.ACTIVE
    elif any(st in FINISHED and rec is None for st, rec in statuses):
        # Teams have done their part and none is engaged: the operation winds down.
        target = R.DEMOBILISING
    else:
        active_lines = {line.id for line in lines_of(session, req)}
        cov = [c for lid, c in coverage(session, req).items() if lid in active_lines]
        if cov and all(c.coverage == "complete" for c in cov):
            target = R.COVERED
        elif any(c.committed > 0 for c in cov):
            target = R.PARTIALLY_COVERED
        else:
            target = R.OPEN
    if target != req.status:
        before = req.status
        req.status = target
        session.flush()
        timeline.record(
            session,
            p,
            req,
            f"request.status.{target.lower()}",
            f"Request is now {target.replace('_', ' ').lower()}",
            before={"status": before},
            after={"status": target},
        )


def require_live(req: AssistanceRequest) -> None:
    if req.status not in ACCEPTS_OFFERS:
        raise Conflict(f"The request is {req.status}: it takes no answers now.")


def involvement_out(inv: Involvement) -> schemas.Involvement:
    return schemas.Involvement(
        requester=inv.requester,
        approver=inv.approver,
        addressee_id=inv.addressee_id,
        supervisor=inv.supervisor,
        granted=inv.granted,
    )


def add_note(session: Session, p: Principal, request_id: int, body: schemas.NoteBody) -> int:
    """A note on the shared timeline, by anyone involved (pinned notes stay on top)."""
    req, inv = get_visible(session, p, request_id)
    if not (inv.requester or inv.addressee_id is not None or inv.supervisor):
        raise Forbidden("Only the parties to a request write on its timeline.")
    event = timeline.record(
        session,
        p,
        req,
        "note",
        body.text,
        unit_id=p.unit_id if inv.addressee_id is not None else None,
        pinned=body.pinned,
    )
    return event.id
