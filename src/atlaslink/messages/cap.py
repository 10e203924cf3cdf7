"""CAP 1.2 alerts: pre-alerts ("a request may come") and network-wide alerts.

``status`` follows the EXERCISE flag (Exercise / Actual); ``scope`` is Private when the alert
names its recipients (``addresses``) and Restricted otherwise (``restriction`` says to whom);
``category`` is Security. CAP wants UTC written as ``-00:00`` (CAP 1.2 §3.3.2).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # element type only; parsing is xmlsafe's
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree as LET

from atlaslink.messages.rm import parse_dt
from atlaslink.messages.xmlsafe import local_name
from atlaslink.operations import schemas as ops
from atlaslink.operations import vocab

NS_CAP = "urn:oasis:names:tc:emergency:cap:1.2"
# Parameters that carry what CAP has no element for (valueName → value).
P_REFERENCE = "atlaslink:reference"
P_CRISIS = "atlaslink:crisis-category"
P_NATURE = "atlaslink:nature"
P_CLASSIFICATION = "atlaslink:classification"
P_HANDLING = "atlaslink:handling-code"
P_DISTRIBUTION = "atlaslink:distribution-marking"
P_LEGAL = "atlaslink:legal-basis"
P_LOCATION = "atlaslink:location"


def cap_dt(value: datetime) -> str:
    """CAP date-time: no fractional seconds, no ``Z``, UTC as ``-00:00``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


def _e(parent: LET._Element, name: str, text: str | None = None) -> LET._Element:
    el = LET.SubElement(parent, f"{{{NS_CAP}}}{name}")
    if text is not None:
        el.text = text
    return el


def _pair(parent: LET._Element, name: str, key: str, value: str) -> None:
    el = _e(parent, name)
    _e(el, "valueName", key)
    _e(el, "value", value)


@dataclass
class AlertMeta:
    identifier: str
    sender: str
    sent: datetime
    msg_type: str = "Alert"  # Alert, Update, Cancel
    addresses: list[str] = field(default_factory=list)  # Private scope when given
    references: list[tuple[str, str, datetime]] = field(default_factory=list)
    note: str = ""


def pre_alert(req: ops.RequestOut, meta: AlertMeta) -> LET._Element:
    root = LET.Element(f"{{{NS_CAP}}}alert", nsmap={None: NS_CAP})  # type: ignore[dict-item]  # lxml: None = default ns
    _e(root, "identifier", meta.identifier)
    _e(root, "sender", meta.sender)
    _e(root, "sent", cap_dt(meta.sent))
    _e(root, "status", "Exercise" if req.exercise else "Actual")
    _e(root, "msgType", meta.msg_type)
    _e(root, "source", req.created_by)
    if meta.addresses:
        _e(root, "scope", "Private")
    else:
        _e(root, "scope", "Restricted")
        _e(root, "restriction", f"ATLAS network partners only; {req.handling_code}")
    if meta.addresses:
        _e(root, "addresses", " ".join(_quote(a) for a in meta.addresses))
    if meta.note:
        _e(root, "note", meta.note)
    if meta.references:
        _e(root, "references", " ".join(f"{s},{i},{cap_dt(t)}" for s, i, t in meta.references))
    _e(root, "incidents", req.incident_id)
    info = _e(root, "info")
    _e(info, "language", "en")
    _e(info, "category", "Security")
    _e(info, "event", vocab.CRISIS_CATEGORIES.get(req.crisis_category, req.crisis_category))
    _e(info, "responseType", "Prepare" if meta.msg_type != "Cancel" else "AllClear")
    _e(info, "urgency", "Expected")
    _e(info, "severity", "Severe")
    _e(info, "certainty", "Possible")
    _e(info, "audience", "Special intervention units of the ATLAS network")
    if req.lapse_at is not None:
        _e(info, "expires", cap_dt(req.lapse_at))
    _e(
        info,
        "senderName",
        req.requesting_unit.name if req.requesting_unit else req.requesting_country,
    )
    _e(info, "headline", req.title[:160])
    if req.operational_necessity:
        _e(info, "description", req.operational_necessity)
    _e(info, "instruction", "A request for assistance may follow: check readiness.")
    _pair(info, "parameter", P_REFERENCE, req.reference)
    _pair(info, "parameter", P_CRISIS, req.crisis_category)
    if req.nature:
        _pair(info, "parameter", P_NATURE, " ".join(req.nature))
    if req.legal_basis:
        _pair(info, "parameter", P_LEGAL, req.legal_basis)
    _pair(info, "parameter", P_CLASSIFICATION, req.classification)
    _pair(info, "parameter", P_HANDLING, req.handling_code)
    if req.distribution_marking:
        _pair(info, "parameter", P_DISTRIBUTION, req.distribution_marking)
    area = _e(info, "area")
    _e(area, "areaDesc", req.location_name)
    if req.latitude is not None and req.longitude is not None:
        _e(area, "circle", f"{req.latitude:.6f},{req.longitude:.6f} 0")
    return root


def _quote(address: str) -> str:
    return f'"{address}"' if " " in address else address


# ----------------------------------------------------------------------------- reading


