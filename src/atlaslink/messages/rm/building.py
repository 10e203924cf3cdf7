"""EDXL-RM 1.0 messages built from what ``operations.views`` shows a recipient (lxml, explicit
prefixes, no global state). The mapping is in docs/messages.md."""

from __future__ import annotations

from datetime import datetime

from lxml import etree as LET

from atlaslink.messages import valuelist as vl
from atlaslink.messages.rm.common import (
    _NO_PRECEDING,
    _PRECEDING_REQUIRED,
    NS_GML,
    NS_MSG,
    NS_RM,
    NSMAP,
    Thread,
    Vocabulary,
    dt,
    line_info_id,
    offer_info_id,
)
from atlaslink.operations import schemas as ops


def _e(parent: LET._Element, name: str, text: str | None = None, ns: str = NS_MSG) -> LET._Element:
    el = LET.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = text
    return el


def _c(parent: LET._Element, name: str, text: str | None = None) -> LET._Element:
    return _e(parent, name, text, NS_RM)


def _valuelist(parent: LET._Element, name: str, urn: str, values: list[str]) -> None:
    el = _e(parent, name)
    _c(el, "ValueListURN", urn)
    for v in values:
        _c(el, "Value", v)


def _location(
    parent: LET._Element,
    name: str,
    description: str,
    lat: float | None,
    lon: float | None,
    ns: str = NS_MSG,
) -> None:
    loc = _e(parent, name, ns=ns)
    _c(loc, "LocationDescription", description)
    if lat is not None and lon is not None:
        area = _c(loc, "TargetArea")
        point = _e(area, "Point", ns=NS_GML)
        _e(point, "pos", f"{lat:.6f} {lon:.6f}", ns=NS_GML)


def _header(mtype: str, thread: Thread, req: ops.RequestOut) -> LET._Element:
    root = LET.Element(f"{{{NS_MSG}}}{mtype}", nsmap=NSMAP)
    _e(root, "MessageID", thread.message_id)
    _e(root, "SentDateTime", dt(thread.sent))
    _e(root, "MessageContentType", mtype)
    if thread.description:
        _e(root, "MessageDescription", thread.description)
    _e(root, "OriginatingMessageID", thread.origin)
    if mtype not in _NO_PRECEDING and (thread.preceding or mtype in _PRECEDING_REQUIRED):
        _e(root, "PrecedingMessageID", thread.preceding or thread.origin)
    inc = _e(root, "IncidentInformation")
    _c(inc, "IncidentID", req.incident_id)
    _c(inc, "IncidentDescription", req.title)
    if thread.recall is not None:
        rec = _e(root, "MessageRecall")
        _c(rec, "RecallMessageID", thread.recall[0])
        _c(rec, "RecallType", thread.recall[1])
    return root


def _contact(
    root: LET._Element,
    role: str,
    description: str,
    where: str = "",
    lat: float | None = None,
    lon: float | None = None,
) -> None:
    ci = _e(root, "ContactInformation")
    _c(ci, "ContactDescription", description)
    _c(ci, "ContactRole", role)
    if where:
        _location(ci, "ContactLocation", where, lat, lon, ns=NS_RM)


def requester_description(req: ops.RequestOut) -> str:
    if req.requesting_unit is not None:
        u = req.requesting_unit
        return f"{u.code} {u.name} ({u.country})"
    return f"Requesting country {req.requesting_country}"


def unit_description(unit: ops.UnitRef) -> str:
    return f"{unit.code} {unit.name} ({unit.country})"


def _request_keywords(res: LET._Element, req: ops.RequestOut) -> None:
    """Request-level facts RM has no element for, as keywords of each resource (every
    ResourceInformation can be read on its own)."""
    _valuelist(res, "Keyword", vl.REFERENCE_URN, [req.reference])
    _valuelist(res, "Keyword", vl.STATUS_URN, ["Exercise" if req.exercise else "Actual"])
    _valuelist(res, "Keyword", vl.CRISIS_URN, [req.crisis_category])
    if req.nature:
        _valuelist(res, "Keyword", vl.NATURE_URN, list(req.nature))
    if req.legal_basis:
        _valuelist(res, "Keyword", vl.LEGAL_BASIS_URN, [req.legal_basis])
    _valuelist(res, "Keyword", vl.CLASSIFICATION_URN, [req.classification])
    if req.distribution_marking:
        _valuelist(res, "Keyword", vl.DISTRIBUTION_URN, [req.distribution_marking])
    _valuelist(res, "Keyword", vl.HANDLING_URN, [req.handling_code])
    if req.lapse_at is not None:
        _valuelist(res, "Keyword", vl.LAPSE_URN, [dt(req.lapse_at)])


