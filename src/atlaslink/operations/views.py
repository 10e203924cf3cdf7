"""What a viewer receives of a request: the one place that shapes requests, offers and the
timeline for output (API, pages, notifications), applying ``operations.policy``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth.principal import Principal
from atlaslink.models import (
    Arrangement,
    AssistanceRequest,
    BilateralAgreement,
    CapabilityType,
    ManifestItem,
    MovementRecord,
    Offer,
    OfferLine,
    OperationEvent,
    RequestAddressee,
    Unit,
)
from atlaslink.operations import schemas, service, vocab
from atlaslink.operations.policy import Involvement, get_visible, readable, sees_offer_details
from atlaslink.operations.states import AT_INCIDENT, ENDED, RequestStatus
from atlaslink.registry.service import page_dict
from atlaslink.registry.taxonomy_seed import display_country


def _units(session: Session, ids: set[int]) -> dict[int, schemas.UnitRef]:
    if not ids:
        return {}
    return {
        u.id: schemas.UnitRef(
            id=u.id, code=u.code, name=u.name, country=display_country(u.country_iso2)
        )
        for u in session.scalars(select(Unit).where(Unit.id.in_(sorted(ids))))
    }


def request_out(
    session: Session, p: Principal, req: AssistanceRequest, inv: Involvement
) -> schemas.RequestOut:
    lines = service.lines_of(session, req, include_removed=True)
    types = {
        t.id: t
        for t in session.scalars(
            select(CapabilityType).where(
                CapabilityType.id.in_({line.capability_type_id for line in lines})
            )
        )
    }
    cov = service.coverage(session, req)
    addressees = list(
        session.scalars(
            select(RequestAddressee)
            .where(RequestAddressee.request_id == req.id)
            .order_by(RequestAddressee.ring, RequestAddressee.id)
        )
    )
    # The requesting side follows every addressed unit; an addressed unit sees its own entry
    # and who else was asked and how they answered (the same picture), not their reasons.
    offers = list(
        session.scalars(select(Offer).where(Offer.request_id == req.id).order_by(Offer.id))
    )
    unit_ids = {a.unit_id for a in addressees} | {o.unit_id for o in offers}
    if req.requesting_unit_id:
        unit_ids.add(req.requesting_unit_id)
    units = _units(session, unit_ids)
    line_no = {line.id: line.line_no for line in lines}
    offer_lines: dict[int, list[schemas.OfferLineOut]] = {}
    for ol in session.scalars(
        select(OfferLine).where(OfferLine.offer_id.in_([o.id for o in offers]))
    ):
        offer_lines.setdefault(ol.offer_id, []).append(
            schemas.OfferLineOut(
                line_no=line_no.get(ol.request_line_id, 0),
                quantity=ol.quantity,
                accepted_quantity=ol.accepted_quantity,
            )
        )
    detailed = [o.id for o in offers if sees_offer_details(inv, o.unit_id, p)]
    arrangements = {
        a.offer_id: a
        for a in session.scalars(select(Arrangement).where(Arrangement.offer_id.in_(detailed)))
    }
    manifest: dict[int, list[schemas.ManifestItemOut]] = {}
    for m in session.scalars(
        select(ManifestItem).where(ManifestItem.offer_id.in_(detailed)).order_by(ManifestItem.id)
    ):
        manifest.setdefault(m.offer_id, []).append(
            schemas.ManifestItemOut.model_validate(m, from_attributes=True)
        )
    movements: dict[int, list[schemas.MovementOut]] = {}
    for mv in session.scalars(
        select(MovementRecord)
        .where(MovementRecord.offer_id.in_(detailed))
        .order_by(MovementRecord.id)
    ):
        movements.setdefault(mv.offer_id, []).append(
            schemas.MovementOut(
                id=mv.id,
                kind=mv.kind,
                country=display_country(mv.country_iso2),
                reference=mv.reference,
                route=mv.route,
                valid_from=mv.valid_from,
                valid_to=mv.valid_to,
                status=mv.status,
                note=mv.note,
                recorded_by=mv.recorded_by,
                recorded_at=mv.recorded_at,
            )
        )
    agreement = (
        session.get(BilateralAgreement, req.bilateral_agreement_id)
        if req.bilateral_agreement_id
        else None
    )
    own_side = inv.requester or inv.supervisor
    return schemas.RequestOut(
        id=req.id,
        reference=req.reference,
        kind=req.kind,
        status=req.status,
        version=req.version,
        lock_version=req.lock_version,
        exercise=req.exercise,
        requesting_country=display_country(req.requesting_country),
        requesting_unit=units.get(req.requesting_unit_id) if req.requesting_unit_id else None,
        created_by=req.created_by_label,
        title=req.title,
        crisis_category=req.crisis_category,
        crisis_category_label=vocab.CRISIS_CATEGORIES.get(req.crisis_category, req.crisis_category),
        location_name=req.location_name,
        latitude=req.latitude,
        longitude=req.longitude,
        nature=list(req.nature),
        operational_necessity=req.operational_necessity,
        legal_basis=req.legal_basis,
        legal_basis_label=vocab.LEGAL_BASES.get(req.legal_basis) if req.legal_basis else None,
        bilateral_agreement=agreement.name if agreement else None,
        classification=req.classification,
        classification_label=vocab.CLASSIFICATIONS[req.classification],
        distribution_marking=req.distribution_marking,
        handling_code=req.handling_code,
        handling_note=req.handling_note,
        ack_minutes=req.ack_minutes,
        lapse_at=req.lapse_at,
        pre_alert_id=req.pre_alert_id,
        incident_id=req.incident_id,
        created_at=req.created_at,
        submitted_at=req.submitted_at,
        opened_at=req.opened_at,
        closed_at=req.closed_at,
        debrief=req.debrief if (own_side or req.status == RequestStatus.CLOSED) else None,
        lines=[
            schemas.LineOut(
                line_no=line.line_no,
                capability=types[line.capability_type_id].code,
                capability_name=types[line.capability_type_id].name,
                min_level=line.min_level,
                quantity=line.quantity,
                needed_by=line.needed_by,
                note=line.note,
                removed=line.removed_in_version is not None,
                coverage=cov[line.id],
            )
            for line in lines
        ],
        addressees=[
            schemas.AddresseeOut(
                id=a.id,
                unit=units[a.unit_id],
                ring=a.ring,
                status=a.status,
                addressed_at=a.addressed_at,
                ack_due_at=a.ack_due_at,
                acknowledged_at=a.acknowledged_at,
                answered_at=a.answered_at,
                reason=a.reason if (own_side or a.id == inv.addressee_id) else None,
                escalations=a.escalations,
                support_office_alerted=a.support_office_alerted_at is not None,
                seen_version=a.seen_version,
            )
            for a in addressees
        ],
        offers=[
            _offer_out(o, units, offer_lines, arrangements, manifest, movements, o.id in detailed)
            for o in offers
        ],
        involvement=service.involvement_out(inv),
    )


def _offer_out(
    o: Offer,
    units: dict[int, schemas.UnitRef],
    lines: dict[int, list[schemas.OfferLineOut]],
    arrangements: dict[int, Arrangement],
    manifest: dict[int, list[schemas.ManifestItemOut]],
    movements: dict[int, list[schemas.MovementOut]],
    detailed: bool,
) -> schemas.OfferOut:
    out = schemas.OfferOut(
        id=o.id,
        unit=units[o.unit_id],
        kind=o.kind,
        status=o.status,
        request_version=o.request_version,
        lock_version=o.lock_version,
        status_changed_at=o.status_changed_at,
        lines=sorted(lines.get(o.id, []), key=lambda x: x.line_no),
    )
    if detailed:
        arr = arrangements.get(o.id)
        out.nature = list(o.nature)
        out.package = o.package
        out.eta_at = o.eta_at
        out.conditions = o.conditions
        out.costs = o.costs
        out.reason = o.reason
        out.arrangement = (
            schemas.ArrangementOut.model_validate(arr, from_attributes=True) if arr else None
        )
        out.manifest = manifest.get(o.id, [])
        out.movements = movements.get(o.id, [])
    return out


def get_request(session: Session, p: Principal, request_id: int) -> schemas.RequestOut:
    req, inv = get_visible(session, p, request_id)
    return request_out(session, p, req, inv)


def list_requests(
    session: Session,
    p: Principal,
    *,
    page: int,
    per_page: int,
    status: str | None = None,
    exercise: bool | None = None,
    q: str | None = None,
) -> dict[str, Any]:
    cond = readable(p)
    stmt = select(AssistanceRequest).where(cond)
    if status == "live":
        stmt = stmt.where(AssistanceRequest.status.not_in(sorted(ENDED)))
    elif status:
        stmt = stmt.where(AssistanceRequest.status == status)
    if exercise is not None:
        stmt = stmt.where(AssistanceRequest.exercise.is_(exercise))
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(
            func.lower(AssistanceRequest.title).like(like)
            | func.lower(AssistanceRequest.reference).like(like)
            | func.lower(AssistanceRequest.location_name).like(like)
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(AssistanceRequest.updated_at.desc(), AssistanceRequest.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    items = [
        schemas.RequestSummary(
            id=r.id,
            reference=r.reference,
            kind=r.kind,
            status=r.status,
            exercise=r.exercise,
            title=r.title,
            crisis_category=r.crisis_category,
            requesting_country=display_country(r.requesting_country),
            location_name=r.location_name,
            classification=r.classification,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    return page_dict(items, total, page, per_page)


def visible_events(
    session: Session,
    p: Principal,
    req: AssistanceRequest,
    inv: Involvement,
    *,
    after_id: int = 0,
    limit: int = 500,
) -> list[schemas.EventOut]:
    stmt = (
        select(OperationEvent, Unit.code)
        .outerjoin(Unit, Unit.id == OperationEvent.unit_id)
        .where(OperationEvent.request_id == req.id, OperationEvent.id > after_id)
        .order_by(OperationEvent.id)
        .limit(limit)
    )
    out = []
    for ev, code in session.execute(stmt).tuples():
        if not event_visible(ev, inv, p):
            continue
        out.append(
            schemas.EventOut(
                id=ev.id,
                occurred_at=ev.occurred_at,
                actor=ev.actor_label,
                kind=ev.kind,
                summary=ev.summary,
                unit_code=code,
                pinned=ev.pinned,
            )
        )
    return out


class Scoped(Protocol):
    """What deciding an event's visibility needs: a stored event, or its live signal."""

    @property
    def scope(self) -> str: ...

    @property
    def unit_id(self) -> int | None: ...


