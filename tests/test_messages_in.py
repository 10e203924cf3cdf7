"""Messages in: the API imports RM (bare or enveloped) and CAP through the existing services;
the same MessageID twice changes nothing; invalid and unsafe messages are refused naming the
element and the rule; platform -> XML -> platform keeps what the standard carries."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.config import get_settings
from atlaslink.messages import de, rm, xmlsafe
from atlaslink.models import AssistanceRequest, AuditEvent, Offer, StdMessage
from tests.conftest import unit_id
from tests.messages_support import (
    STANDARDS,
    ok,
    outbox_of,
    request_body,
    standard_partners,
)

XML = {"Content-Type": "application/xml"}


@pytest.fixture(autouse=True)
def _schema_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator configured the official schemas (ATLASLINK_SCHEMA_DIR)."""
    if STANDARDS is None:
        pytest.skip("the official schemas (../shared/standards) are not on this machine")
    monkeypatch.setattr(get_settings(), "schema_dir", STANDARDS)


def _sent_request(api_as: Any, db: Session, **over: Any) -> tuple[int, str]:
    standard_partners(db)
    de_ = api_as("duty.de")
    rid = ok(de_.post("/api/v1/requests", json=request_body(submit=True, **over)), 201)["id"]
    ok(de_.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}))
    body = next(r.body for r in outbox_of(db, "at-adler") if r.message_type == "RequestResource")
    return rid, body


def _bare_payload(envelope: str) -> bytes:
    root = xmlsafe.parse(envelope.encode())
    payload = de.open_envelope(root, "2.0").payloads[0][1]
    import xml.etree.ElementTree as ET

    return ET.tostring(payload, encoding="utf-8")


def test_round_trip_platform_xml_platform(api_as: Any, db: Session) -> None:
    rid, envelope = _sent_request(
        api_as,
        db,
        lapse_at="2030-11-24T08:00:00+00:00",
        handling_code="H3",
        handling_note="Not to be shared with the press",
    )
    # A peer platform forwards the request under its own message ids.
    payload = _bare_payload(envelope).replace(b">atlaslink:", b">peer-node:")
    r = api_as("duty.de").post("/api/v1/messages", content=payload, headers=XML)
    out = ok(r, 201)
    assert out["message_type"] == "RequestResource" and out["envelope"] is None
    assert out["schema_validation"] == "official schemas"
    original = ok(api_as("duty.de").get(f"/api/v1/requests/{rid}"))
    copy = ok(api_as("duty.de").get(f"/api/v1/requests/{out['request_id']}"))
    keep = (
        "exercise",
        "title",
        "crisis_category",
        "location_name",
        "latitude",
        "longitude",
        "nature",
        "operational_necessity",
        "legal_basis",
        "classification",
        "distribution_marking",
        "handling_code",
        "handling_note",
        "lapse_at",
        "incident_id",
        "requesting_country",
    )
    for k in keep:
        assert copy[k] == original[k], k
    line_keys = ("capability", "min_level", "quantity", "needed_by", "note")
    assert [{k: x[k] for k in line_keys} for x in copy["lines"]] == [
        {k: x[k] for k in line_keys} for x in original["lines"]
    ]
    assert copy["status"] == "SUBMITTED"
    # Imported through the services: timeline and audit as for any request.
    events = api_as("duty.de").get(f"/api/v1/requests/{out['request_id']}/events").json()
    assert any(e["kind"] == "request.submitted" for e in events)
    assert db.scalar(select(func.count()).where(AuditEvent.action == "message.imported")) == 1


def test_same_message_id_twice_changes_nothing(api_as: Any, db: Session) -> None:
    _rid, envelope = _sent_request(api_as, db)
    payload = _bare_payload(envelope).replace(b">atlaslink:", b">peer-node:")
    de_ = api_as("duty.de")
    first = ok(de_.post("/api/v1/messages", content=payload, headers=XML), 201)
    before = db.scalar(select(func.count()).select_from(AssistanceRequest))
    again = ok(de_.post("/api/v1/messages", content=payload, headers=XML), 200)
    assert again["duplicate"] is True and again["request_id"] == first["request_id"]
    assert db.scalar(select(func.count()).select_from(AssistanceRequest)) == before
    # Our own message coming back changes nothing either.
    own = ok(de_.post("/api/v1/messages", content=_bare_payload(envelope), headers=XML), 200)
    assert own["duplicate"] is True