def _type(res: LET._Element, line: ops.LineOut, vocab: Vocabulary) -> None:
    _valuelist(res, "TypeStructure", vl.capability_urn(vocab.version), [line.capability])


def _line_keywords(res: LET._Element, line: ops.LineOut, vocab: Vocabulary) -> None:
    _valuelist(res, "Keyword", vl.LEVEL_URN, [str(line.min_level)])
    rtlt = vocab.rtlt.get(line.capability)
    if rtlt:
        _valuelist(res, "Keyword", vl.RTLT_URN, [rtlt])


# ----------------------------------------------------------------------------- requests


def request_resource(req: ops.RequestOut, thread: Thread, vocab: Vocabulary) -> LET._Element:
    """The request (or one of its amendments: ``thread.recall`` = previous version, Update;
    a cancellation: Cancel)."""
    root = _header("RequestResource", thread, req)
    _contact(
        root,
        "Requester",
        requester_description(req),
        req.requesting_unit.base_location if req.requesting_unit else "",
        req.requesting_unit.latitude if req.requesting_unit else None,
        req.requesting_unit.longitude if req.requesting_unit else None,
    )
    for line in req.lines:
        if line.removed:
            continue
        ri = _e(root, "ResourceInformation")
        _e(ri, "ResourceInfoElementID", line_info_id(line.line_no))
        res = _e(ri, "Resource")
        _type(res, line, vocab)
        _line_keywords(res, line, vocab)
        _request_keywords(res, req)
        _e(res, "Description", f"{line.capability_name}, level {line.min_level} or higher")
        if line.note:
            _e(res, "SpecialRequirements", line.note)
        ai = _e(ri, "AssignmentInformation")
        q = _e(ai, "Quantity")
        _c(q, "QuantityText", str(line.quantity))
        if req.handling_note:
            _e(ai, "Restrictions", req.handling_note)
        if req.operational_necessity:
            _e(ai, "AnticipatedFunction", req.operational_necessity)
        si = _e(ri, "ScheduleInformation")
        _e(si, "ScheduleType", "RequestedArrival")
        if line.needed_by is not None:
            _e(si, "DateTime", dt(line.needed_by))
        _location(si, "Location", req.location_name, req.latitude, req.longitude)
    return root


# ------------------------------------------------------------------------------ offers


def _lines_by_no(req: ops.RequestOut) -> dict[int, ops.LineOut]:
    return {line.line_no: line for line in req.lines}


def _offer_resource(
    ri: LET._Element,
    offer: ops.OfferOut,
    line: ops.LineOut | None,
    vocab: Vocabulary,
    *,
    status: str | None = None,
    availability: str | None = None,
    ownership: bool = True,
) -> None:
    res = _e(ri, "Resource")
    _e(res, "ResourceID", f"{offer.unit.code}/offer-{offer.id}")
    _e(res, "Name", f"{offer.unit.code} team")
    if line is not None:
        _type(res, line, vocab)
        _line_keywords(res, line, vocab)
    if offer.package:
        _e(res, "Description", offer.package)
    if offer.conditions:
        _e(res, "SpecialRequirements", offer.conditions)
    if ownership:
        own = _e(res, "OwnershipInformation")
        _c(own, "Owner", offer.unit.name)
        _c(own, "OwningJurisdiction", offer.unit.country)
        _c(own, "HomeUnit", offer.unit.code)
    if status is not None:
        rs = _e(res, "ResourceStatus")
        _valuelist(rs, "DeploymentStatus", vl.DEPLOYMENT_URN, [status])
        if availability is not None:
            _e(rs, "Availability", availability)


def _response(
    ri: LET._Element, preceding: str, response_type: str, reason: str, code: str | None
) -> None:
    resp = _e(ri, "ResponseInformation")
    _c(resp, "PrecedingResourceInfoElementID", preceding)
    _c(resp, "ResponseType", response_type)
    if code:
        rc = _c(resp, "ReasonCode")
        _c(rc, "ValueListURN", vl.ANSWER_URN)
        _c(rc, "Value", code)
    if reason or response_type == "Provisional":
        _c(resp, "ResponseReason", reason or "a different kind of assistance is proposed")


