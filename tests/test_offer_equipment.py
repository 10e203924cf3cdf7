"""Equipment offered with an answer to an assistance request (issue 5 §3, ADR 0005 §12): an
addressed unit offers items of its own inventory, the requester's acceptance reserves them
for the operation through the one booking path, the team's return releases them; the items
are offer terms (the two parties only), everywhere the request leaves the platform."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from icalendar import Calendar
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.models import (
    AuditEvent,
    EquipmentLoan,
    EquipmentReservation,
    Offer,
    OfferEquipment,
    OperationEvent,
)
from tests.conftest import unit_id
from tests.test_operations_pages import hidden_fields, post_form, text_of

NOW = datetime.now(UTC).replace(microsecond=0)
MODEL = "Hexa-Robot-Q7X"  # an own-unit item: nobody else may see it in the pool


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def register(c: Any, ref: str, model: str = MODEL, audience: str = "own_unit") -> int:
    r = c.post(
        "/api/v1/equipment",
        json={
            "ref": ref,
            "category": "counter_drone",
            "model": model,
            "serial_numbers": [f"SN-{ref}"],
            "weight_kg": 95,
            "air_transportable": True,
            "sharing": {"audience": audience},
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def request_to(api_as: Any, db: Session, *codes: str, title: str = "Hostage taking") -> int:
    de = api_as("duty.de")
    r = de.post(
        "/api/v1/requests",
        json={
            "exercise": False,
            "title": f"{title} in a Munich school",
            "crisis_category": "hostage_taking",
            "location_name": "München, Schwabing",
            "latitude": 48.16,
            "longitude": 11.58,
            "nature": ["intervention"],
            "operational_necessity": "Our own teams are committed elsewhere.",
            "legal_basis": "2008/617-art3",
            "lines": [{"capability": "building", "min_level": 2, "quantity": 1}],
            "submit": True,
        },
    )
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    ids = [unit_id(db, c) for c in codes]
    r = de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": ids})
    assert r.is_success, r.text
    return rid


def offer_body(*items: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "answer": "accept",
        "lines": [{"line_no": 1, "quantity": 1}],
        "package": "One team",
        "equipment": list(items),
    }
    body.update(over)
    return body


def own_offer(out: dict[str, Any], code: str) -> dict[str, Any]:
    return next(o for o in out["offers"] if o["unit"]["code"] == code)


def active_reservations(db: Session, item: int) -> list[EquipmentReservation]:
    db.expire_all()
    return list(
        db.scalars(
            select(EquipmentReservation).where(
                EquipmentReservation.item_id == item, EquipmentReservation.active.is_(True)
            )
        )
    )


def test_offer_accept_reserve_home_release(api_as: Any, pages_as: Any, db: Session) -> None:
    at_cmd, at, de = api_as("commander.at"), api_as("duty.at"), api_as("duty.de")
    robot = register(at_cmd, "ROB-1")
    rid = request_to(api_as, db, "AT-ADLER", "NL-REIGER")
    until = NOW + timedelta(days=5)
    r = at.post(
        f"/api/v1/requests/{rid}/answers", json=offer_body(robot, equipment_until=iso(until))
    )
    assert r.status_code == 201, r.text
    offered = own_offer(r.json(), "AT-ADLER")["equipment"]
    assert [e["item_id"] for e in offered] == [robot]
    assert offered[0]["model"] == MODEL and offered[0]["serial_numbers"] == ["SN-ROB-1"]
    assert offered[0]["air_transportable"] is True and offered[0]["loan_id"] is None
    # Offered, not held: the pool still shows it free.
    assert active_reservations(db, robot) == []
    # The requester sees the item (though it is shared with its own unit only) ...
    out = de.get(f"/api/v1/requests/{rid}").json()
    offer = own_offer(out, "AT-ADLER")
    assert offer["equipment"][0]["model"] == MODEL
    # ... and the disclosure is audited.
    disclosed = db.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "equipment.offer_disclose", AuditEvent.object_id == str(robot)
        )
    )
    assert disclosed is not None and disclosed.after["disclosed_to"] == "DE"
    assert disclosed.after["item_audience"] == "own_unit"
    # The other addressed unit sees that Adler offered, not the equipment.
    nl = api_as("commander.nl").get(f"/api/v1/requests/{rid}")
    assert nl.status_code == 200
    assert own_offer(nl.json(), "AT-ADLER")["equipment"] is None and MODEL not in nl.text
    events = api_as("commander.nl").get(f"/api/v1/requests/{rid}/events").text
    assert MODEL not in events and "ROB-1" not in events
    assert MODEL in de.get(f"/api/v1/requests/{rid}/events").text

    # Accepted: reserved for the operation, a loan of purpose "operation" to DE-FALKE.
    r = de.post(f"/api/v1/requests/{rid}/offers/{offer['id']}/accept", json={})
    assert r.status_code == 200, r.text
    held = active_reservations(db, robot)
    assert len(held) == 1 and held[0].ends_at == until and held[0].loan_id is not None
    loan = db.get(EquipmentLoan, held[0].loan_id)
    assert loan is not None and loan.purpose == "operation" and loan.status == "RESERVED"
    assert loan.borrower_unit_id == unit_id(db, "DE-FALKE")
    out = de.get(f"/api/v1/requests/{rid}").json()
    assert own_offer(out, "AT-ADLER")["equipment"][0]["loan_status"] == "RESERVED"
    # Both units see the loan; the item's calendar names the operation to those who see it.
    assert de.get(f"/api/v1/equipment/loans/{loan.id}").status_code == 200
    start = iso(NOW - timedelta(days=1))
    cal = at.get(f"/api/v1/equipment/{robot}/calendar", params={"start": start, "days": 10})
    assert cal.status_code == 200, cal.text
    period = cal.json()["items"][0]
    assert period["loan_id"] == loan.id and period["operation"]["request_id"] == rid
    page = pages_as("duty.at").get(f"/equipment/{robot}")
    assert f'href="/requests/{rid}"' in page.text
    unit_cal = pages_as("duty.at").get("/equipment/calendar")
    assert f'href="/requests/{rid}"' in unit_cal.text
    # The same item cannot be lent over the operation.
    r = api_as("commander.nl").get(f"/api/v1/equipment/{robot}")
    assert r.status_code == 404  # own-unit item: the pool does not show it to others

    # Through the deployment to home: the reservation ends then.
    steps = f"/api/v1/requests/{rid}/offers/{offer['id']}"
    for who, body in (
        (at, {"revision": 1}),
        (de, {"revision": 1}),
    ):
        assert who.post(f"{steps}/arrangement/confirm", json=body).is_success
    for status in ("MOBILISING", "EN_ROUTE", "ON_SITE"):
        r = at.post(f"{steps}/status", json={"status": status})
        assert r.status_code == 200, (status, r.text)
    assert de.post(f"/api/v1/requests/{rid}/stand-down", json={"reason": "over"}).is_success
    r = at.post(f"{steps}/status", json={"status": "HOME"})
    assert r.status_code == 200, r.text
    db.expire_all()
    loan = db.get(EquipmentLoan, loan.id)
    assert loan is not None and loan.status == "CANCELLED"
    left = db.get(EquipmentReservation, held[0].id)
    assert left is not None
    # The hours it was held stay on the calendar; nothing is held from now on.
    assert (not left.active) or left.ends_at <= datetime.now(UTC)
    r = api_as("commander.nl").post(
        f"/api/v1/equipment/{register(at_cmd, 'ROB-2', audience='network')}/loans",
        json={
            "starts_at": iso(NOW + timedelta(days=1)),
            "ends_at": iso(NOW + timedelta(days=2)),
            "purpose": "exercise",
        },
    )
    assert r.status_code == 201, r.text
    released = db.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "loan.operation_release", AuditEvent.object_id == str(loan.id))
    )
    assert released == 1


def test_refusals_name_the_item_and_save_nothing(api_as: Any, db: Session) -> None:
    at_cmd, at, nl_cmd = api_as("commander.at"), api_as("duty.at"), api_as("commander.nl")
    mine = register(at_cmd, "ROB-10")
    retired = register(at_cmd, "ROB-11")
    assert at_cmd.patch(f"/api/v1/equipment/{retired}", json={"status": "retired"}).is_success
    busy = register(at_cmd, "ROB-12")
    r = at_cmd.post(
        f"/api/v1/equipment/{busy}/maintenance",
        json={"starts_at": iso(NOW + timedelta(days=1)), "ends_at": iso(NOW + timedelta(days=2))},
    )
    assert r.status_code == 201, r.text
    theirs = register(nl_cmd, "NL-ROB-1", model="Dutch robot", audience="network")
    rid = request_to(api_as, db, "AT-ADLER")
    offers_before = db.scalar(select(func.count()).select_from(Offer))
    for items, words in (
        ([theirs], f"item {theirs} is not in your unit's inventory"),
        ([999_999], "item 999999 is not in your unit's inventory"),
        ([retired], f"item {retired} (ROB-11, {MODEL}) is not in service (retired)"),
        ([mine, busy], f"item {busy} (ROB-12, {MODEL}): The item is not available then"),
    ):
        r = at.post(f"/api/v1/requests/{rid}/answers", json=offer_body(*items))
        assert r.status_code == 422, r.text
        assert any(words in e["message"] for e in r.json()["errors"]), r.json()
    r = at.post(
        f"/api/v1/requests/{rid}/answers",
        json={"answer": "refuse", "reason": "busy", "equipment": [mine]},
    )
    assert r.status_code == 422
    # A shorter period that ends before the maintenance is fine: then nothing clashes.
    assert db.scalar(select(func.count()).select_from(Offer)) == offers_before
    assert db.scalar(select(func.count()).select_from(OfferEquipment)) == 0
    r = at.post(
        f"/api/v1/requests/{rid}/answers",
        json=offer_body(mine, busy, equipment_until=iso(NOW + timedelta(hours=12))),
    )
    assert r.status_code == 201, r.text


def test_the_same_item_accepted_twice_is_refused(api_as: Any, db: Session) -> None:
    at_cmd, at, de = api_as("commander.at"), api_as("duty.at"), api_as("duty.de")
    robot = register(at_cmd, "ROB-20")
    spare = register(at_cmd, "ROB-21")
    first = request_to(api_as, db, "AT-ADLER", title="First")
    second = request_to(api_as, db, "AT-ADLER", title="Second")
    offers = []
    for rid, items in ((first, [robot]), (second, [spare, robot])):
        r = at.post(f"/api/v1/requests/{rid}/answers", json=offer_body(*items))
        assert r.status_code == 201, r.text
        offers.append(own_offer(r.json(), "AT-ADLER")["id"])
    r = de.post(f"/api/v1/requests/{first}/offers/{offers[0]}/accept", json={})
    assert r.status_code == 200, r.text
    r = de.post(f"/api/v1/requests/{second}/offers/{offers[1]}/accept", json={})
    assert r.status_code == 409, r.text
    assert f"Item {robot} (ROB-20" in r.json()["detail"]
    # Nothing half-written: the offer is still open, the spare is not held, one loan only.
    db.expire_all()
    offer = db.get(Offer, offers[1])
    assert offer is not None and offer.status == "OFFERED"
    assert active_reservations(db, spare) == []
    assert len(active_reservations(db, robot)) == 1
    loans = db.scalar(
        select(func.count())
        .select_from(EquipmentLoan)
        .where(EquipmentLoan.item_id.in_([robot, spare]))
    )
    assert loans == 1
    # Withdrawing the accepted offer frees the robot; the second acceptance then succeeds.
    r = at.post(
        f"/api/v1/requests/{first}/offers/{offers[0]}/withdraw", json={"reason": "needed at home"}
    )
    assert r.status_code == 200, r.text
    assert active_reservations(db, robot) == [] or all(
        x.ends_at <= datetime.now(UTC) for x in active_reservations(db, robot)
    )
    r = de.post(f"/api/v1/requests/{second}/offers/{offers[1]}/accept", json={})
    assert r.status_code == 200, r.text


def test_ended_offers_hold_nothing(api_as: Any, db: Session) -> None:
    at_cmd, at, de = api_as("commander.at"), api_as("duty.at"), api_as("duty.de")
    robot = register(at_cmd, "ROB-30")
    rid = request_to(api_as, db, "AT-ADLER")
    r = at.post(f"/api/v1/requests/{rid}/answers", json=offer_body(robot))
    oid = own_offer(r.json(), "AT-ADLER")["id"]
    assert de.post(f"/api/v1/requests/{rid}/offers/{oid}/decline", json={"reason": "no"}).is_success
    assert active_reservations(db, robot) == []
    # Offered again and accepted, then the team is recalled: released at once.
    r = at.post(f"/api/v1/requests/{rid}/answers", json=offer_body(robot))
    assert r.status_code == 201, r.text
    oid = next(o["id"] for o in r.json()["offers"] if o["status"] == "OFFERED")
    assert de.post(f"/api/v1/requests/{rid}/offers/{oid}/accept", json={}).is_success
    assert len(active_reservations(db, robot)) == 1
    for who in (at, de):
        assert who.post(
            f"/api/v1/requests/{rid}/offers/{oid}/arrangement/confirm", json={"revision": 1}
        )
    r = at.post(f"/api/v1/requests/{rid}/offers/{oid}/recall", json={"reason": "needed"})
    assert r.status_code == 200, r.text
    assert all(x.ends_at <= datetime.now(UTC) for x in active_reservations(db, robot))


def test_answer_form_lists_own_items_and_the_card_shows_them(
    pages_as: Any, api_as: Any, db: Session
) -> None:
    at_cmd = api_as("commander.at")
    robot = register(at_cmd, "ROB-40")
    register(api_as("commander.nl"), "NL-ROB-40", model="Dutch-Only-Robot")
    rid = request_to(api_as, db, "AT-ADLER", "NL-REIGER")
    at = pages_as("duty.at")
    here = f"/requests/{rid}"
    page = at.get(here).text
    assert f'name="equipment" value="{robot}"' in page and "Dutch-Only-Robot" not in page
    assert "even if the item is shared more narrowly" in page
    # A refused form explains and keeps the ticked items.
    past = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    r = post_form(
        at,
        here,
        f"{here}/answer",
        {"answer": "accept", "qty1": "1", "equipment": [str(robot)], "equipment_until": past},
    )
    assert r.status_code == 422 and "the end is in the past" in r.text
    assert f'name="equipment" value="{robot}" checked' in r.text
    fields = hidden_fields(page, f"{here}/answer")
    r = at.post(
        f"{here}/answer",
        data={**fields, "answer": "accept", "qty1": "1", "equipment": [str(robot)]},
        follow_redirects=False,
    )
    assert r.status_code == 303, text_of(r.text)[:500]
    de_page = pages_as("duty.de").get(here).text
    assert MODEL in de_page and "SN-ROB-40" in de_page
    nl_page = pages_as("commander.nl").get(here).text
    i = nl_page.find(MODEL)
    assert i < 0, nl_page[i - 600 : i + 100]
    assert "SN-ROB-40" not in nl_page and ">ROB-40<" not in nl_page
    for viewer, sees in (("duty.de", True), ("commander.nl", False)):
        c = pages_as(viewer)
        report = c.get(f"{here}/report").text
        pdf = PdfReader(io.BytesIO(c.get(f"{here}/report.pdf").content))
        text = " ".join(p.extract_text() for p in pdf.pages).replace("\n", "")
        assert (MODEL in report) == sees and (MODEL in text) == sees, viewer
    # The timeline event naming the items is for the parties only.
    kinds = db.scalars(select(OperationEvent.scope).where(OperationEvent.kind == "offer.equipment"))
    assert set(kinds) == {"parties"}


def test_a_country_request_without_a_unit_keeps_the_item_with_the_offering_unit(
    api_as: Any, db: Session
) -> None:
    at_cmd, at, ncp = api_as("commander.at"), api_as("duty.at"), api_as("ncp.de")
    robot = register(at_cmd, "ROB-50")
    r = ncp.post(
        "/api/v1/requests",
        json={
            "exercise": True,
            "title": "Country request for a robot",
            "crisis_category": "cbrn_threat",
            "location_name": "Berlin",
            "nature": ["intervention"],
            "operational_necessity": "None of ours is free.",
            "legal_basis": "2008/617-art3",
            "lines": [{"capability": "building", "min_level": 2, "quantity": 1}],
            "submit": True,
        },
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["requesting_unit"] is None
    assert ncp.post(
        f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}
    ).is_success
    r = at.post(f"/api/v1/requests/{rid}/answers", json=offer_body(robot))
    assert r.status_code == 201, r.text
    oid = own_offer(r.json(), "AT-ADLER")["id"]
    r = ncp.post(f"/api/v1/requests/{rid}/offers/{oid}/accept", json={})
    assert r.status_code == 200, r.text
    assert own_offer(r.json(), "AT-ADLER")["equipment"][0]["model"] == MODEL
    (held,) = active_reservations(db, robot)
    loan = db.get(EquipmentLoan, held.loan_id)
    assert loan is not None and loan.borrower_unit_id == unit_id(db, "AT-ADLER")
    assert loan.purpose == "exercise" and "(for DE)" in loan.purpose_note


def test_the_calendar_names_the_operation_only_to_those_who_see_the_request(
    api_as: Any, pages_as: Any, db: Session
) -> None:
    at_cmd, at, de = api_as("commander.at"), api_as("duty.at"), api_as("duty.de")
    shared = register(at_cmd, "NV-60", model="Night-vision-Z9", audience="network")
    rid = request_to(api_as, db, "AT-ADLER")
    r = at.post(f"/api/v1/requests/{rid}/answers", json=offer_body(shared))
    oid = own_offer(r.json(), "AT-ADLER")["id"]
    assert de.post(f"/api/v1/requests/{rid}/offers/{oid}/accept", json={}).is_success
    params = {"start": iso(NOW - timedelta(days=1)), "days": 10}
    for viewer, sees in (("duty.de", True), ("duty.at", True), ("duty.fr", False)):
        r = api_as(viewer).get(f"/api/v1/equipment/{shared}/calendar", params=params)
        assert r.status_code == 200, (viewer, r.text)
        (period,) = r.json()["items"]
        assert (period["operation"] is not None) == sees, viewer
        page = pages_as(viewer).get(f"/equipment/{shared}").text
        assert (f'href="/requests/{rid}"' in page) == sees, viewer
        cal = pages_as(viewer).get(f"/equipment/calendar?unit={unit_id(db, 'AT-ADLER')}").text
        assert (f'href="/requests/{rid}"' in cal) == sees, viewer
    # The iCalendar feeds of the two units name the operation in the event's summary.
    reference = de.get(f"/api/v1/requests/{rid}").json()["reference"]
    for client, code, word in (
        (at_cmd, "AT-ADLER", "Lent"),
        (api_as("commander.de"), "DE-FALKE", "Borrowed"),
    ):
        r = client.post(f"/api/v1/equipment/units/{unit_id(db, code)}/feeds", json={"label": "ops"})
        assert r.status_code == 201, r.text
        ics = client.get(r.json()["url"].split("8000", 1)[-1])
        assert ics.status_code == 200, ics.text
        summaries = [str(e["summary"]) for e in Calendar.from_ical(ics.content).walk("VEVENT")]
        assert any(
            s.startswith(f"{word}: Night-vision-Z9 (NV-60)") and s.endswith(f"for {reference}")
            for s in summaries
        ), (code, summaries)
