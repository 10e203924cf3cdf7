"""What a viewer receives of a request: the one place that shapes requests, offers and the
timeline for output (API, pages, notifications), applying ``operations.policy``."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.errors import NotFound
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
    RequestLine,
    Unit,
    utcnow,
)
from atlaslink.operations import matching, offer_equipment, schemas, service, vocab
from atlaslink.operations.answers import ADDRESSABLE
from atlaslink.operations.policy import (
    Involvement,
    get_visible,
    readable,
    require_requester,
    sees_offer_details,
)
from atlaslink.operations.states import (
    ACCEPTS_OFFERS,
    ASSISTING_STEPS,
    ENDED,
    MANIFEST_OPEN,
    OFFER_ENDED,
    OFFER_TRANSITIONS,
    PENDING_OFFER,
    REPORTS_STATUS,
    REQUEST_TRANSITIONS,
    REQUESTER_STEPS,
    AddresseeStatus,
    OfferStatus,
    RequestKind,
    RequestStatus,
)
from atlaslink.registry.service import page_dict
from atlaslink.registry.taxonomy_seed import display_country
from atlaslink.sharing import redact

R = RequestStatus


def _units(session: Session, ids: set[int]) -> dict[int, schemas.UnitRef]:
    if not ids:
        return {}
    return {
        u.id: schemas.UnitRef(**redact.unit_ref(u))
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
    # Offered equipment is an offer term: loaded for the offers the viewer may read in detail.
    equipment = offer_equipment.offered(session, detailed)
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
            _offer_out(
                o,
                units,
                offer_lines,
                arrangements,
                manifest,
                movements,
                equipment,
                o.id in detailed,
            ).model_copy(update={"actions": offer_actions(o, inv, p, arrangements.get(o.id))})
            for o in offers
        ],
        involvement=service.involvement_out(inv),
        actions=request_actions(
            req,
            inv,
            p,
            next((a for a in addressees if a.id == inv.addressee_id), None),
            own_pending=any(o.unit_id == p.unit_id and o.status in PENDING_OFFER for o in offers),
        ),
    )


def request_actions(
    req: AssistanceRequest,
    inv: Involvement,
    p: Principal,
    own: RequestAddressee | None,
    *,
    own_pending: bool = False,
) -> list[str]:
    """What the viewer may do to the request now: a hint for pages and API clients (the
    services check every rule again when the action is taken)."""
    st = RequestStatus(req.status)
    acts: list[str] = []
    if inv.requester and p.can(Permission.REQUESTS_CREATE):
        if st in (R.DRAFT, R.NATIONAL_APPROVAL):
            acts.append("edit")
        elif st in ACCEPTS_OFFERS or st in (R.SUBMITTED, R.ALERTED):
            acts.append("amend")
        if st == R.DRAFT:
            acts.append("submit")
        if st in ADDRESSABLE:
            acts.append("address")
        if st == R.ALERTED:
            acts.append("follow_up")
        if R.CANCELLED in REQUEST_TRANSITIONS.get(st, ()) or st == R.ALERTED:
            acts.append("cancel")
        if st == R.ACTIVE:
            acts.append("stand_down")
        if st in (R.DEMOBILISING, R.OPEN, R.PARTIALLY_COVERED, R.COVERED):
            acts.append("close")
    if inv.approver and st == R.NATIONAL_APPROVAL:
        acts += ["approve", "return"]
    if own is not None and p.can(Permission.REQUESTS_RESPOND) and st not in ENDED:
        if own.status in (AddresseeStatus.AWAITING_ACK, AddresseeStatus.NO_RESPONSE):
            acts.append("acknowledge")
        # One open offer per unit (answers.answer): withdraw it to answer differently.
        if req.kind == RequestKind.REQUEST and st in ACCEPTS_OFFERS and not own_pending:
            acts.append("answer")
    if st not in ENDED and (inv.requester or inv.addressee_id is not None or inv.supervisor):
        acts.append("note")
    if st not in ENDED and (inv.requester or inv.supervisor):
        acts.append("grant")
    return acts


def offer_actions(
    o: Offer, inv: Involvement, p: Principal, arrangement: Arrangement | None
) -> list[str]:
    """What the viewer may do to one offer now (steps as ``status:<STEP>``)."""
    st = OfferStatus(o.status)
    nexts = OFFER_TRANSITIONS.get(st, frozenset())
    requester = inv.requester and p.can(Permission.REQUESTS_CREATE)
    own = p.unit_id is not None and p.unit_id == o.unit_id
    reports = own and p.can(Permission.DEPLOYMENTS_REPORT)
    acts: list[str] = []
    if requester:
        if st == OfferStatus.OFFERED:
            acts.append("accept")
        if OfferStatus.DECLINED in nexts:
            acts.append("decline")
        acts.append("decide_manifest")
        acts += [f"status:{s}" for s in sorted(nexts & REQUESTER_STEPS)]
        if st in REPORTS_STATUS:
            acts.append("ask_status")
    if own and p.can(Permission.REQUESTS_RESPOND) and OfferStatus.WITHDRAWN in nexts:
        acts.append("withdraw")
    if reports:
        if st in MANIFEST_OPEN:
            acts.append("manifest")
        if OfferStatus.RECALLED in nexts:
            acts.append("recall")
        acts += [f"status:{s}" for s in sorted(nexts & ASSISTING_STEPS)]
    if (requester or reports) and st not in OFFER_ENDED and st != OfferStatus.OFFERED:
        acts.append("movement")
    if st == OfferStatus.ACCEPTED and arrangement is not None and (requester or own):
        acts.append("arrangement")
        mine_done = (requester and arrangement.requester_confirmed_at is not None) or (
            own and arrangement.assisting_confirmed_at is not None
        )
        if not mine_done:
            acts.append("confirm")
    return acts


def _offer_out(
    o: Offer,
    units: dict[int, schemas.UnitRef],
    lines: dict[int, list[schemas.OfferLineOut]],
    arrangements: dict[int, Arrangement],
    manifest: dict[int, list[schemas.ManifestItemOut]],
    movements: dict[int, list[schemas.MovementOut]],
    equipment: dict[int, list[schemas.OfferedItemOut]],
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
        out.equipment = equipment.get(o.id, [])
    return out


def candidates(
    session: Session, p: Principal, request_id: int, line_no: int, *, limit: int = 25
) -> matching.Ranking:
    """The ranked units for one open line: for the requesting side only."""
    req, inv = get_visible(session, p, request_id)
    require_requester(p, inv, Permission.REQUESTS_CREATE)
    line = session.scalar(
        select(RequestLine).where(
            RequestLine.request_id == req.id,
            RequestLine.line_no == line_no,
            RequestLine.removed_in_version.is_(None),
        )
    )
    if line is None:
        raise NotFound(f"No open line {line_no} on this request.")
    return matching.rank_line(session, p, req, line, now=utcnow(), limit=limit)


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


_CHUNK = 500  # rows read at a time by visible_events


def visible_events(
    session: Session,
    p: Principal,
    req: AssistanceRequest,
    inv: Involvement,
    *,
    after_id: int = 0,
    after_seq: int | None = None,
    limit: int | None = 500,
    newest: bool = False,
    pinned_only: bool = False,
) -> list[schemas.EventOut]:
    """The request's events the viewer may see, in id order after ``after_id``, or in commit
    order after ``after_seq`` (a ``live_seq``: what a client that has seen it can have missed).

    At most ``limit`` of them (None: all): the first ones, or with ``newest`` the last ones
    (still returned oldest first). The limit counts what the viewer may see."""
    stmt = (
        select(OperationEvent, Unit.code)
        .outerjoin(Unit, Unit.id == OperationEvent.unit_id)
        .where(OperationEvent.request_id == req.id)
    )
    if pinned_only:
        stmt = stmt.where(OperationEvent.pinned.is_(True))
    if after_seq is not None:
        key, down = OperationEvent.live_seq, False
        stmt = stmt.where(key > after_seq)
    else:
        key, down = OperationEvent.id, newest
        stmt = stmt.where(key > after_id)
    out: list[schemas.EventOut] = []
    # In chunks, by the key (the viewer may see only some rows; a long operation has many).
    last: int | None = None
    while limit is None or len(out) < limit:
        chunk = stmt.order_by(key.desc() if down else key).limit(_CHUNK)
        if last is not None:
            chunk = chunk.where(key < last if down else key > last)
        rows = session.execute(chunk).tuples().all()
        for ev, code in rows:
            if limit is not None and len(out) >= limit:
                break
            if not event_visible(ev, inv, p):
                continue
            out.append(
                schemas.EventOut(
                    id=ev.id,
                    live_seq=ev.live_seq,
                    occurred_at=ev.occurred_at,
                    actor=ev.actor_label,
                    kind=ev.kind,
                    summary=ev.summary,
                    unit_code=code,
                    pinned=ev.pinned,
                )
            )
        if len(rows) < _CHUNK:
            break
        last = getattr(rows[-1][0], key.key)
    return out[::-1] if down else out


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


def find_request(session: Session, p: Principal, ref_or_id: str) -> schemas.RequestOut:
    """A request by id or reference (``AR-2026-00042``), as :func:`get_request` shows it."""
    key = ref_or_id.strip()
    if key.isdigit():
        return get_request(session, p, int(key))
    rid = session.scalar(
        select(AssistanceRequest.id).where(
            func.upper(AssistanceRequest.reference) == key.upper(), readable(p)
        )
    )
    if rid is None:
        raise NotFound(f"No request {key} that you may see.")
    return get_request(session, p, rid)