def response_to_request(
    req: ops.RequestOut,
    thread: Thread,
    vocab: Vocabulary,
    *,
    unit: ops.UnitRef,
    answer: str,
    reason: str,
    offer: ops.OfferOut | None,
) -> LET._Element:
    """An addressed unit's answer: an offer (Accept, per offered line), a counter-proposal
    (Provisional), a refusal or 'unable to fill' (Decline, one per requested line), or an
    offer withdrawn (Decline with reason code ``withdraw``)."""
    root = _header("ResponseToRequestResource", thread, req)
    _contact(root, "RespondingOrg", unit_description(unit), unit.base_location)
    lines = _lines_by_no(req)
    if offer is not None and answer in ("accept", "counter_propose") and offer.lines:
        rtype = "Accept" if answer == "accept" else "Provisional"
        code = None if answer == "accept" else "counter_propose"
        for ol in offer.lines:
            ri = _e(root, "ResourceInformation")
            _e(ri, "ResourceInfoElementID", offer_info_id(offer.id, ol.line_no))
            _response(ri, line_info_id(ol.line_no), rtype, reason, code)
            _offer_resource(ri, offer, lines.get(ol.line_no), vocab)
            ai = _e(ri, "AssignmentInformation")
            q = _e(ai, "Quantity")
            _c(q, "QuantityText", str(ol.quantity))
            if offer.costs:
                pq = _e(ai, "PriceQuote")
                _c(pq, "QuantityText", offer.costs)
            if offer.eta_at is not None:
                si = _e(ri, "ScheduleInformation")
                _e(si, "ScheduleType", "EstimatedArrival")
                _e(si, "DateTime", dt(offer.eta_at))
        return root
    # A counter-proposal without lines, a refusal, unable to fill, a withdrawal: one
    # answer per open line of the request.
    rtype = "Provisional" if answer == "counter_propose" else "Decline"
    for line in req.lines:
        if line.removed:
            continue
        ri = _e(root, "ResourceInformation")
        info = offer_info_id(offer.id, line.line_no) if offer else f"answer-{line.line_no}"
        _e(ri, "ResourceInfoElementID", info)
        _response(ri, line_info_id(line.line_no), rtype, reason, answer)
        if offer is not None:
            _offer_resource(ri, offer, line, vocab)
    return root


def _offer_lines(
    root: LET._Element,
    req: ops.RequestOut,
    offer: ops.OfferOut,
    vocab: Vocabulary,
    *,
    response: tuple[str, str] | None,
    status: str | None,
    reason: str = "",
    reason_code: str | None = None,
    availability: str | None = None,
    schedule: tuple[str, datetime | None] | None = None,
    accepted: bool = True,
    with_quantity: bool = True,
    order_id: str | None = None,
    ownership: bool = True,
) -> None:
    lines = _lines_by_no(req)
    for ol in offer.lines:
        qty = ol.accepted_quantity if accepted and ol.accepted_quantity is not None else ol.quantity
        if accepted and ol.accepted_quantity == 0:
            continue
        ri = _e(root, "ResourceInformation")
        _e(ri, "ResourceInfoElementID", offer_info_id(offer.id, ol.line_no))
        if response is not None:
            _response(
                ri,
                response[0].format(line=ol.line_no, offer=offer.id),
                response[1],
                reason,
                reason_code,
            )
        _offer_resource(
            ri,
            offer,
            lines.get(ol.line_no),
            vocab,
            status=status,
            availability=availability,
            ownership=ownership,
        )
        if with_quantity:
            ai = _e(ri, "AssignmentInformation")
            q = _e(ai, "Quantity")
            _c(q, "QuantityText", str(qty))
            if order_id:
                _e(ai, "OrderID", order_id)
        if schedule is not None:
            si = _e(ri, "ScheduleInformation")
            _e(si, "ScheduleType", schedule[0])
            if schedule[1] is not None:
                _e(si, "DateTime", dt(schedule[1]))
            _location(si, "Location", req.location_name, req.latitude, req.longitude)


def requisition(
    req: ops.RequestOut, thread: Thread, vocab: Vocabulary, offer: ops.OfferOut
) -> LET._Element:
    """The requesting side takes an offer (in whole or in part): the quantities accepted, and
    the costs as proposed in the arrangements record (Funding is required here)."""
    root = _header("RequisitionResource", thread, req)
    funding = _e(root, "Funding")
    costs = offer.arrangement.costs if offer.arrangement else (offer.costs or "")
    _e(funding, "FundingInfo", costs or "to be agreed between the two states", ns=NS_RM)
    _contact(root, "Requester", requester_description(req))
    _offer_lines(root, req, offer, vocab, response=None, status=None, ownership=True)
    return root


