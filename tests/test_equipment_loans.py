"""The equipment pool through the API: register, find, borrow through the whole lifecycle,
with its permissions, notifications, audit trail, maintenance windows and double-booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import AuditEvent, Notification, User

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def item_body(ref: str = "CD-1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ref": ref,
        "category": "counter_drone",
        "model": "SkyFence Mobile CD-7",
        "quantity": 1,
        "serial_numbers": ["SF7-0001"],
        "weight_kg": 180,
        "air_transportable": True,
        "needs_vehicle": True,
        "operator_training": "SkyFence operator course, 3 days",
        "restrictions": "No transit through non-EU states without notice.",
        "sharing": {"audience": "network"},
    }
    body.update(over)
    return body


def loan_body(days_from: int = 8, days: int = 5, **over: Any) -> dict[str, Any]:
    start = NOW + timedelta(days=days_from)
    body = {
        "starts_at": iso(start),
        "ends_at": iso(start + timedelta(days=days)),
        "purpose": "exercise",
        "purpose_note": "Joint exercise LION 26",
    }
    body.update(over)
    return body


def test_register_find_and_borrow_through_the_lifecycle(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    at_cmd, at_duty, de, nl = (
        api_as(u) for u in ("commander.at", "duty.at", "duty.de", "commander.nl")
    )
    r = at_cmd.post("/api/v1/equipment", json=item_body())
    assert r.status_code == 201, r.text
    item = r.json()
    assert item["unit"]["code"] == "AT-ADLER"
    assert item["sharing"] == {"audience": "network", "countries": [], "units": []}
    assert item["latitude"] is not None  # placed at the unit's base

    # Germany finds it: a counter-drone system free next week within 800 km of Vienna.
    r = de.get(
        "/api/v1/equipment",
        params={"category": "counter_drone", "next_week": True, "near": "vienna", "max_km": 800},
    )
    assert r.status_code == 200, r.text
    found = [i for i in r.json()["items"] if i["id"] == item["id"]]
    assert found and found[0]["sharing"] is None and found[0]["distance_km"] is not None
    assert found[0]["eta_hours"] is not None and "request_loan" in found[0]["actions"]

    # Germany asks for it; the Netherlands' overlapping request is refused.
    r = de.post(f"/api/v1/equipment/{item['id']}/loans", json=loan_body())
    assert r.status_code == 201, r.text
    loan = r.json()
    assert loan["status"] == "REQUESTED" and loan["actions"] == ["CANCELLED"]
    r = nl.post(f"/api/v1/equipment/{item['id']}/loans", json=loan_body(days_from=10))
    assert r.status_code == 409 and "not available" in r.json()["detail"]
    # Only the two units see the loan.
    assert nl.get(f"/api/v1/equipment/loans/{loan['id']}").status_code == 404

    # The owner's commander was notified, with a link to the loan.
    commander = db.scalar(select(User).where(User.username == "commander.at"))
    assert commander is not None
    note = db.scalar(
        select(Notification).where(
            Notification.user_id == commander.id, Notification.kind == "loan.requested"
        )
    )
    assert note is not None and note.link == f"/equipment/loans/{loan['id']}"

    steps = f"/api/v1/equipment/loans/{loan['id']}/steps"
    # The borrower cannot approve; the owner's duty officer may not decide either.
    assert de.post(steps, json={"to": "RESERVED"}).status_code == 403
    assert at_duty.post(steps, json={"to": "RESERVED"}).status_code == 403
    r = at_cmd.post(steps, json={"to": "RESERVED"})
    assert r.status_code == 200, r.text
    assert set(r.json()["actions"]) == {"ISSUED", "CANCELLED"}

    # An invalid move names the allowed ones.
    r = at_cmd.post(steps, json={"to": "ON_LOAN"})
    assert r.status_code == 409
    assert "Allowed: CANCELLED, ISSUED" in r.json()["detail"]

    # Handovers need the condition; signatures of both sides are kept.
    assert at_duty.post(steps, json={"to": "ISSUED"}).status_code == 422
    handover = {
        "condition": "good",
        "notes": "Two batteries, one charger",
        "signed_owner": "Insp. Huber",
        "signed_borrower": "PHK Brandt",
    }
    r = at_duty.post(steps, json={"to": "ISSUED", **handover})
    assert r.status_code == 200, r.text
    assert de.post(steps, json={"to": "IN_TRANSIT"}).status_code == 200
    assert at_duty.post(steps, json={"to": "ON_LOAN", **handover}).status_code == 403
    assert de.post(steps, json={"to": "ON_LOAN", **handover}).status_code == 200
    r = at_duty.post(steps, json={"to": "RETURNED", **handover, "condition": "fair"})
    assert r.status_code == 200
    r = at_cmd.post(steps, json={"to": "CHECKED", "condition": "fair", "notes": "cleaned"})
    assert r.status_code == 200
    done = r.json()
    assert done["status"] == "CHECKED" and done["actions"] == []
    assert [e["to_status"] for e in done["events"]] == [
        "REQUESTED",
        "RESERVED",
        "ISSUED",
        "IN_TRANSIT",
        "ON_LOAN",
        "RETURNED",
        "CHECKED",
    ]
    issued = done["events"][2]
    assert issued["signed_owner"] == "Insp. Huber" and issued["condition"] == "good"

    # Every step is audited with before and after.
    events = db.scalars(
        select(AuditEvent).where(
            AuditEvent.object_type == "equipment_loan", AuditEvent.object_id == str(loan["id"])
        )
    ).all()
    assert [e.action for e in events][:2] == ["loan.request", "loan.reserved"]
    assert events[1].before["status"] == "REQUESTED" and events[1].after["status"] == "RESERVED"


def test_decline_frees_the_period_and_maintenance_blocks_it(api_as) -> None:  # type: ignore[no-untyped-def]
    at_cmd, de, nl = (api_as(u) for u in ("commander.at", "duty.de", "commander.nl"))
    item = at_cmd.post("/api/v1/equipment", json=item_body("CD-2")).json()
    loan = de.post(f"/api/v1/equipment/{item['id']}/loans", json=loan_body()).json()
    r = at_cmd.post(
        f"/api/v1/equipment/loans/{loan['id']}/steps",
        json={"to": "DECLINED", "reason": "Needed at home"},
    )
    assert r.status_code == 200 and r.json()["decline_reason"] == "Needed at home"
    # The period is free again.
    r = nl.post(f"/api/v1/equipment/{item['id']}/loans", json=loan_body())
    assert r.status_code == 201, r.text
    nl_loan = r.json()
    assert (
        nl.post(f"/api/v1/equipment/loans/{nl_loan['id']}/steps", json={"to": "CANCELLED"}).json()[
            "status"
        ]
        == "CANCELLED"
    )

    # A maintenance window blocks loans and search.
    start = NOW + timedelta(days=20)
    r = at_cmd.post(
        f"/api/v1/equipment/{item['id']}/maintenance",
        json={
            "starts_at": iso(start),
            "ends_at": iso(start + timedelta(days=3)),
            "note": "service",
        },
    )
    assert r.status_code == 201, r.text
    assert (
        de.post(f"/api/v1/equipment/{item['id']}/loans", json=loan_body(days_from=21)).status_code
        == 409
    )
    found = de.get(
        "/api/v1/equipment",
        params={
            "category": "counter_drone",
            "available_from": iso(start),
            "available_to": iso(start + timedelta(days=1)),
        },
    ).json()
    assert item["id"] not in [i["id"] for i in found["items"]]
    # Other units do not change it; the owner can remove it again.
    assert (
        de.delete(f"/api/v1/equipment/{item['id']}/maintenance/{r.json()['id']}").status_code == 403
    )
    assert (
        at_cmd.delete(f"/api/v1/equipment/{item['id']}/maintenance/{r.json()['id']}").status_code
        == 204
    )


def test_only_the_owner_changes_an_item_and_changes_are_audited(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    at_cmd, de_cmd, at_duty = (api_as(u) for u in ("commander.at", "commander.de", "duty.at"))
    item = at_cmd.post("/api/v1/equipment", json=item_body("CD-3")).json()
    assert de_cmd.patch(f"/api/v1/equipment/{item['id']}", json={"model": "x"}).status_code == 403
    assert at_duty.patch(f"/api/v1/equipment/{item['id']}", json={"model": "x"}).status_code == 403
    r = at_cmd.patch(
        f"/api/v1/equipment/{item['id']}",
        json={"model": "SkyFence CD-8", "sharing": {"audience": "own_unit"}},
    )
    assert r.status_code == 200 and r.json()["model"] == "SkyFence CD-8"
    # Now hidden from Germany: 404, not 403.
    assert de_cmd.get(f"/api/v1/equipment/{item['id']}").status_code == 404
    ev = db.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "equipment.update", AuditEvent.object_id == str(item["id"])
        )
    ).one()
    assert ev.before["model"] == "SkyFence Mobile CD-7" and ev.after["model"] == "SkyFence CD-8"
    assert ev.before["sharing"]["audience"] == "network"


def test_invalid_input_is_a_problem_document(api_as) -> None:  # type: ignore[no-untyped-def]
    at_cmd = api_as("commander.at")
    r = at_cmd.post("/api/v1/equipment", json=item_body("CD-4", quantity=2))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    r = at_cmd.post("/api/v1/equipment", json=item_body("CD-5", category="nope"))
    assert r.status_code == 422 and "category" in r.json()["detail"]
    r = at_cmd.get("/api/v1/equipment", params={"near": "atlantis"})
    assert r.status_code == 422
