"""EDXL-RM 1.0 messages read back into plain data for the inbound side, and the rules RM
states only in prose. Takes the standard-library elements that ``xmlsafe.parse`` returns."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # element type only; parsing is xmlsafe's
from dataclasses import dataclass, field
from datetime import datetime

from atlaslink.messages.rm.common import parse_dt
from atlaslink.messages.xmlsafe import local_name


@dataclass
class Schedule:
    type: str
    at: datetime | None
    location: str
    lat: float | None
    lon: float | None


@dataclass
class Resource:
    info_id: str
    preceding_info_id: str | None = None
    response_type: str | None = None
    reason_code: str | None = None
    response_reason: str = ""
    resource_id: str | None = None
    name: str | None = None
    type_urn: str | None = None
    type_values: list[str] = field(default_factory=list)
    keywords: dict[str, list[str]] = field(default_factory=dict)
    description: str = ""
    special_requirements: str = ""
    deployment_status: str | None = None
    availability: str = ""
    quantity: str | None = None
    restrictions: str = ""
    anticipated_function: str = ""
    price_quote: str = ""
    order_id: str | None = None
    schedules: list[Schedule] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # which Resource children were there

    def keyword(self, urn: str) -> str | None:
        values = self.keywords.get(urn)
        return values[0] if values else None


@dataclass
class Contact:
    role: str
    description: str


@dataclass
class Message:
    type: str
    message_id: str
    sent: datetime | None
    origin: str
    preceding: str | None
    incident_id: str | None
    incident_description: str
    description: str
    recall: tuple[str, str] | None
    funding: list[str]
    contacts: list[Contact]
    resources: list[Resource]


def _t(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _find(el: ET.Element, *path: str) -> ET.Element | None:
    cur: ET.Element | None = el
    for name in path:
        if cur is None:
            return None
        cur = next((c for c in cur if local_name(c.tag) == name), None)
    return cur


def _children(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in el if local_name(c.tag) == name] if el is not None else []


def _valuelist_of(el: ET.Element) -> tuple[str, list[str]]:
    return _t(_find(el, "ValueListURN")), [_t(v) for v in _children(el, "Value")]


def _read_location(el: ET.Element | None) -> tuple[str, float | None, float | None]:
    if el is None:
        return "", None, None
    pos = _find(el, "TargetArea", "Point", "pos")
    lat = lon = None
    if pos is not None:
        parts = _t(pos).split()
        if len(parts) == 2:
            lat, lon = float(parts[0]), float(parts[1])
    return _t(_find(el, "LocationDescription")), lat, lon


def read(root: ET.Element) -> Message:
    """Plain data from a schema-valid RM message (the checks of its rules come first)."""
    inc = _find(root, "IncidentInformation")
    recall_el = _find(root, "MessageRecall")
    resources = []
    for ri in _children(root, "ResourceInformation"):
        r = Resource(info_id=_t(_find(ri, "ResourceInfoElementID")))
        resp = _find(ri, "ResponseInformation")
        if resp is not None:
            r.preceding_info_id = _t(_find(resp, "PrecedingResourceInfoElementID"))
            r.response_type = _t(_find(resp, "ResponseType"))
            rc = _find(resp, "ReasonCode")
            if rc is not None:
                _urn, values = _valuelist_of(rc)
                r.reason_code = values[0] if values else None
            r.response_reason = _t(_find(resp, "ResponseReason"))
        res = _find(ri, "Resource")
        if res is not None:
            r.present = {local_name(c.tag) for c in res}
            r.resource_id = _t(_find(res, "ResourceID")) or None
            r.name = _t(_find(res, "Name")) or None
            ts = _find(res, "TypeStructure")
            if ts is not None:
                r.type_urn, r.type_values = _valuelist_of(ts)
            for kw in _children(res, "Keyword"):
                urn, values = _valuelist_of(kw)
                r.keywords.setdefault(urn, []).extend(values)
            r.description = _t(_find(res, "Description"))
            r.special_requirements = _t(_find(res, "SpecialRequirements"))
            ds = _find(res, "ResourceStatus", "DeploymentStatus")
            if ds is not None:
                _urn, values = _valuelist_of(ds)
                r.deployment_status = values[0] if values else None
            r.availability = _t(_find(res, "ResourceStatus", "Availability"))
        ai = _find(ri, "AssignmentInformation")
        if ai is not None:
            qt = _find(ai, "Quantity", "QuantityText")
            amount = _find(ai, "Quantity", "MeasuredQuantity", "Amount")
            r.quantity = _t(qt) if qt is not None else (_t(amount) if amount is not None else None)
            r.restrictions = _t(_find(ai, "Restrictions"))
            r.anticipated_function = _t(_find(ai, "AnticipatedFunction"))
            r.price_quote = _t(_find(ai, "PriceQuote", "QuantityText"))
            r.order_id = _t(_find(ai, "OrderID")) or None
        for si in _children(ri, "ScheduleInformation"):
            where, lat, lon = _read_location(_find(si, "Location"))
            r.schedules.append(
                Schedule(
                    _t(_find(si, "ScheduleType")),
                    parse_dt(_t(_find(si, "DateTime"))),
                    where,
                    lat,
                    lon,
                )
            )
        resources.append(r)
    return Message(
        type=local_name(root.tag),
        message_id=_t(_find(root, "MessageID")),
        sent=parse_dt(_t(_find(root, "SentDateTime"))),
        origin=_t(_find(root, "OriginatingMessageID")),
        preceding=_t(_find(root, "PrecedingMessageID")) or None,
        incident_id=_t(_find(inc, "IncidentID")) if inc is not None else None,
        incident_description=_t(_find(inc, "IncidentDescription")) if inc is not None else "",
        description=_t(_find(root, "MessageDescription")),
        recall=(
            (_t(_find(recall_el, "RecallMessageID")), _t(_find(recall_el, "RecallType")))
            if recall_el is not None
            else None
        ),
        funding=[
            _t(_find(f, "FundingInfo")) or _t(_find(f, "FundCode"))
            for f in _children(root, "Funding")
        ],
        contacts=[
            Contact(_t(_find(c, "ContactRole")), _t(_find(c, "ContactDescription")))
            for c in _children(root, "ContactInformation")
        ],
        resources=resources,
    )


def rule_errors(root: ET.Element) -> list[dict[str, str]]:
    """Rules EDXL-RM states only in schema comments and prose, checked on every message."""
    errors: list[dict[str, str]] = []
    name = local_name(root.tag)
    for i, ri in enumerate(_children(root, "ResourceInformation"), start=1):
        where = f"/{name}/ResourceInformation[{i}]"
        res = _find(ri, "Resource")
        if res is not None and not (
            {local_name(c.tag) for c in res} & {"ResourceID", "Name", "TypeStructure"}
        ):
            errors.append(
                {
                    "field": f"{where}/Resource",
                    "message": "one of ResourceID, Name or TypeStructure is required",
                }
            )
        resp = _find(ri, "ResponseInformation")
        if (
            resp is not None
            and _t(_find(resp, "ResponseType")) == "Provisional"
            and _find(resp, "ReasonCode") is None
            and not _t(_find(resp, "ResponseReason"))
        ):
            errors.append(
                {
                    "field": f"{where}/ResponseInformation",
                    "message": "a Provisional response needs a ReasonCode or ResponseReason",
                }
            )
        for j, si in enumerate(_children(ri, "ScheduleInformation"), start=1):
            loc = _find(si, "Location")
            if loc is not None and not (
                {local_name(c.tag) for c in loc} & {"LocationDescription", "Address", "TargetArea"}
            ):
                errors.append(
                    {
                        "field": f"{where}/ScheduleInformation[{j}]/Location",
                        "message": "one of LocationDescription, Address or TargetArea is required",
                    }
                )
    for k, f in enumerate(_children(root, "Funding"), start=1):
        if not {local_name(c.tag) for c in f} & {"FundCode", "FundingInfo"}:
            errors.append(
                {"field": f"/{name}/Funding[{k}]", "message": "FundCode or FundingInfo is required"}
            )
    return errors