def _response_xml(rr_id: str, *, sender: str, quantity: int, when: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0"
   xmlns:xlink="http://www.w3.org/1999/xlink" xlink:type="extended">
 <distributionID>at-adler-77</distributionID>
 <senderID>{sender}</senderID>
 <dateTimeSent>{when}</dateTimeSent>
 <dateTimeExpires>2031-01-01T00:00:00+01:00</dateTimeExpires>
 <distributionStatus>Exercise</distributionStatus>
 <distributionKind>Response</distributionKind>
 <content xlink:type="resource"><contentObject xlink:type="resource"><contentXML>
  <embeddedXMLContent>
   <rmsg:ResponseToRequestResource xmlns:rmsg="urn:oasis:names:tc:emergency:EDXL:RM:1.0:msg"
       xmlns:rm="urn:oasis:names:tc:emergency:EDXL:RM:1.0">
    <rmsg:MessageID>at-adler-cmd-0077</rmsg:MessageID>
    <rmsg:SentDateTime>{when}</rmsg:SentDateTime>
    <rmsg:MessageContentType>ResponseToRequestResource</rmsg:MessageContentType>
    <rmsg:OriginatingMessageID>{rr_id}</rmsg:OriginatingMessageID>
    <rmsg:PrecedingMessageID>{rr_id}</rmsg:PrecedingMessageID>
    <rmsg:ContactInformation><rm:ContactDescription>AT-ADLER duty desk</rm:ContactDescription>
      <rm:ContactRole>RespondingOrg</rm:ContactRole></rmsg:ContactInformation>
    <rmsg:ResourceInformation>
     <rmsg:ResourceInfoElementID>at-1</rmsg:ResourceInfoElementID>
     <rmsg:ResponseInformation>
      <rm:PrecedingResourceInfoElementID>line-1</rm:PrecedingResourceInfoElementID>
      <rm:ResponseType>Accept</rm:ResponseType>
     </rmsg:ResponseInformation>
     <rmsg:Resource><rmsg:Name>ADLER team</rmsg:Name>
      <rmsg:Description>{quantity} operators with rail kit</rmsg:Description></rmsg:Resource>
     <rmsg:AssignmentInformation><rmsg:Quantity><rm:QuantityText>{quantity}</rm:QuantityText>
      </rmsg:Quantity></rmsg:AssignmentInformation>
    </rmsg:ResourceInformation>
   </rmsg:ResponseToRequestResource>
  </embeddedXMLContent></contentXML></contentObject></content>
</edxlDistribution>"""


def test_a_partner_answers_and_reports_steps_through_messages(api_as: Any, db: Session) -> None:
    rid, envelope = _sent_request(api_as, db)
    rr_id = rm.read(xmlsafe.parse(_bare_payload(envelope))).message_id
    at = api_as("duty.at")
    doc = _response_xml(
        rr_id, sender="at.adler.command", quantity=4, when="2030-11-23T14:05:00+01:00"
    )
    out = ok(at.post("/api/v1/messages", content=doc.encode(), headers=XML), 201)
    assert out["partner"] == "at-adler" and out["envelope"] == "2.0"
    offer = db.scalar(select(Offer).where(Offer.request_id == rid))
    assert offer is not None and offer.status == "OFFERED" and "rail kit" in offer.package
    # The answer was not echoed back to the partner that sent it.
    assert not [
        r for r in outbox_of(db, "at-adler") if r.message_type == "ResponseToRequestResource"
    ]
    assert [r for r in outbox_of(db, "de-falke") if r.message_type == "ResponseToRequestResource"]
    # Accepted and agreed on the platform; the partner then reports mobilising by message.
    de_ = api_as("duty.de")
    res = ok(de_.post(f"/api/v1/requests/{rid}/offers/{offer.id}/accept", json={}))
    rev = res["offers"][0]["arrangement"]["revision"]
    for c in (de_, at):
        ok(
            c.post(
                f"/api/v1/requests/{rid}/offers/{offer.id}/arrangement/confirm",
                json={"revision": rev},
            )
        )
    status = next(r.body for r in outbox_of(db, "at-adler") if r.message_type == "CommitResource")
    commit = rm.read(de.open_envelope(xmlsafe.parse(status.encode()), "2.0").payloads[0][1])
    report = f"""<rmsg:ReportResourceDeploymentStatus
  xmlns:rmsg="urn:oasis:names:tc:emergency:EDXL:RM:1.0:msg"
  xmlns:rm="urn:oasis:names:tc:emergency:EDXL:RM:1.0">
 <rmsg:MessageID>at-adler-cmd-0078</rmsg:MessageID>
 <rmsg:SentDateTime>2030-11-23T15:00:00+01:00</rmsg:SentDateTime>
 <rmsg:MessageContentType>ReportResourceDeploymentStatus</rmsg:MessageContentType>
 <rmsg:OriginatingMessageID>{commit.origin}</rmsg:OriginatingMessageID>
 <rmsg:PrecedingMessageID>{commit.message_id}</rmsg:PrecedingMessageID>
 <rmsg:ContactInformation><rm:ContactRole>Owner</rm:ContactRole></rmsg:ContactInformation>
 <rmsg:ResourceInformation>
  <rmsg:ResourceInfoElementID>offer-{offer.id}-line-1</rmsg:ResourceInfoElementID>
  <rmsg:Resource><rmsg:ResourceID>AT-ADLER/offer-{offer.id}</rmsg:ResourceID>
   <rmsg:ResourceStatus><rmsg:DeploymentStatus>
    <rm:ValueListURN>urn:atlaslink:valuelist:deployment-status</rm:ValueListURN>
    <rm:Value>MOBILISING</rm:Value></rmsg:DeploymentStatus></rmsg:ResourceStatus>
  </rmsg:Resource>
 </rmsg:ResourceInformation>
</rmsg:ReportResourceDeploymentStatus>"""
    out = ok(at.post("/api/v1/messages", content=report.encode(), headers=XML), 201)
    assert "MOBILISING" in out["outcome"]
    db.expire_all()
    assert db.get(Offer, offer.id).status == "MOBILISING"  # type: ignore[union-attr]


def test_invalid_message_is_refused_naming_element_and_rule(api_as: Any) -> None:
    assert STANDARDS is not None
    doc = (STANDARDS / "edxl-rm-1.0/examples/CommitResource-Decline.xml").read_bytes()
    r = api_as("duty.at").post("/api/v1/messages", content=doc, headers=XML)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert "PersonName" in problem["detail"] and "AdditionalContactInformation" in problem["detail"]
    assert problem["errors"][0]["field"].startswith("/rmsg:CommitResource")


def test_unsafe_xml_is_refused(api_as: Any) -> None:
    doc = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    r = api_as("duty.at").post("/api/v1/messages", content=doc, headers=XML)
    assert r.status_code == 422 and "DTD" in r.json()["detail"]
    assert "passwd" not in r.text or "file:///etc/passwd" not in r.json().get("detail", "")


def test_unknown_sender_and_someone_elses_partner(api_as: Any, db: Session) -> None:
    _rid, envelope = _sent_request(api_as, db)
    rr_id = rm.read(xmlsafe.parse(_bare_payload(envelope))).message_id
    when = "2030-11-23T14:05:00+01:00"
    unknown = _response_xml(rr_id, sender="nobody.we.know", quantity=1, when=when)
    r = api_as("duty.at").post("/api/v1/messages", content=unknown.encode(), headers=XML)
    assert r.status_code == 422 and "not a registered partner" in r.json()["detail"]
    foreign = _response_xml(rr_id, sender="at.adler.command", quantity=1, when=when)
    r = api_as("commander.nl").post("/api/v1/messages", content=foreign.encode(), headers=XML)
    assert r.status_code == 403
    assert (
        db.scalar(select(func.count()).select_from(StdMessage).where(StdMessage.direction == "in"))
        == 0
    )


def test_check_without_import_and_the_value_list(api_as: Any) -> None:
    assert STANDARDS is not None
    doc = (STANDARDS / "cap-1.2/examples/real-world/sweden.cap").read_bytes()
    out = ok(api_as("duty.at").post("/api/v1/messages/check", content=doc, headers=XML))
    assert out["valid"] is False and "Type" in out["errors"][0]["message"]
    vl_ = ok(api_as("duty.at").get("/api/v1/messages/valuelists/capability-types"))
    assert vl_["valueListURN"].startswith("urn:atlaslink:valuelist:capability-type:v")
    swat = next(v for v in vl_["values"] if v["value"] == "building")
    assert swat["rtlt_id"] == "6-508-1245"


def test_cap_pre_alert_round_trip(api_as: Any, db: Session) -> None:
    standard_partners(db)
    de_ = api_as("duty.de")
    pa = ok(
        de_.post(
            "/api/v1/requests",
            json=request_body(kind="pre_alert", submit=True, lines=[], legal_basis=None),
        ),
        201,
    )
    ok(
        de_.post(
            f"/api/v1/requests/{pa['id']}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}
        )
    )
    body = next(r.body for r in outbox_of(db, "at-adler") if r.message_type == "CAP")
    alert = de.open_envelope(xmlsafe.parse(body.encode()), "2.0").payloads[0][1]
    import xml.etree.ElementTree as ET

    raw = ET.tostring(alert, encoding="utf-8").replace(
        b"<ns0:identifier>atlaslink:", b"<ns0:identifier>peer-node:"
    )
    raw = raw.replace(
        b"<ns0:sender>atlaslink</ns0:sender>", b"<ns0:sender>de.falke.command</ns0:sender>"
    )
    out = ok(de_.post("/api/v1/messages", content=raw, headers=XML), 201)
    copy = ok(de_.get(f"/api/v1/requests/{out['request_id']}"))
    original = ok(de_.get(f"/api/v1/requests/{pa['id']}"))
    assert copy["kind"] == "pre_alert" and copy["status"] == "ALERTED"
    for k in (
        "exercise",
        "title",
        "crisis_category",
        "location_name",
        "latitude",
        "longitude",
        "nature",
        "operational_necessity",
        "classification",
        "handling_code",
        "distribution_marking",
        "incident_id",
    ):
        assert copy[k] == original[k], k


def test_a_status_request_is_answered_with_a_report(api_as: Any, db: Session) -> None:
    from tests.messages_support import full_operation

    standard_partners(db)
    rid = full_operation(api_as, db)
    at_offer = db.scalar(
        select(Offer).where(Offer.request_id == rid, Offer.unit_id == unit_id(db, "AT-ADLER"))
    )
    assert at_offer is not None
    rows = outbox_of(db, "de-falke")
    origin = rm.read(de.open_envelope(xmlsafe.parse(rows[0].body.encode()), "2.0").payloads[0][1])
    ask = f"""<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0"
   xmlns:xlink="http://www.w3.org/1999/xlink" xlink:type="extended">
 <distributionID>de-falke-9</distributionID><senderID>de.falke.command</senderID>
 <dateTimeSent>2030-11-24T09:00:00+01:00</dateTimeSent>
 <dateTimeExpires>2030-11-25T09:00:00+01:00</dateTimeExpires>
 <distributionStatus>Exercise</distributionStatus><distributionKind>Request</distributionKind>
 <content xlink:type="resource"><contentObject xlink:type="resource"><contentXML><embeddedXMLContent>
 <rmsg:RequestResourceDeploymentStatus xmlns:rmsg="urn:oasis:names:tc:emergency:EDXL:RM:1.0:msg"
   xmlns:rm="urn:oasis:names:tc:emergency:EDXL:RM:1.0">
  <rmsg:MessageID>de-falke-cmd-9</rmsg:MessageID>
  <rmsg:SentDateTime>2030-11-24T09:00:00+01:00</rmsg:SentDateTime>
  <rmsg:MessageContentType>RequestResourceDeploymentStatus</rmsg:MessageContentType>
  <rmsg:OriginatingMessageID>{origin.origin}</rmsg:OriginatingMessageID>
  <rmsg:ContactInformation><rm:ContactRole>Requester</rm:ContactRole></rmsg:ContactInformation>
  <rmsg:ResourceInformation><rmsg:ResourceInfoElementID>ask-1</rmsg:ResourceInfoElementID>
   <rmsg:Resource><rmsg:ResourceID>AT-ADLER/offer-{at_offer.id}</rmsg:ResourceID></rmsg:Resource>
  </rmsg:ResourceInformation>
 </rmsg:RequestResourceDeploymentStatus></embeddedXMLContent></contentXML></contentObject></content>
</edxlDistribution>"""
    before = {r.id for r in outbox_of(db, "de-falke")}
    out = ok(api_as("duty.de").post("/api/v1/messages", content=ask.encode(), headers=XML), 201)
    assert "HOME" in out["outcome"]
    new = [r for r in outbox_of(db, "de-falke") if r.id not in before]
    assert [r.message_type for r in new] == ["ReportResourceDeploymentStatus"]
    report = rm.read(de.open_envelope(xmlsafe.parse(new[0].body.encode()), "2.0").payloads[0][1])
    assert report.resources[0].deployment_status == "HOME"
