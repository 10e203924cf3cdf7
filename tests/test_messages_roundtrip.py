"""Round trips between two installations: a whole operation run on this one, every message
its requesting side's command system receives imported, in order, into a second, fresh
installation (the partner side), and what the standard can carry compared on both sides.

Each message is imported on the partner side by the user who speaks for the party that sent
it (the requesting side, or the unit named in the message), as a partner's duty desk would.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.app import create_app
from atlaslink.auth import service as auth
from atlaslink.config import get_settings
from atlaslink.db import make_engine
from atlaslink.messages import de, rm, schemas, service, validation, xmlsafe
from atlaslink.models import OutboxMessage, StdMessage, Unit, User
from tests.conftest import create_database, load_demo, unit_id
from tests.messages_support import (
    STANDARDS,
    full_operation,
    official,
    ok,
    outbox_of,
    principal,
    request_body,
    standard_partners,
)

XML = {"Content-Type": "application/xml"}


@dataclass
class Installation:
    app: Any
    factory: sessionmaker[Session]

    def api_as(self, username: str) -> TestClient:
        with self.factory() as s:
            user = s.scalar(select(User).where(User.username == username))
            assert user is not None, username
            token = auth.create_token(s, user, "round trip").token
            s.commit()
        c = TestClient(self.app)
        c.headers["Authorization"] = f"Bearer {token}"
        return c


@pytest.fixture(autouse=True)
def _schema_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    if STANDARDS is None:
        pytest.skip("the official schemas (../shared/standards) are not on this machine")
    monkeypatch.setattr(get_settings(), "schema_dir", STANDARDS)


@pytest.fixture
def partner_side(tmp_path: Path) -> Iterator[Installation]:
    """A second installation with its own fresh database (the demo network registered), which
    knows this platform as a partner (not a unit: it relays every party's messages)."""
    url, drop = create_database(tmp_path, "partner")
    engine = make_engine(url)
    load_demo(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as s:
        service.create_partner(
            s,
            principal(s, "support"),
            schemas.PartnerCreate(
                code="peer", name="the peer platform", sender_id="atlaslink", observer=True
            ),
        )
        s.commit()
    try:
        yield Installation(create_app(engine, factory, run_jobs=False), factory)
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def payload_of(body: str) -> ET.Element:
    root = xmlsafe.parse(body.encode())
    version = de.is_envelope(root)
    assert version is not None
    return de.open_envelope(root, version).payloads[0][1]


def speaker(msg: rm.Message, users: dict[str, str]) -> str:
    """Who speaks for the sender of a message: the requesting side, or the unit it names."""
    for c in msg.contacts:
        if c.role in ("RespondingOrg", "Owner"):
            return users[c.description.split()[0]]
    return users["requester"]


def _offers_by_unit(req: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["unit"]["code"]: o for o in req["offers"]}


def test_a_whole_operation_survives_the_round_trip(
    api_as: Any, db: Session, partner_side: Installation
) -> None:
    standard_partners(db)
    rid = full_operation(api_as, db)
    rows: list[OutboxMessage] = outbox_of(db, "de-falke")
    fr_code = db.scalar(
        select(Unit.code).join(User, User.unit_id == Unit.id).where(User.username == "duty.fr")
    )
    assert fr_code is not None
    users = {
        "requester": "duty.de",
        "AT-ADLER": "duty.at",
        "NL-REIGER": "commander.nl",
        fr_code: "duty.fr",
    }
    # The partner side has a history of its own: its offer ids are not ours.
    own_business(partner_side)
    types, copy_id = replay(partner_side, rows, users)
    assert set(types) >= {
        "RequestResource",
        "ResponseToRequestResource",
        "RequisitionResource",
        "CommitResource",
        "ReportResourceDeploymentStatus",
        "ReleaseResource",
        "RequestReturn",
    }
    original = ok(api_as("duty.de").get(f"/api/v1/requests/{rid}"))
    copy = ok(partner_side.api_as("duty.de").get(f"/api/v1/requests/{copy_id}"))
    # The request: its content, version (one amendment), incident and state.
    for k in (
        "exercise",
        "title",
        "crisis_category",
        "location_name",
        "nature",
        "operational_necessity",
        "legal_basis",
        "classification",
        "distribution_marking",
        "handling_code",
        "incident_id",
        "version",
        "status",
    ):
        assert copy[k] == original[k], k
    line_keys = ("line_no", "capability", "min_level", "quantity", "needed_by", "note")
    assert [{k: x[k] for k in line_keys} for x in copy["lines"]] == [
        {k: x[k] for k in line_keys} for x in original["lines"]
    ]
    # Who was asked and what each answered (with the reason).
    assert {a["unit"]["code"]: (a["status"], a["reason"]) for a in copy["addressees"]} == {
        a["unit"]["code"]: (a["status"], a["reason"]) for a in original["addressees"]
    }
    # Each offer: kind, status, quantities offered and accepted per line, package, ETA,
    # conditions, costs, reason (counter-proposal, withdrawal, recall).
    theirs, ours = _offers_by_unit(copy), _offers_by_unit(original)
    assert theirs.keys() == ours.keys()
    offer_keys = ("kind", "status", "lines", "package", "eta_at", "conditions", "costs", "reason")
    for code, o in ours.items():
        for k in offer_keys:
            assert theirs[code][k] == o[k], (code, k)
        assert theirs[code]["arrangement"] is not None or o["arrangement"] is None

    # Each team's steps, with the notes given with them, read the same on both sides.
    def steps(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(e["kind"], e["summary"]) for e in events if e["kind"] in _STEP_KINDS]

    theirs_events = partner_side.api_as("duty.de").get(f"/api/v1/requests/{copy_id}/events").json()
    ours_events = api_as("duty.de").get(f"/api/v1/requests/{rid}/events").json()
    assert steps(theirs_events) == steps(ours_events)
    assert ("deployment.en_route", "AT-ADLER: en route — Crossing at Salzburg") in steps(
        ours_events
    )
    # Threading: every message on the partner side sits on the copy, and every message about
    # an offer on the copy's offer of the same unit.
    with partner_side.factory() as s:
        records = list(
            s.scalars(
                select(StdMessage).where(StdMessage.direction == "in").order_by(StdMessage.id)
            )
        )
        assert len(records) == len(rows)
        assert {r.request_id for r in records} == {copy_id}
        by_id = {o["id"]: code for code, o in theirs.items()}
        for rec, row in zip(records, rows, strict=True):
            msg = rm.read(payload_of(row.body))
            assert rec.message_id == msg.message_id
            named = {
                r.resource_id.split("/")[0] for r in msg.resources if r.resource_id is not None
            }
            if named:
                assert rec.offer_id is not None and {by_id[rec.offer_id]} == named, msg.type


_STEP_KINDS = {
    f"deployment.{s}"
    for s in ("mobilising", "en_route", "on_site", "on_task", "stood_down", "returning", "home")
}


def replay(
    inst: Installation, rows: list[OutboxMessage], users: dict[str, str]
) -> tuple[list[str], int]:
    """Import each message on the partner side as the user who speaks for its sender; the
    requesting side confirms the arrangements there after a requisition (that has no RM
    message). Returns the message types and the partner side's copy of the request."""
    clients: dict[str, TestClient] = {}
    types: list[str] = []
    copy_id = 0
    for row in rows:
        # Every message is valid before it travels.
        assert validation.check(xmlsafe.parse(row.body.encode()), official()).ok
        msg = rm.read(payload_of(row.body))
        who = speaker(msg, users)
        client = clients.setdefault(who, inst.api_as(who))
        r = client.post("/api/v1/messages", content=row.body.encode(), headers=XML)
        assert r.status_code == 201, (msg.type, who, r.text)
        out = r.json()
        assert out["partner"] == "peer" and out["duplicate"] is False
        types.append(msg.type)
        copy_id = copy_id or out["request_id"]
        if msg.type == "RequisitionResource":
            # The requesting side's confirmation of the arrangements record has no RM
            # message (docs/messages.md): the partner side's requester confirms it there.
            offer_id = partner_offer(inst, msg.message_id)
            current = ok(client.get(f"/api/v1/requests/{copy_id}"))
            arr = next(o for o in current["offers"] if o["id"] == offer_id)["arrangement"]
            ok(
                client.post(
                    f"/api/v1/requests/{copy_id}/offers/{offer_id}/arrangement/confirm",
                    json={"revision": arr["revision"]},
                )
            )
    return types, copy_id


def partner_offer(inst: Installation, message_id: str) -> int:
    with inst.factory() as s:
        rec = s.scalar(select(StdMessage).where(StdMessage.message_id == message_id))
        assert rec is not None and rec.offer_id is not None
        return rec.offer_id


def own_business(inst: Installation) -> None:
    """A request and an offer of the partner side's own, made before the messages arrive."""
    de_, at = inst.api_as("duty.de"), inst.api_as("duty.at")
    body = request_body(submit=True, title="A local exercise")
    rid = ok(de_.post("/api/v1/requests", json=body), 201)["id"]
    with inst.factory() as s:
        at_id = s.scalar(select(Unit.id).where(Unit.code == "AT-ADLER"))
    ok(de_.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [at_id]}))
    ok(
        at.post(
            f"/api/v1/requests/{rid}/answers",
            json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 1}]},
        ),
        201,
    )


