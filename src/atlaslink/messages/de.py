"""The EDXL-DE envelope: 2.0 by default, 1.0 for older peers (a partner setting).

The descriptor carries the sender, the explicit recipients, the confidentiality derived from
the request's markings, the incident and keywords; the payload is one RM message or a CAP
alert as embedded XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # element type only; parsing is xmlsafe's
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lxml import etree as LET

from atlaslink.messages import valuelist as vl
from atlaslink.messages.rm import dt
from atlaslink.messages.xmlsafe import local_name, namespace
from atlaslink.operations import vocab

NS_DE2 = "urn:oasis:names:tc:emergency:EDXL:DE:2.0"
NS_DE1 = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"
NS_CT = "urn:oasis:names:tc:emergency:edxl:ct:1.0"
NS_XLINK = "http://www.w3.org/1999/xlink"
# lxml names the default namespace with the key None (its stubs want str keys).
_NSMAP_DE2: Any = {None: NS_DE2, "ct": NS_CT, "xlink": NS_XLINK}
# How long an envelope stays current (DE 2.0 requires dateTimeExpires).
EXPIRES_AFTER = timedelta(days=30)


@dataclass
class Markings:
    classification: str = "none"
    distribution_marking: str = ""
    handling_code: str = "H0"

    @property
    def classified(self) -> bool:
        return self.classification != "none"

    def label(self) -> str:
        text = vocab.CLASSIFICATIONS.get(self.classification, self.classification)
        return "UNCLASSIFIED" if not self.classified else text


@dataclass
class Envelope:
    """What the sender states about a distribution."""

    distribution_id: str
    sender_id: str
    sent: datetime
    exercise: bool
    kind: str  # Request, Response, Report, Update, Cancel
    recipients: list[str]
    markings: Markings
    # Units a request is addressed to (scheme ``atlaslink:unit``), as the recipient sees them.
    units: list[str] = field(default_factory=list)
    incident_id: str | None = None
    incident_description: str = ""
    keywords: dict[str, list[str]] = field(default_factory=dict)
    content_description: str = ""
    sender_role: str = ""
    recipient_role: str = ""


def _e(parent: LET._Element, ns: str, name: str, text: str | None = None) -> LET._Element:
    el = LET.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        el.text = text
    return el


def _vl2(parent: LET._Element, name: str, urn: str, values: list[str]) -> None:
    el = _e(parent, NS_DE2, name)
    _e(el, NS_CT, "ValueListURI", urn)
    for v in values:
        _e(el, NS_CT, "Value", v)


def _vl1(parent: LET._Element, name: str, urn: str, values: list[str]) -> None:
    el = _e(parent, NS_DE1, name)
    _e(el, NS_DE1, "valueListUrn", urn)
    for v in values:
        _e(el, NS_DE1, "value", v)


def _keywords(env: Envelope) -> list[tuple[str, list[str]]]:
    out = [
        (vl.CLASSIFICATION_URN, [env.markings.classification]),
        (vl.HANDLING_URN, [env.markings.handling_code]),
    ]
    if env.markings.distribution_marking:
        out.append((vl.DISTRIBUTION_URN, [env.markings.distribution_marking]))
    out.extend(sorted(env.keywords.items()))
    return out


def wrap(env: Envelope, payload: LET._Element, version: str = "2.0") -> LET._Element:
    return wrap_v1(env, payload) if version == "1.0" else wrap_v2(env, payload)


def wrap_v2(env: Envelope, payload: LET._Element) -> LET._Element:
    xl = f"{{{NS_XLINK}}}type"
    root = LET.Element(
        f"{{{NS_DE2}}}edxlDistribution",
        nsmap=_NSMAP_DE2,
    )
    root.set(xl, "extended")
    _e(root, NS_DE2, "distributionID", env.distribution_id)
    _e(root, NS_DE2, "senderID", env.sender_id)
    _e(root, NS_DE2, "dateTimeSent", dt(env.sent))
    _e(root, NS_DE2, "dateTimeExpires", dt(env.sent + EXPIRES_AFTER))
    _e(root, NS_DE2, "distributionStatus", "Exercise" if env.exercise else "Actual")
    _e(root, NS_DE2, "distributionKind", env.kind)
    d = _e(root, NS_DE2, "descriptor")
    d.set(xl, "resource")
    _e(
        d,
        NS_DE2,
        "combinedConfidentiality",
        "Classified" if env.markings.classified else "Unclassified",
    )
    _e(d, NS_DE2, "language", "en")
    if env.sender_role:
        _vl2(d, "senderRole", vl.ROLE_URN, [env.sender_role])
    if env.recipient_role:
        _vl2(d, "recipientRole", vl.ROLE_URN, [env.recipient_role])
    for urn, values in _keywords(env):
        _vl2(d, "keyword", urn, values)
    if env.recipients:
        ea = _e(d, NS_DE2, "explicitAddress")
        _e(ea, NS_DE2, "explicitAddressScheme", vl.ADDRESS_SCHEME)
        for r in env.recipients:
            _e(ea, NS_DE2, "explicitAddressValue", r)
    if env.units:
        ea = _e(d, NS_DE2, "explicitAddress")
        _e(ea, NS_DE2, "explicitAddressScheme", vl.UNIT_ADDRESS_SCHEME)
        for u in env.units:
            _e(ea, NS_DE2, "explicitAddressValue", u)
    if env.incident_id:
        _e(d, NS_DE2, "incidentID", env.incident_id)
    if env.incident_description:
        _e(d, NS_DE2, "incidentDescription", env.incident_description)
    content = _e(root, NS_DE2, "content")
    content.set(xl, "resource")
    obj = _e(content, NS_DE2, "contentObject")
    obj.set(xl, "resource")
    cd = _e(obj, NS_DE2, "contentDescriptor")
    if env.content_description:
        _e(cd, NS_DE2, "contentDescription", env.content_description)
    _e(cd, NS_DE2, "confidentiality", "Classified" if env.markings.classified else "Unclassified")
    cx = _e(obj, NS_DE2, "contentXML")
    embedded = _e(cx, NS_DE2, "embeddedXMLContent")
    embedded.append(payload)
    return root


def wrap_v1(env: Envelope, payload: LET._Element) -> LET._Element:
    root = LET.Element(f"{{{NS_DE1}}}EDXLDistribution", nsmap={"edxlde": NS_DE1})
    _e(root, NS_DE1, "distributionID", env.distribution_id)
    _e(root, NS_DE1, "senderID", env.sender_id)
    _e(root, NS_DE1, "dateTimeSent", dt(env.sent))
    _e(root, NS_DE1, "distributionStatus", "Exercise" if env.exercise else "Actual")
    _e(root, NS_DE1, "distributionType", env.kind)
    _e(root, NS_DE1, "combinedConfidentiality", env.markings.label())
    _e(root, NS_DE1, "language", "en")
    if env.sender_role:
        _vl1(root, "senderRole", vl.ROLE_URN, [env.sender_role])
    if env.recipient_role:
        _vl1(root, "recipientRole", vl.ROLE_URN, [env.recipient_role])
    for urn, values in _keywords(env):
        _vl1(root, "keyword", urn, values)
    if env.recipients:
        ea = _e(root, NS_DE1, "explicitAddress")
        _e(ea, NS_DE1, "explicitAddressScheme", vl.ADDRESS_SCHEME)
        for r in env.recipients:
            _e(ea, NS_DE1, "explicitAddressValue", r)
    if env.units:
        ea = _e(root, NS_DE1, "explicitAddress")
        _e(ea, NS_DE1, "explicitAddressScheme", vl.UNIT_ADDRESS_SCHEME)
        for u in env.units:
            _e(ea, NS_DE1, "explicitAddressValue", u)
    obj = _e(root, NS_DE1, "contentObject")
    if env.content_description:
        _e(obj, NS_DE1, "contentDescription", env.content_description)
    if env.incident_id:
        _e(obj, NS_DE1, "incidentID", env.incident_id)
    if env.incident_description:
        _e(obj, NS_DE1, "incidentDescription", env.incident_description)
    _e(obj, NS_DE1, "confidentiality", env.markings.label())
    xc = _e(obj, NS_DE1, "xmlContent")
    embedded = _e(xc, NS_DE1, "embeddedXMLContent")
    embedded.append(payload)
    return root


# ----------------------------------------------------------------------------- reading


def is_envelope(root: ET.Element) -> str | None:
    """ "2.0" or "1.0" for an EDXL-DE envelope, else None."""
    ns, name = namespace(root.tag), local_name(root.tag)
    if ns == NS_DE2 and name == "edxlDistribution":
        return "2.0"
    if ns == NS_DE1 and name == "EDXLDistribution":
        return "1.0"
    return None


def _t(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if local_name(c.tag) == name), None)


def _all(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if local_name(c.tag) == name]


@dataclass
class Opened:
    version: str
    sender_id: str
    distribution_id: str
    exercise: bool | None
    recipients: list[str]
    unit_recipients: list[str]
    keywords: dict[str, list[str]]
    payloads: list[tuple[str, ET.Element]]  # (path of the embeddedXMLContent, payload root)


def open_envelope(root: ET.Element, version: str) -> Opened:
    v2 = version == "2.0"
    holder = _child(root, "descriptor") if v2 else root
    keywords: dict[str, list[str]] = {}
    recipients: list[str] = []
    units: list[str] = []
    if holder is not None:
        for kw in _all(holder, "keyword"):
            urn = _t(_child(kw, "ValueListURI" if v2 else "valueListUrn"))
            keywords.setdefault(urn, []).extend(_t(v) for v in _all(kw, "Value" if v2 else "value"))
        for ea in _all(holder, "explicitAddress"):
            scheme = _t(_child(ea, "explicitAddressScheme"))
            values = [_t(v) for v in _all(ea, "explicitAddressValue")]
            if scheme == vl.UNIT_ADDRESS_SCHEME:
                units.extend(values)
            else:
                recipients.extend(values)
    payloads: list[tuple[str, ET.Element]] = []
    if v2:
        content = _child(root, "content")
        objects = _all(content, "contentObject") if content is not None else []
        for i, obj in enumerate(objects, start=1):
            cx = _child(obj, "contentXML")
            emb = _child(cx, "embeddedXMLContent") if cx is not None else None
            if emb is not None:
                path = f"/edxlDistribution/content/contentObject[{i}]/contentXML/embeddedXMLContent"
                payloads.extend((path, p) for p in emb)
    else:
        for i, obj in enumerate(_all(root, "contentObject"), start=1):
            xc = _child(obj, "xmlContent")
            for emb in _all(xc, "embeddedXMLContent") if xc is not None else []:
                path = f"/EDXLDistribution/contentObject[{i}]/xmlContent/embeddedXMLContent"
                payloads.extend((path, p) for p in emb)
    status = _t(_child(root, "distributionStatus"))
    return Opened(
        version=version,
        sender_id=_t(_child(root, "senderID")),
        distribution_id=_t(_child(root, "distributionID")),
        exercise=True if status == "Exercise" else (False if status == "Actual" else None),
        recipients=recipients,
        unit_recipients=units,
        keywords=keywords,
        payloads=payloads,
    )
