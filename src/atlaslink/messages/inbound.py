"""Importing a standard message: safe parsing, checking, the sender, then the workflow.

Each message becomes the matching call of the existing services (so every rule, audit entry
and timeline entry applies), made as the user who imports it (API token or ``--as``). The
sender named in the envelope (or the CAP sender) must be a registered partner, and a unit's
partner may only be spoken for by a user of that unit; a bare RM message speaks for the
importing user's own unit. A MessageID (CAP identifier) seen before changes nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # element type only; parsing is xmlsafe's
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.principal import Principal
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound
from atlaslink.messages import cap, de, outbox, repository, rm, schemas, validation, xmlsafe
from atlaslink.messages import valuelist as vl
from atlaslink.models import (
    Arrangement,
    AssistanceRequest,
    Offer,
    Partner,
    RequestAddressee,
    StdMessage,
    Unit,
)
from atlaslink.operations import answers, deployments, service, timeline, vocab
from atlaslink.operations import schemas as ops
from atlaslink.operations.policy import involvement

_OFFER_ID = re.compile(r"offer-(\d+)")
_LINE_NO = re.compile(r"line-(\d+)$")


@dataclass
class Incoming:
    message_id: str
    message_type: str
    envelope: str | None
    sender: str
    payload: ET.Element
    unit_recipients: list[str]
    exercise: bool | None


def read_document(data: bytes) -> tuple[Incoming, validation.Result]:
    """Parse safely, check (schemas if configured, prose rules always), and unpack."""
    root = xmlsafe.parse(data)
    result = validation.check(root)
    result.raise_if_invalid()
    version = de.is_envelope(root)
    if version is None:
        payload, sender, units, exercise = root, "", [], None
    else:
        opened = de.open_envelope(root, version)
        if not opened.payloads:
            raise Invalid(
                "The envelope carries no XML message (embeddedXMLContent) to import.",
                errors=[{"field": "embeddedXMLContent", "message": "one payload expected"}],
            )
        if len(opened.payloads) > 1:
            # One message per distribution (docs/messages.md): each has its own MessageID,
            # thread and outcome, and the platform answers for one.
            extra = opened.payloads[1]
            raise Invalid(
                f"The envelope carries {len(opened.payloads)} messages; this platform imports "
                "one message per EDXL-DE distribution. Send each in its own envelope.",
                errors=[
                    {
                        "field": f"{extra[0]}/{xmlsafe.local_name(extra[1].tag)}",
                        "message": "a second payload: one message per envelope",
                    }
                ],
            )
        payload = opened.payloads[0][1]
        sender, units, exercise = opened.sender_id, opened.unit_recipients, opened.exercise
    kind = validation.payload_kind(payload) or xmlsafe.local_name(payload.tag)
    if kind == "CAP":
        alert = cap.read(payload)
        message_id, sender = alert.identifier, sender or alert.sender
    else:
        message_id = rm.read(payload).message_id
    return Incoming(message_id, kind, version, sender, payload, units, exercise), result


def _partner_for(session: Session, p: Principal, inc: Incoming) -> Partner | None:
    if not inc.sender:
        if p.unit_id is None:
            raise Forbidden(
                "A bare message speaks for the importing user's unit; you belong to none. "
                "Send it in an EDXL-DE envelope naming a registered partner."
            )
        return None
    partner = repository.partner_by_sender(session, inc.sender)
    if partner is None or not partner.active:
        raise Invalid(
            f"The sender {inc.sender!r} is not a registered partner.",
            errors=[{"field": "senderID", "message": "unknown sender"}],
        )
    if partner.unit_id is not None and partner.unit_id != p.unit_id:
        raise Forbidden(f"You do not speak for partner {partner.code} (another unit's system).")
    return partner


def import_message(session: Session, p: Principal, data: bytes) -> schemas.ImportResult:
    inc, result = read_document(data)
    partner = _partner_for(session, p, inc)
    checked = "official schemas" if result.schema_checked else validation.NOT_CONFIGURED
    base: dict[str, Any] = {
        "message_id": inc.message_id,
        "message_type": inc.message_type,
        "envelope": inc.envelope,
        "sender": inc.sender or (p.label if partner is None else partner.sender_id),
        "partner": partner.code if partner else None,
        "schema_validation": checked,
    }
    seen = repository.inbound_seen(session, inc.message_id)
    if seen is not None:
        req = session.get(AssistanceRequest, seen.request_id) if seen.request_id else None
        return schemas.ImportResult(
            **base,
            duplicate=True,
            request_id=req.id if req else None,
            request_reference=req.reference if req else None,
            outcome=f"already imported: {seen.summary}",
        )
    own = session.scalar(
        select(StdMessage.id).where(
            StdMessage.direction == "out", StdMessage.message_id == inc.message_id
        )
    )
    if own is not None:
        return schemas.ImportResult(
            **base,
            duplicate=True,
            request_id=None,
            request_reference=None,
            outcome="this platform's own message: nothing to do",
        )
    record = StdMessage(
        direction="in",
        message_id=inc.message_id,
        message_type=inc.message_type,
        partner_id=partner.id if partner else None,
        sender=base["sender"],
        payload=data.decode("utf-8", errors="replace"),
    )
    session.add(record)
    try:
        # Claimed first: the same message imported twice at once gets one success.
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "This message is being imported by another call right now; repeat to see its result."
        ) from exc
    token = outbox.inbound_partner.set(partner.id if partner else None)
    try:
        req, offer_id, outcome = _apply(session, p, inc, partner)
    except ValidationError as exc:
        raise Invalid(
            "The message does not make a valid request on this platform.",
            errors=[
                {"field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from None
    finally:
        outbox.inbound_partner.reset(token)
    record.request_id = req.id if req else None
    record.offer_id = offer_id
    record.summary = outcome
    session.flush()
    audit.append(
        session,
        p,
        "message.imported",
        "std_message",
        record.id,
        after={
            "message_id": inc.message_id,
            "type": inc.message_type,
            "sender": record.sender,
            "request": req.reference if req else None,
            "outcome": outcome,
        },
    )
    return schemas.ImportResult(
        **base,
        duplicate=False,
        request_id=req.id if req else None,
        request_reference=req.reference if req else None,
        outcome=outcome,
    )


# ----------------------------------------------------------------------------- mapping


def _thread_request(session: Session, *ids: str | None) -> tuple[AssistanceRequest, StdMessage]:
    for mid in ids:
        if not mid:
            continue
        found = repository.thread_message(session, mid)
        if found is not None and found.request_id is not None:
            req = session.get(AssistanceRequest, found.request_id)
            if req is not None:
                return req, found
    named = ", ".join(i for i in ids if i)
    raise NotFound(
        f"The message refers to {named}, which this platform does not know.",
        errors=[{"field": "OriginatingMessageID", "message": "unknown thread"}],
    )


def _offer_of(
    session: Session, req: AssistanceRequest, msg: rm.Message, found: StdMessage
) -> Offer:
    """The offer a message is about. ``<unit>/offer-<id>`` is the id on the platform that
    made the offer: ours, or a peer's. A peer's id is mapped through the message it came in
    with (an imported answer naming it); then the message it follows (PrecedingMessageID)
    names the offer; our own ids last, and only for an offer of that unit."""
    for r in msg.resources:
        named = r.resource_id or ""
        m = _OFFER_ID.search(named)
        if m is None:
            continue
        came_in = session.scalar(
            select(StdMessage.offer_id)
            .where(
                StdMessage.direction == "in",
                StdMessage.request_id == req.id,
                StdMessage.offer_id.is_not(None),
                StdMessage.payload.contains(f">{named}</", autoescape=True),
            )
            .order_by(StdMessage.id)
            .limit(1)
        )
        if came_in is not None:
            offer = session.get(Offer, came_in)
            if offer is not None:
                return offer
    if found.offer_id is not None:
        offer = session.get(Offer, found.offer_id)
        if offer is not None:
            return offer
    for r in msg.resources:
        named = r.resource_id or ""
        m = _OFFER_ID.search(named)
        offer = session.get(Offer, int(m[1])) if m else None
        if offer is not None and offer.request_id == req.id:
            unit = session.get(Unit, offer.unit_id)
            code = named.split("/", 1)[0] if "/" in named else None
            if code is None or (unit is not None and unit.code == code):
                return offer
    for r in msg.resources:
        for text in (r.info_id, r.preceding_info_id or ""):
            m = _OFFER_ID.search(text)
            if m:
                offer = session.get(Offer, int(m[1]))
                if offer is not None and offer.request_id == req.id:
                    return offer
    raise NotFound(
        "The message does not name an offer of this request.",
        errors=[{"field": "ResourceID", "message": "no offer-<id> of this request"}],
    )


def _line_no(text: str | None) -> int | None:
    m = _LINE_NO.search(text or "")
    return int(m[1]) if m else None


def _int(text: str | None, where: str) -> int:
    try:
        return int(float((text or "").strip()))
    except ValueError:
        raise Invalid(
            f"A quantity must be a number ({where}).",
            errors=[{"field": where, "message": f"{text!r} is not a number"}],
        ) from None


def _apply(
    session: Session, p: Principal, inc: Incoming, partner: Partner | None
) -> tuple[AssistanceRequest | None, int | None, str]:
    if inc.message_type == "CAP":
        return _apply_cap(session, p, inc, partner)
    msg = rm.read(inc.payload)
    t = msg.type
    if t == "RequestResource":
        return _apply_request(session, p, inc, msg)
    req, found = _thread_request(session, msg.preceding, msg.origin)
    if t == "ResponseToRequestResource":
        return _apply_response(session, p, req, msg, found)
    offer = _offer_of(session, req, msg, found)
    if t == "RequisitionResource":
        took = [
            ops.AcceptLineIn(line_no=n, quantity=_int(r.quantity, f"{r.info_id}/Quantity"))
            for r in msg.resources
            if (n := _line_no(r.info_id)) is not None
        ]
        answers.accept_offer(session, p, req.id, offer.id, ops.AcceptBody(lines=took))
        return req, offer.id, f"offer {offer.id} accepted"
    if t == "CommitResource":
        arr = session.scalar(select(Arrangement).where(Arrangement.offer_id == offer.id))
        if arr is None:
            raise Conflict("This offer has no arrangements record yet (it was not accepted).")
        deployments.confirm_arrangement(session, p, req.id, offer.id, arr.revision)
        return req, offer.id, f"arrangements of offer {offer.id} confirmed"
    if t == "ReportResourceDeploymentStatus":
        status = next((r.deployment_status for r in msg.resources if r.deployment_status), None)
        if status is None:
            raise Invalid(
                "The report gives no DeploymentStatus.",
                errors=[{"field": "ResourceStatus/DeploymentStatus", "message": "required"}],
            )
        if status == offer.status:
            # The answer to a status request: the team is where it was.
            deployments.confirm_status(session, p, req.id, offer.id, msg.description[:500])
            return req, offer.id, f"offer {offer.id} is still {status}"
        body = ops.StatusBody(status=status, note=msg.description[:500])
        deployments.set_status(session, p, req.id, offer.id, body)
        return req, offer.id, f"offer {offer.id} is now {status}"
    if t == "ReleaseResource" and any(r.response_type == "Decline" for r in msg.resources):
        # The requesting side declines the offer (docs/messages.md).
        first = next(r for r in msg.resources if r.response_type == "Decline")
        answers.decline_offer(session, p, req.id, offer.id, first.response_reason)
        return req, offer.id, f"offer {offer.id} declined"
    if t == "ReleaseResource":
        body = ops.StatusBody(status="STOOD_DOWN", note=msg.description[:500])
        deployments.set_status(session, p, req.id, offer.id, body)
        return req, offer.id, f"team of offer {offer.id} stood down"
    if t == "RequestResourceDeploymentStatus":
        # Answered by a ReportResourceDeploymentStatus of the team's current step, queued to
        # the partners that may see it, the asking one included (outbox.route).
        inv = involvement(session, p, req)
        if not (inv.requester or (p.unit_id is not None and p.unit_id == offer.unit_id)):
            raise Forbidden("Only the two parties ask for a team's deployment status.")
        timeline.record(
            session,
            p,
            req,
            "deployment.status_requested",
            f"Deployment status of offer {offer.id} requested by message {msg.message_id}",
            unit_id=offer.unit_id,
            offer_id=offer.id,
            object_type="offer",
            object_id=offer.id,
        )
        return req, offer.id, f"status of offer {offer.id} ({offer.status}) reported back"
    if t == "RequestReturn":
        reason = next((r.availability for r in msg.resources if r.availability), "")
        deployments.recall(session, p, req.id, offer.id, reason or msg.description or "recalled")
        return req, offer.id, f"team of offer {offer.id} recalled"
    raise Invalid(
        f"{t} messages are not handled by this platform.",
        errors=[{"field": t, "message": "not handled"}],
    )


def _request_body(msg: rm.Message, exercise: bool | None) -> dict[str, Any]:
    first = msg.resources[0]
    where = next((s for s in first.schedules if s.location), None)
    lapse = rm.parse_dt(first.keyword(vl.LAPSE_URN))
    status = first.keyword(vl.STATUS_URN)
    lines = []
    for r in msg.resources:
        if r.type_urn is None or not vl.is_capability_urn(r.type_urn) or not r.type_values:
            raise Invalid(
                "Each resource must name its type from the capability value list.",
                errors=[
                    {
                        "field": f"{r.info_id}/TypeStructure",
                        "message": f"use {vl.CAPABILITY_BASE}:v<n>",
                    }
                ],
            )
        needed = next((s.at for s in r.schedules if s.type == "RequestedArrival"), None)
        lines.append(
            {
                "capability": r.type_values[0],
                "min_level": _int(r.keyword(vl.LEVEL_URN) or "0", f"{r.info_id}/Keyword(level)"),
                "quantity": _int(r.quantity or "1", f"{r.info_id}/Quantity"),
                "needed_by": needed,
                "note": r.special_requirements,
            }
        )
    crisis = first.keyword(vl.CRISIS_URN) or "other"
    return {
        "exercise": exercise if exercise is not None else status != "Actual",
        "title": (msg.incident_description or msg.description or "Request for assistance")[:300],
        "crisis_category": crisis if crisis in vocab.CRISIS_CATEGORIES else "other",
        "location_name": (where.location if where else "") or "not stated",
        "latitude": where.lat if where else None,
        "longitude": where.lon if where else None,
        "nature": first.keywords.get(vl.NATURE_URN, []),
        "operational_necessity": first.anticipated_function,
        "legal_basis": first.keyword(vl.LEGAL_BASIS_URN),
        "classification": first.keyword(vl.CLASSIFICATION_URN) or "none",
        "distribution_marking": first.keyword(vl.DISTRIBUTION_URN) or "",
        "handling_code": first.keyword(vl.HANDLING_URN) or "H0",
        "handling_note": first.restrictions,
        "lines": lines,
        "lapse_at": lapse,
    }


def _address(session: Session, p: Principal, req: AssistanceRequest, codes: list[str]) -> None:
    if not codes:
        return
    ids = list(session.scalars(select(Unit.id).where(Unit.code.in_(codes))))
    if len(ids) != len(set(codes)):
        known = set(session.scalars(select(Unit.code).where(Unit.code.in_(codes))))
        raise Invalid(
            "Some addressed units are not registered.",
            errors=[
                {"field": "explicitAddress", "message": f"no unit {c}"}
                for c in sorted(set(codes) - known)
            ],
        )
    answers.address(session, p, req.id, ops.AddressBody(unit_ids=ids))


def _apply_request(
    session: Session, p: Principal, inc: Incoming, msg: rm.Message
) -> tuple[AssistanceRequest | None, int | None, str]:
    if msg.recall is not None:
        req, _found = _thread_request(session, msg.recall[0], msg.origin)
        if msg.recall[1] == "Cancel":
            service.cancel(session, p, req.id, msg.description or f"cancelled by {msg.message_id}")
            return req, None, "request cancelled"
        amend = ops.RequestAmend(
            **_request_body(msg, req.exercise),
            expected_version=req.version,
            reason=msg.description[:5000],
        )
        service.amend(session, p, req.id, amend)
        asked = set(
            session.scalars(
                select(Unit.code)
                .join(RequestAddressee, RequestAddressee.unit_id == Unit.id)
                .where(RequestAddressee.request_id == req.id)
            )
        )
        _address(session, p, req, [c for c in inc.unit_recipients if c not in asked])
        return req, None, f"request amended to version {req.version}"
    pre_alert = _pre_alert_of(session, p, msg)
    body = ops.RequestCreate(
        **_request_body(msg, inc.exercise),
        kind="request",
        submit=True,
        pre_alert_id=pre_alert.id if pre_alert else None,
    )
    req = service.create_request(session, p, body)
    if msg.incident_id:
        req.incident_id = msg.incident_id[:64]
    session.flush()
    _address(session, p, req, inc.unit_recipients)
    return req, None, f"request {req.reference} created and submitted"


def _pre_alert_of(session: Session, p: Principal, msg: rm.Message) -> AssistanceRequest | None:
    """The pre-alert a request follows: the one its OriginatingMessageID names (a CAP alert
    identifier), else the issued pre-alert of the importer's country with its incident id."""
    candidates = []
    if msg.origin and msg.origin != msg.message_id:
        found = repository.thread_message(session, msg.origin)
        if found is not None and found.request_id is not None:
            candidates.append(session.get(AssistanceRequest, found.request_id))
    if msg.incident_id:
        candidates.extend(
            session.scalars(
                select(AssistanceRequest)
                .where(
                    AssistanceRequest.kind == "pre_alert",
                    AssistanceRequest.incident_id == msg.incident_id[:64],
                )
                .order_by(AssistanceRequest.id)
            )
        )
    for pre in candidates:
        if (
            pre is not None
            and pre.kind == "pre_alert"
            and pre.status == "ALERTED"
            and pre.requesting_country == p.country
        ):
            return pre
    return None