def event_visible(ev: Scoped, inv: Involvement, p: Principal) -> bool:
    if ev.scope == "all":
        return True
    return inv.requester or inv.supervisor or (p.unit_id is not None and p.unit_id == ev.unit_id)


def metrics(session: Session, req: AssistanceRequest) -> schemas.Metrics:
    """Response metrics in minutes from submission, from the recorded timeline."""
    start = req.submitted_at
    if start is None:
        return schemas.Metrics(
            first_acknowledgement=None,
            first_offer=None,
            full_coverage=None,
            first_team_on_site=None,
        )

    def first(*kinds: str) -> float | None:
        at = session.scalar(
            select(func.min(OperationEvent.occurred_at)).where(
                OperationEvent.request_id == req.id, OperationEvent.kind.in_(kinds)
            )
        )
        return minutes(at)

    covered = session.scalar(
        select(func.min(OperationEvent.occurred_at)).where(
            OperationEvent.request_id == req.id,
            OperationEvent.kind == "request.status.covered",
        )
    )
    on_site = session.scalar(
        select(func.min(Offer.on_site_at)).where(
            Offer.request_id == req.id,
            Offer.status.in_(AT_INCIDENT | {"STOOD_DOWN", "RETURNING", "HOME", "SETTLED"}),
        )
    )

    def minutes(at: datetime | None) -> float | None:
        if at is None:
            return None
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        return round((at - start).total_seconds() / 60, 1)

    return schemas.Metrics(
        first_acknowledgement=first(
            "addressee.acknowledged",
            "answer.offer",
            "answer.counter_proposal",
            "answer.refuse",
            "answer.unable_to_fill",
        ),
        first_offer=first("answer.offer", "answer.counter_proposal"),
        full_coverage=minutes(covered),
        first_team_on_site=minutes(on_site),
    )
