"""From a workflow event to outbound messages, in the event's own transaction.

``operations.timeline.record`` calls :func:`on_event` for every event it records. If the event
maps to a standard message (docs/messages.md) and partners subscribe to its topic, each
partner that may see the request gets one outbox row per endpoint, holding the message as
that partner may see it (``operations.views`` for the partner's principal), in its envelope.
The job in ``messages.tasks`` delivers the rows after the commit.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

from lxml import etree as LET
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.config import get_settings
from atlaslink.messages import cap, de, rm, validation
from atlaslink.messages import policy as mpolicy
from atlaslink.messages import valuelist as vl
from atlaslink.models import (
    AssistanceRequest,
    CapabilityType,
    OperationEvent,
    OutboxMessage,
    Partner,
    PartnerEndpoint,
    StdMessage,
    utcnow,
)
from atlaslink.operations import schemas as ops
from atlaslink.operations import views
from atlaslink.operations.policy import involvement

log = logging.getLogger(__name__)

# While an inbound message is imported, the partner that sent it (it is not sent its own
# news back).
inbound_partner: ContextVar[int | None] = ContextVar("atlaslink_inbound_partner", default=None)

TOPICS = ("requests", "answers", "deployments", "alerts")
_STEPS = {"mobilising", "en_route", "on_site", "on_task", "returning", "home", "settled"}


@dataclass(frozen=True)
class Route:
    message_type: str  # an RM type or "CAP"
    topic: str
    kind: str  # EDXL-DE distributionKind


def route(event_kind: str, req: AssistanceRequest) -> Route | None:
    """Which message an event becomes, if any (docs/messages.md has the table)."""
    pre = req.kind == "pre_alert"
    if pre:
        if event_kind == "request.addressed":
            return Route("CAP", "alerts", "Report")
        if event_kind == "request.amended":
            return Route("CAP", "alerts", "Update")
        if event_kind in ("request.cancelled", "pre_alert.followed_up"):
            return Route(
                "CAP", "alerts", "Cancel" if event_kind == "request.cancelled" else "Update"
            )
        return None
    if event_kind in ("request.addressed", "request.amended"):
        return Route("RequestResource", "requests", "Request")
    if event_kind in ("request.cancelled", "request.lapsed"):
        return Route("RequestResource", "requests", "Cancel")
    if event_kind in (
        "answer.offer",
        "answer.counter_proposal",
        "answer.refuse",
        "answer.unable_to_fill",
        "offer.withdrawn",
    ):
        return Route("ResponseToRequestResource", "answers", "Response")
    if event_kind == "offer.declined":
        return Route("ReleaseResource", "answers", "Response")
    if event_kind == "offer.accepted":
        return Route("RequisitionResource", "answers", "Request")
    if event_kind == "offer.agreed":
        return Route("CommitResource", "answers", "Response")
    if event_kind.startswith("deployment."):
        step = event_kind.split(".", 1)[1]
        if step == "status_asked":
            return Route("RequestResourceDeploymentStatus", "deployments", "Request")
        if step in _STEPS or step == "status_requested":
            return Route("ReportResourceDeploymentStatus", "deployments", "Report")
        if step == "stood_down":
            return Route("ReleaseResource", "deployments", "Dispatch")
        if step == "recalled":
            return Route("RequestReturn", "deployments", "Request")
    return None


def _description(event: OperationEvent) -> str:
    """The MessageDescription: the event's summary, except for a report of a deployment step or
    a stand-down, which carries only the note given with it (the step is the DeploymentStatus),
    so the receiving side records the same step with the same note."""
    step = event.kind.split(".", 1)[1] if event.kind.startswith("deployment.") else ""
    if step in _STEPS or step in ("stood_down", "status_requested"):
        return str((event.data or {}).get("note") or "")[:500]
    return event.summary[:500]


def node() -> str:
    return get_settings().node_id


def request_message_id(req: AssistanceRequest, version: int) -> str:
    return f"{node()}:{req.reference}:RequestResource:v{version}"


def _latest(
    session: Session,
    req: AssistanceRequest,
    *,
    offer_id: int | None = None,
    mtype: str | None = None,
) -> StdMessage | None:
    stmt = select(StdMessage).where(StdMessage.request_id == req.id)
    if offer_id is not None:
        stmt = stmt.where(StdMessage.offer_id == offer_id)
    if mtype is not None:
        stmt = stmt.where(StdMessage.message_type == mtype)
    return session.scalars(stmt.order_by(StdMessage.id.desc()).limit(1)).first()


def origin_id(session: Session, req: AssistanceRequest) -> str:
    """The first RequestResource of the request's thread (ours, or the partner's it came in)."""
    first = session.scalars(
        select(StdMessage)
        .where(StdMessage.request_id == req.id, StdMessage.message_type == "RequestResource")
        .order_by(StdMessage.id)
        .limit(1)
    ).first()
    return first.message_id if first else request_message_id(req, 1)


def vocabulary(session: Session) -> rm.Vocabulary:
    rtlt = dict(session.execute(select(CapabilityType.code, CapabilityType.rtlt_id)).tuples().all())
    return rm.Vocabulary(vl.taxonomy_version(session), rtlt)


def _subscribed(session: Session, topic: str) -> list[tuple[Partner, list[PartnerEndpoint]]]:
    rows = session.execute(
        select(Partner, PartnerEndpoint)
        .join(PartnerEndpoint, PartnerEndpoint.partner_id == Partner.id)
        .where(Partner.active.is_(True), PartnerEndpoint.active.is_(True))
        .order_by(Partner.id, PartnerEndpoint.id)
    ).all()
    out: dict[int, tuple[Partner, list[PartnerEndpoint]]] = {}
    for partner, endpoint in rows:
        if topic not in (partner.topics or []):
            continue
        out.setdefault(partner.id, (partner, []))[1].append(endpoint)
    return list(out.values())


def on_event(session: Session, req: AssistanceRequest, event: OperationEvent) -> int:
    """Write the outbox rows an event calls for; returns how many."""
    r = route(event.kind, req)
    if r is None:
        return 0
    targets = _subscribed(session, r.topic)
    if not targets:
        return 0
    # The partner that sent the message being imported is not sent its own news back, except
    # the status report it asked for.
    skip = None if event.kind == "deployment.status_requested" else inbound_partner.get()
    made = 0
    message_id = _message_id(session, req, event, r)
    any_built = False
    for partner, endpoints in targets:
        if partner.id == skip or (req.exercise and not partner.exercise_traffic):
            continue
        principal = mpolicy.partner_principal(session, partner)
        inv = involvement(session, principal, req)
        if not inv.visible or not views.event_visible(event, inv, principal):
            continue
        view = views.request_out(session, principal, req, inv)
        payload = _payload(session, req, event, r, view, message_id, partner)
        if payload is None:
            continue
        any_built = True
        envelope = de.wrap(
            _envelope(req, event, r, message_id, partner, view), payload, partner.de_version
        )
        body = rm.serialize(envelope).decode()
        error = _self_check(envelope)
        for endpoint in endpoints:
            exists = session.scalar(
                select(OutboxMessage.id).where(
                    OutboxMessage.endpoint_id == endpoint.id,
                    OutboxMessage.message_id == message_id,
                )
            )
            if exists is not None:
                continue
            session.add(
                OutboxMessage(
                    message_id=message_id,
                    message_type=r.message_type,
                    partner_id=partner.id,
                    endpoint_id=endpoint.id,
                    request_id=req.id,
                    body=body,
                    state="parked" if error else "pending",
                    next_attempt_at=None if error else utcnow(),
                    last_error=error,
                )
            )
            made += 1
    if any_built:
        _log_message(session, req, event, r, message_id)
    session.flush()
    return made


def _self_check(envelope: LET._Element) -> str:
    """With a schema folder configured, an outbound message that fails it is parked at once
    (a bug to see and fix), never sent."""
    schemas = validation.configured()
    if schemas is None:
        return ""
    from atlaslink.messages import xmlsafe

    result = validation.check(xmlsafe.parse(rm.serialize(envelope)), schemas)
    if result.ok:
        return ""
    log.error("outbound message failed its schema: %s", result.errors[:3])
    return "invalid: " + "; ".join(f"{e['field']}: {e['message']}" for e in result.errors[:3])


def _message_id(session: Session, req: AssistanceRequest, event: OperationEvent, r: Route) -> str:
    if r.message_type == "RequestResource" and r.kind == "Request":
        return request_message_id(req, req.version)
    if r.message_type == "CAP":
        return f"{node()}:{req.reference}:alert:{event.id}"
    return f"{node()}:{req.reference}:{r.message_type}:{event.id}"


def _log_message(
    session: Session, req: AssistanceRequest, event: OperationEvent, r: Route, message_id: str
) -> None:
    seen = session.scalar(
        select(StdMessage.id).where(
            StdMessage.direction == "out", StdMessage.message_id == message_id
        )
    )
    if seen is None:
        session.add(
            StdMessage(
                direction="out",
                message_id=message_id,
                message_type=r.message_type,
                request_id=req.id,
                offer_id=event.offer_id,
                event_id=event.id,
                sender=node(),
                summary=event.summary,
            )
        )


def _offer(view: ops.RequestOut, offer_id: int | None) -> ops.OfferOut | None:
    return next((o for o in view.offers if o.id == offer_id), None)


def _payload(
    session: Session,
    req: AssistanceRequest,
    event: OperationEvent,
    r: Route,
    view: ops.RequestOut,
    message_id: str,
    partner: Partner,
) -> LET._Element | None:
    at = event.occurred_at
    if r.message_type == "CAP":
        return _cap(session, req, event, r, view, message_id, partner)
    vocab = vocabulary(session)
    origin = origin_id(session, req)
    if r.message_type == "RequestResource":
        previous = _latest(session, req, mtype="RequestResource")
        if r.kind == "Cancel":
            recall = (previous.message_id if previous else origin, "Cancel")
        elif req.version > 1 and previous is not None and previous.message_id != message_id:
            recall = (previous.message_id, "Update")
        else:
            recall = None
        thread = rm.Thread(message_id, at, origin, recall=recall, description=_description(event))
        return rm.request_resource(view, thread, vocab)
    offer = _offer(view, event.offer_id)
    last_rr = _latest(session, req, mtype="RequestResource")
    of_offer = _latest(session, req, offer_id=event.offer_id) if event.offer_id else None
    before = of_offer or last_rr
    preceding = before.message_id if before is not None else origin
    thread = rm.Thread(message_id, at, origin, preceding=preceding, description=_description(event))
    if r.message_type == "ResponseToRequestResource":
        unit = offer.unit if offer else _addressee_unit(view, event.unit_id)
        if unit is None:
            return None
        thread.preceding = last_rr.message_id if last_rr else origin
        kind = event.kind.split(".", 1)[1]
        answer = {
            "offer": "accept",
            "counter_proposal": "counter_propose",
            "refuse": "refuse",
            "unable_to_fill": "unable_to_fill",
            "withdrawn": "withdraw",
        }[kind]
        a = next((a for a in view.addressees if a.unit.id == event.unit_id), None)
        said = (a.reason or "") if a else ""
        if answer in ("refuse", "unable_to_fill"):
            reason = said
        else:
            # A counter-proposal's reason is the unit's answer; a withdrawal's the offer's.
            reason = (offer.reason if offer else None) or (said if answer != "withdraw" else "")
        return rm.response_to_request(
            view, thread, vocab, unit=unit, answer=answer, reason=reason, offer=offer
        )
    if offer is None:
        return None
    if r.message_type == "RequisitionResource":
        return rm.requisition(view, thread, vocab, offer)
    if r.message_type == "CommitResource":
        return rm.commit(view, thread, vocab, offer)
    if r.message_type == "ReportResourceDeploymentStatus":
        return rm.report_status(view, thread, vocab, offer, at)
    if event.kind == "offer.declined":
        return rm.decline(view, thread, vocab, offer, offer.reason or "")
    if r.message_type == "RequestResourceDeploymentStatus":
        return rm.request_status(view, thread, vocab, offer)
    if r.message_type == "ReleaseResource":
        return rm.release(view, thread, vocab, offer, at)
    if r.message_type == "RequestReturn":
        return rm.request_return(view, thread, vocab, offer, at, offer.reason or "")
    return None


def _addressee_unit(view: ops.RequestOut, unit_id: int | None) -> ops.UnitRef | None:
    a = next((a for a in view.addressees if a.unit.id == unit_id), None)
    return a.unit if a else None


def _cap(
    session: Session,
    req: AssistanceRequest,
    event: OperationEvent,
    r: Route,
    view: ops.RequestOut,
    message_id: str,
    partner: Partner,
) -> LET._Element:
    references = []
    if r.kind in ("Update", "Cancel"):
        first = _latest(session, req, mtype="CAP")
        if first is not None:
            references.append((node(), first.message_id, first.created_at))
    msg_type = {"Report": "Alert", "Update": "Update", "Cancel": "Cancel"}[r.kind]
    if msg_type != "Alert" and not references:
        msg_type = "Alert"
    meta = cap.AlertMeta(
        identifier=message_id,
        sender=node(),
        sent=event.occurred_at,
        msg_type=msg_type,
        # A pre-alert sent to the whole network (ring 3) is a network-wide alert: scope
        # Restricted; otherwise it names its recipient (scope Private).
        addresses=[] if any(a.ring == 3 for a in view.addressees) else [partner.sender_id],
        references=references,
        note=event.summary[:500],
    )
    return cap.pre_alert(view, meta)


def _envelope(
    req: AssistanceRequest,
    event: OperationEvent,
    r: Route,
    message_id: str,
    partner: Partner,
    view: ops.RequestOut,
) -> de.Envelope:
    return de.Envelope(
        distribution_id=f"{message_id}:{partner.code}",
        sender_id=node(),
        sent=event.occurred_at,
        exercise=req.exercise,
        kind=r.kind,
        recipients=[partner.sender_id],
        units=(
            [a.unit.code for a in view.addressees]
            if r.message_type in ("RequestResource", "CAP") and r.kind != "Cancel"
            else []
        ),
        markings=de.Markings(req.classification, req.distribution_marking, req.handling_code),
        incident_id=req.incident_id,
        incident_description=req.title,
        keywords={vl.REFERENCE_URN: [req.reference], vl.KIND_URN: [r.message_type]},
        content_description=f"{r.message_type} {req.reference}: {event.summary[:200]}",
        sender_role="requesting side" if r.message_type in _REQUESTER_TYPES else "assisting unit",
        recipient_role="unit" if partner.unit_id else "partner",
    )


_REQUESTER_TYPES = frozenset(
    {
        "RequestResource",
        "RequisitionResource",
        "ReleaseResource",
        "RequestResourceDeploymentStatus",
        "CAP",
    }
)