def _apply_response(
    session: Session, p: Principal, req: AssistanceRequest, msg: rm.Message, found: StdMessage
) -> tuple[AssistanceRequest | None, int | None, str]:
    kinds = {r.response_type for r in msg.resources}
    codes = {r.reason_code for r in msg.resources if r.reason_code}
    first = msg.resources[0]
    reason = first.response_reason
    if "withdraw" in codes:
        offer = _offer_of(session, req, msg, found)
        answers.withdraw_offer(session, p, req.id, offer.id, reason or "withdrawn")
        return req, offer.id, f"offer {offer.id} withdrawn"
    if kinds <= {"Decline"}:
        kind = "unable_to_fill" if "unable_to_fill" in codes else "refuse"
        answers.answer(session, p, req.id, ops.AnswerBody(answer=kind, reason=reason))
        return req, None, "refused" if kind == "refuse" else "unable to fill"
    lines = [
        ops.OfferLineIn(line_no=n, quantity=_int(r.quantity, f"{r.info_id}/Quantity"))
        for r in msg.resources
        if r.response_type in ("Accept", "Provisional")
        and (n := _line_no(r.preceding_info_id)) is not None
        and r.quantity
    ]
    eta = next(
        (s.at for r in msg.resources for s in r.schedules if s.type == "EstimatedArrival"), None
    )
    body = ops.AnswerBody(
        answer="accept" if "Accept" in kinds else "counter_propose",
        reason=reason if "Accept" not in kinds else "",
        lines=lines,
        package=first.description,
        conditions=first.special_requirements,
        costs=first.price_quote,
        eta_at=eta,
    )
    _a, made = answers.answer(session, p, req.id, body)
    return req, made.id if made else None, f"{body.answer}: offer {made.id if made else '-'}"