@dataclass
class Alert:
    identifier: str
    sender: str
    sent: datetime | None
    status: str
    msg_type: str
    scope: str
    addresses: list[str]
    references: list[str]
    incidents: str
    headline: str = ""
    event: str = ""
    description: str = ""
    area: str = ""
    lat: float | None = None
    lon: float | None = None
    expires: datetime | None = None
    parameters: dict[str, str] = field(default_factory=dict)


def _t(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    return next((c for c in el if local_name(c.tag) == name), None)


def _all(el: ET.Element | None, name: str) -> list[ET.Element]:
    return [c for c in el if local_name(c.tag) == name] if el is not None else []


def _addresses(text: str) -> list[str]:
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', text)]


def read(root: ET.Element) -> Alert:
    info = _child(root, "info")
    area = _child(info, "area")
    circle = _t(_child(area, "circle"))
    lat = lon = None
    if circle:
        m = _CIRCLE.match(circle)
        if m:
            lat, lon = float(m[1]), float(m[2])
    return Alert(
        identifier=_t(_child(root, "identifier")),
        sender=_t(_child(root, "sender")),
        sent=parse_dt(_t(_child(root, "sent"))),
        status=_t(_child(root, "status")),
        msg_type=_t(_child(root, "msgType")),
        scope=_t(_child(root, "scope")),
        addresses=_addresses(_t(_child(root, "addresses"))),
        references=_t(_child(root, "references")).split(),
        incidents=_t(_child(root, "incidents")),
        headline=_t(_child(info, "headline")),
        event=_t(_child(info, "event")),
        description=_t(_child(info, "description")),
        area=_t(_child(area, "areaDesc")),
        lat=lat,
        lon=lon,
        expires=parse_dt(_t(_child(info, "expires"))),
        parameters={
            _t(_child(p, "valueName")): _t(_child(p, "value")) for p in _all(info, "parameter")
        },
    )


_NUM = r"(-?\d+(?:\.\d+)?)"
_PAIR = re.compile(rf"^{_NUM},{_NUM}$")
_CIRCLE = re.compile(rf"^{_NUM},{_NUM}\s+{_NUM}$")
_CAP_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
_FORBIDDEN = re.compile(r"[\s,<&]")


def _wgs84(lat: float, lon: float) -> bool:
    return -90 <= lat <= 90 and -180 <= lon <= 180


def rule_errors(root: ET.Element) -> list[dict[str, str]]:
    """CAP 1.2 section 3 rules that the schema does not enforce."""
    errors: list[dict[str, str]] = []

    def err(field_: str, message: str) -> None:
        errors.append({"field": field_, "message": message})

    for name in ("identifier", "sender"):
        value = _t(_child(root, name))
        if _FORBIDDEN.search(value):
            err(f"/alert/{name}", "must not contain spaces, commas or restricted characters (< &)")
    scope = _t(_child(root, "scope"))
    if scope == "Restricted" and not _t(_child(root, "restriction")):
        err("/alert/restriction", "required when scope is Restricted")
    if scope == "Private" and not _t(_child(root, "addresses")):
        err("/alert/addresses", "required when scope is Private")
    msg_type = _t(_child(root, "msgType"))
    refs = _t(_child(root, "references"))
    if msg_type in ("Update", "Cancel", "Ack", "Error") and not refs:
        err("/alert/references", f"a {msg_type} message must reference the earlier message(s)")
    for ref in refs.split():
        parts = ref.split(",")
        if len(parts) != 3 or not _CAP_DT.match(parts[2]):
            err("/alert/references", f"{ref!r} is not sender,identifier,sent")
    times = [("/alert/sent", _child(root, "sent"))]
    for i, info in enumerate(_all(root, "info"), start=1):
        for name in ("effective", "onset", "expires"):
            times.append((f"/alert/info[{i}]/{name}", _child(info, name)))
        for j, area in enumerate(_all(info, "area"), start=1):
            where = f"/alert/info[{i}]/area[{j}]"
            for k, poly in enumerate(_all(area, "polygon"), start=1):
                pairs = _t(poly).split()
                coords = [_PAIR.match(p) for p in pairs]
                if len(pairs) < 4:
                    err(f"{where}/polygon[{k}]", "a polygon needs at least 4 coordinate pairs")
                elif pairs[0] != pairs[-1]:
                    err(f"{where}/polygon[{k}]", "a polygon must be closed (first pair = last)")
                if not all(c and _wgs84(float(c[1]), float(c[2])) for c in coords):
                    err(f"{where}/polygon[{k}]", "each point must be a WGS84 'lat,lon' pair")
            for k, circle in enumerate(_all(area, "circle"), start=1):
                m = _CIRCLE.match(_t(circle))
                if not m or not _wgs84(float(m[1]), float(m[2])) or float(m[3]) < 0:
                    err(f"{where}/circle[{k}]", "a circle is 'lat,lon radius' (WGS84, km >= 0)")
    for where, el in times:
        if el is not None and not _CAP_DT.match(_t(el)):
            err(where, "date-time must be YYYY-MM-DDThh:mm:ss±hh:mm (no fractions, no Z)")
    return errors