def test_a_declined_offer_and_a_status_request_survive_the_round_trip(
    api_as: Any, db: Session, partner_side: Installation
) -> None:
    standard_partners(db)
    de_, at, nl = api_as("duty.de"), api_as("duty.at"), api_as("commander.nl")
    rid = ok(de_.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
    base = f"/api/v1/requests/{rid}"
    ids = [unit_id(db, "AT-ADLER"), unit_id(db, "NL-REIGER")]
    ok(de_.post(f"{base}/addressees", json={"unit_ids": ids}))
    offers = {}
    for code, c, qty in (("AT-ADLER", at, 4), ("NL-REIGER", nl, 2)):
        out = ok(
            c.post(
                f"{base}/answers",
                json={"answer": "accept", "lines": [{"line_no": 1, "quantity": qty}]},
            ),
            201,
        )
        offers[code] = next(o["id"] for o in out["offers"] if o["unit"]["code"] == code)
    ok(de_.post(f"{base}/offers/{offers['NL-REIGER']}/decline", json={"reason": "Too far away"}))
    out = ok(de_.post(f"{base}/offers/{offers['AT-ADLER']}/accept", json={}))
    rev = out["offers"][0]["arrangement"]["revision"]
    for c in (de_, at):
        ok(
            c.post(
                f"{base}/offers/{offers['AT-ADLER']}/arrangement/confirm", json={"revision": rev}
            )
        )
    at_offer = offers["AT-ADLER"]
    ok(at.post(f"{base}/offers/{at_offer}/status", json={"status": "MOBILISING"}))
    # The requesting side asks the team for a status report: RequestResourceDeploymentStatus
    # to the two parties' systems only.
    out = ok(de_.get(base))
    assert "ask_status" in next(o for o in out["offers"] if o["id"] == at_offer)["actions"]
    ok(de_.post(f"{base}/offers/{at_offer}/status-request"))
    asks = [
        r for r in outbox_of(db, "at-adler") if r.message_type == "RequestResourceDeploymentStatus"
    ]
    assert len(asks) == 1
    assert validation.check(xmlsafe.parse(asks[0].body.encode()), official()).ok
    ask = rm.read(payload_of(asks[0].body))
    assert ask.resources[0].resource_id == f"AT-ADLER/offer-{at_offer}"
    assert not [
        r for r in outbox_of(db, "nl-reiger") if r.message_type == "RequestResourceDeploymentStatus"
    ]
    # The unit's system answers with a report of the step the team is at: nothing moves, the
    # answer is on the timeline.
    answer = status_report(ask, "at.adler.command", "AT-ADLER", at_offer, "MOBILISING")
    assert validation.check(xmlsafe.parse(answer), official()).ok
    out = ok(at.post("/api/v1/messages", content=answer, headers=XML), 201)
    assert "still MOBILISING" in out["outcome"]
    events = de_.get(f"{base}/events").json()
    kinds = [e["kind"] for e in events]
    assert "deployment.status_asked" in kinds and "deployment.status_reported" in kinds
    rows = outbox_of(db, "de-falke")
    declined = [r for r in rows if r.message_type == "ReleaseResource"]
    assert len(declined) == 1
    msg = rm.read(payload_of(declined[0].body))
    assert {r.response_type for r in msg.resources} == {"Decline"}
    assert msg.resources[0].reason_code == "decline"
    assert msg.resources[0].response_reason == "Too far away"
    # The unit whose offer was declined hears why; another involved unit only that it was
    # (offer details are for the two parties: operations.views).
    to_nl = [r for r in outbox_of(db, "nl-reiger") if r.message_type == "ReleaseResource"]
    assert rm.read(payload_of(to_nl[0].body)).resources[0].response_reason == "Too far away"
    to_at = [r for r in outbox_of(db, "at-adler") if r.message_type == "ReleaseResource"]
    assert rm.read(payload_of(to_at[0].body)).resources[0].response_reason == ""
    users = {"requester": "duty.de", "AT-ADLER": "duty.at", "NL-REIGER": "commander.nl"}
    own_business(partner_side)
    _types, copy_id = replay(partner_side, rows, users)
    original = _offers_by_unit(ok(de_.get(base)))
    copy = _offers_by_unit(ok(partner_side.api_as("duty.de").get(f"/api/v1/requests/{copy_id}")))
    for code in original:
        for k in ("status", "lines", "reason"):
            assert copy[code][k] == original[code][k], (code, k)
    assert copy["NL-REIGER"]["status"] == "DECLINED"
    assert copy["AT-ADLER"]["status"] == "MOBILISING"


def status_report(ask: rm.Message, sender: str, unit: str, offer_id: int, status: str) -> bytes:
    """A unit's command system answering a status request (as a partner would write it)."""
    return f"""<edxlDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:2.0"
   xmlns:xlink="http://www.w3.org/1999/xlink" xlink:type="extended">
 <distributionID>{sender}-report-1</distributionID><senderID>{sender}</senderID>
 <dateTimeSent>2030-11-24T09:05:00+01:00</dateTimeSent>
 <dateTimeExpires>2030-11-25T09:05:00+01:00</dateTimeExpires>
 <distributionStatus>Exercise</distributionStatus><distributionKind>Report</distributionKind>
 <content xlink:type="resource"><contentObject xlink:type="resource"><contentXML>
 <embeddedXMLContent>
 <rmsg:ReportResourceDeploymentStatus xmlns:rmsg="urn:oasis:names:tc:emergency:EDXL:RM:1.0:msg"
   xmlns:rm="urn:oasis:names:tc:emergency:EDXL:RM:1.0">
  <rmsg:MessageID>{sender}-report-1</rmsg:MessageID>
  <rmsg:SentDateTime>2030-11-24T09:05:00+01:00</rmsg:SentDateTime>
  <rmsg:MessageContentType>ReportResourceDeploymentStatus</rmsg:MessageContentType>
  <rmsg:MessageDescription>Team loading at base</rmsg:MessageDescription>
  <rmsg:OriginatingMessageID>{ask.origin}</rmsg:OriginatingMessageID>
  <rmsg:PrecedingMessageID>{ask.message_id}</rmsg:PrecedingMessageID>
  <rmsg:ContactInformation><rm:ContactRole>Owner</rm:ContactRole></rmsg:ContactInformation>
  <rmsg:ResourceInformation>
   <rmsg:ResourceInfoElementID>offer-{offer_id}-line-1</rmsg:ResourceInfoElementID>
   <rmsg:Resource><rmsg:ResourceID>{unit}/offer-{offer_id}</rmsg:ResourceID>
    <rmsg:ResourceStatus><rmsg:DeploymentStatus>
     <rm:ValueListURN>urn:atlaslink:valuelist:deployment-status</rm:ValueListURN>
     <rm:Value>{status}</rm:Value></rmsg:DeploymentStatus></rmsg:ResourceStatus>
   </rmsg:Resource>
  </rmsg:ResourceInformation>
 </rmsg:ReportResourceDeploymentStatus></embeddedXMLContent></contentXML></contentObject>
 </content>
</edxlDistribution>""".encode()


def test_a_request_that_follows_a_pre_alert_is_linked_to_it_on_import(
    api_as: Any, db: Session, partner_side: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This installation speaks as the German unit's system to the partner side.
    monkeypatch.setattr(get_settings(), "node_id", "atlaslink-de")
    with partner_side.factory() as s:
        service.create_partner(
            s,
            principal(s, "support"),
            schemas.PartnerCreate(
                code="de-peer", name="DE platform", sender_id="atlaslink-de", unit_code="DE-FALKE"
            ),
        )
        s.commit()
    standard_partners(db)
    de_ = api_as("duty.de")
    at = [unit_id(db, "AT-ADLER")]
    pa = ok(
        de_.post(
            "/api/v1/requests",
            json=request_body(kind="pre_alert", submit=True, lines=[], legal_basis=None),
        ),
        201,
    )
    ok(de_.post(f"/api/v1/requests/{pa['id']}/addressees", json={"unit_ids": at}))
    rq = ok(
        de_.post("/api/v1/requests", json=request_body(submit=True, pre_alert_id=pa["id"])), 201
    )
    ok(de_.post(f"/api/v1/requests/{rq['id']}/addressees", json={"unit_ids": at}))
    rows = outbox_of(db, "de-falke")
    assert [r.message_type for r in rows] == ["CAP", "CAP", "RequestResource"]
    other = partner_side.api_as("duty.de")
    results = []
    for row in rows:
        assert validation.check(xmlsafe.parse(row.body.encode()), official()).ok
        results.append(
            ok(other.post("/api/v1/messages", content=row.body.encode(), headers=XML), 201)
        )
    pre_copy, request_copy = results[0]["request_id"], results[2]["request_id"]
    copy = ok(other.get(f"/api/v1/requests/{request_copy}"))
    assert copy["pre_alert_id"] == pre_copy
    assert copy["incident_id"] == rq["incident_id"] == pa["incident_id"]
    pre = ok(other.get(f"/api/v1/requests/{pre_copy}"))
    assert pre["status"] == "FOLLOWED_UP"
    # Both were sent to the same unit on the partner side (the envelopes name it).
    assert [a["unit"]["code"] for a in pre["addressees"]] == ["AT-ADLER"]
    assert [a["unit"]["code"] for a in copy["addressees"]] == ["AT-ADLER"]


def test_an_envelope_with_several_messages_is_refused_naming_the_second(
    api_as: Any, db: Session
) -> None:
    standard_partners(db)
    de_ = api_as("duty.de")
    rid = ok(de_.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
    ok(de_.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}))
    body = next(r.body for r in outbox_of(db, "at-adler") if r.message_type == "RequestResource")
    # Two content objects (the schema allows several), each with a RequestResource.
    start = body.index("<contentObject")
    end = body.index("</contentObject>") + len("</contentObject>")
    obj = body[start:end]
    second = obj.replace(":RequestResource:v1<", ":RequestResource:v1-copy<", 1)
    doubled = body.replace(obj, obj + second)
    assert validation.check(xmlsafe.parse(doubled.encode()), official()).ok
    r = api_as("duty.at").post("/api/v1/messages", content=doubled.encode(), headers=XML)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert "one message per EDXL-DE distribution" in problem["detail"]
    assert problem["errors"][0]["field"] == (
        "/edxlDistribution/content/contentObject[2]/contentXML/embeddedXMLContent/RequestResource"
    )