def _apply_cap(
    session: Session, p: Principal, inc: Incoming, partner: Partner | None
) -> tuple[AssistanceRequest | None, int | None, str]:
    alert = cap.read(inc.payload)
    if partner is not None and partner.unit_id is None:
        # An outside partner's alert is recorded for the support office; it starts nothing.
        return None, None, f"alert from {partner.code} recorded ({alert.msg_type})"
    if alert.msg_type == "Cancel":
        ref_ids = [r.split(",")[1] for r in alert.references if r.count(",") == 2]
        req, _found = _thread_request(session, *ref_ids)
        service.cancel(session, p, req.id, alert.description or "pre-alert withdrawn")
        return req, None, "pre-alert withdrawn"
    if alert.msg_type != "Alert":
        return None, None, f"{alert.msg_type} recorded"
    prm = alert.parameters
    crisis = prm.get(cap.P_CRISIS, "other")
    body = ops.RequestCreate(
        kind="pre_alert",
        submit=True,
        exercise=alert.status != "Actual",
        title=(alert.headline or alert.event or "Pre-alert")[:300],
        crisis_category=crisis if crisis in vocab.CRISIS_CATEGORIES else "other",
        location_name=alert.area or "not stated",
        latitude=alert.lat,
        longitude=alert.lon,
        nature=prm.get(cap.P_NATURE, "").split(),
        operational_necessity=alert.description,
        legal_basis=prm.get(cap.P_LEGAL) or None,
        classification=prm.get(cap.P_CLASSIFICATION, "none"),
        distribution_marking=prm.get(cap.P_DISTRIBUTION, ""),
        handling_code=prm.get(cap.P_HANDLING, "H0"),
        lapse_at=alert.expires,
    )
    req = service.create_request(session, p, body)
    if alert.incidents:
        req.incident_id = alert.incidents.split()[0][:64]
    session.flush()
    _address(session, p, req, inc.unit_recipients)
    return req, None, f"pre-alert {req.reference} issued"


def check_document(data: bytes) -> schemas.CheckResult:
    """Validate only (no import): what a partner would be told."""
    root = xmlsafe.parse(data)
    result = validation.check(root)
    return schemas.CheckResult(
        kind=result.kind,
        valid=result.ok,
        schema_validation="official schemas"
        if result.schema_checked
        else validation.NOT_CONFIGURED,
        errors=result.errors,
    )