def commit(
    req: ops.RequestOut, thread: Thread, vocab: Vocabulary, offer: ops.OfferOut
) -> LET._Element:
    """Both sides confirmed the arrangements: the assisting unit commits its team."""
    root = _header("CommitResource", thread, req)
    _contact(root, "Owner", unit_description(offer.unit), offer.unit.base_location)
    _offer_lines(
        root,
        req,
        offer,
        vocab,
        response=("offer-{offer}-line-{line}", "Accept"),
        status="AGREED",
        schedule=("Committed", offer.eta_at),
        order_id=f"{req.reference}/offer-{offer.id}",
    )
    return root


# Deployment steps: the RM schedule type that records when the step happened.
STEP_SCHEDULE = {
    "MOBILISING": "ActualDeparture",
    "EN_ROUTE": "ActualDeparture",
    "ON_SITE": "ActualArrival",
    "ON_TASK": "Current",
    "STOOD_DOWN": "Current",
    "RETURNING": "ActualReturnDeparture",
    "HOME": "ActualReturnArrival",
    "SETTLED": "Current",
    "RECALLED": "Current",
}


def report_status(
    req: ops.RequestOut, thread: Thread, vocab: Vocabulary, offer: ops.OfferOut, at: datetime
) -> LET._Element:
    """A deployment step of a team (mobilising, en route, on site, …, home)."""
    root = _header("ReportResourceDeploymentStatus", thread, req)
    _contact(root, "Owner", unit_description(offer.unit), offer.unit.base_location)
    _offer_lines(
        root,
        req,
        offer,
        vocab,
        response=None,
        status=offer.status,
        availability="Deployed" if offer.status not in ("HOME", "SETTLED") else "Available",
        schedule=(STEP_SCHEDULE.get(offer.status, "Current"), at),
    )
    return root


def request_status(
    req: ops.RequestOut, thread: Thread, vocab: Vocabulary, offer: ops.OfferOut
) -> LET._Element:
    """The requesting side asks a team for its deployment status."""
    root = _header("RequestResourceDeploymentStatus", thread, req)
    _contact(root, "Requester", requester_description(req))
    _offer_lines(
        root, req, offer, vocab, response=None, status=None, with_quantity=False, ownership=True
    )
    return root


def release(
    req: ops.RequestOut, thread: Thread, vocab: Vocabulary, offer: ops.OfferOut, at: datetime
) -> LET._Element:
    """The requesting side stands a team down: it is released to go home."""
    root = _header("ReleaseResource", thread, req)
    _contact(root, "Requester", requester_description(req))
    _offer_lines(
        root,
        req,
        offer,
        vocab,
        response=None,
        status=offer.status,
        availability="Released",
        schedule=("Current", at),
    )
    return root


def decline(
    req: ops.RequestOut, thread: Thread, vocab: Vocabulary, offer: ops.OfferOut, reason: str
) -> LET._Element:
    """The requesting side declines an offer (before or after taking it). RM has no "decline
    an offer" message: the requester's answer to an offer is a RequisitionResource (taken) or
    a ReleaseResource (not needed), and ReleaseResource is the one that carries a
    ResponseInformation: ``Decline`` per offered line, reason code ``decline``, the reason."""
    root = _header("ReleaseResource", thread, req)
    _contact(root, "Requester", requester_description(req))
    _offer_lines(
        root,
        req,
        offer,
        vocab,
        response=("offer-{offer}-line-{line}", "Decline"),
        reason=reason,
        reason_code="decline",
        status=offer.status,
        availability="Released",
        accepted=False,
    )
    return root


def request_return(
    req: ops.RequestOut,
    thread: Thread,
    vocab: Vocabulary,
    offer: ops.OfferOut,
    at: datetime,
    reason: str,
) -> LET._Element:
    """The assisting state recalls its officers (2008/617): it asks for its team back."""
    root = _header("RequestReturn", thread, req)
    _contact(root, "Owner", unit_description(offer.unit), offer.unit.base_location)
    _offer_lines(
        root,
        req,
        offer,
        vocab,
        response=None,
        status="RECALLED",
        availability=reason or "Recalled",
        schedule=("RequestedReturnDeparture", at),
    )
    return root


def serialize(root: LET._Element) -> bytes:
    return LET.tostring(root, xml_declaration=True, encoding="UTF-8")
