"""Assistance requests through the API: the whole flow, the rules, the ladder, the visibility."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import (
    CountrySettings,
    Notification,
    RequestAddressee,
    User,
    UserPreferences,
    utcnow,
)
from atlaslink.operations import tasks
from tests.conftest import unit_id


def body(**over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {
        "exercise": True,
        "title": "Hostages held on a regional train near Aachen",
        "crisis_category": "hijack_train",
        "location_name": "Aachen Hbf",
        "latitude": 50.7677,
        "longitude": 6.0912,
        "nature": ["intervention", "expertise"],
        "operational_necessity": "Two trains at once; our own unit is committed to the first.",
        "legal_basis": "2008/617-art3",
        "classification": "RESTREINT_UE",
        "handling_code": "H2",
        "lines": [
            {"capability": "land_transport", "min_level": 2, "quantity": 6},
            {"capability": "crisis_negotiation", "min_level": 1, "quantity": 2},
        ],
    }
    b.update(over)
    return b


def created(client: Any, **over: Any) -> dict[str, Any]:
    r = client.post("/api/v1/requests", json=body(**over))
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_whole_flow_from_request_to_closed(api_as: Any, db: Session) -> None:
    de, at, nl = api_as("duty.de"), api_as("duty.at"), api_as("commander.nl")
    req = created(de, submit=True)
    rid = req["id"]
    assert req["status"] == "SUBMITTED" and req["exercise"] is True
    assert req["reference"].startswith("AR-")

    # Not addressed yet: Austria does not see it.
    assert at.get(f"/api/v1/requests/{rid}").status_code == 404
    r = de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "OPEN"
    seen = at.get(f"/api/v1/requests/{rid}")
    assert seen.status_code == 200
    assert seen.json()["involvement"]["addressee_id"] is not None
    # A unit that was not addressed still does not see it, nor in its list.
    assert nl.get(f"/api/v1/requests/{rid}").status_code == 404
    assert rid not in [i["id"] for i in nl.get("/api/v1/requests").json()["items"]]
    assert rid in [i["id"] for i in at.get("/api/v1/requests").json()["items"]]
    # Austria was told, urgently, with the exercise flag in the title.
    note = db.scalars(
        select(Notification)
        .join(User, User.id == Notification.user_id)
        .where(User.username == "duty.at", Notification.request_id == rid)
    ).first()
    assert note is not None and note.urgent and note.title.startswith("[EXERCISE]")

    assert at.post(f"/api/v1/requests/{rid}/acknowledge").status_code == 200
    r = at.post(
        f"/api/v1/requests/{rid}/answers",
        json={
            "answer": "accept",
            "lines": [{"line_no": 1, "quantity": 4}],
            "package": "4 operators, rail-breaching kit",
            "costs": "own costs",
        },
    )
    assert r.status_code == 201, r.text
    offer = r.json()["offers"][0]
    assert offer["status"] == "OFFERED" and offer["package"] == "4 operators, rail-breaching kit"
    line1 = r.json()["lines"][0]["coverage"]
    assert line1 == {"requested": 6, "offered": 4, "committed": 0, "on_site": 0, "coverage": "none"}

    # Partial acceptance: 3 of the 4 operators.
    r = de.post(
        f"/api/v1/requests/{rid}/offers/{offer['id']}/accept",
        json={"lines": [{"line_no": 1, "quantity": 3}]},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "PARTIALLY_COVERED"
    assert out["lines"][0]["coverage"]["committed"] == 3
    assert out["lines"][0]["coverage"]["coverage"] == "partial"
    # The same offer cannot be accepted twice.
    again = de.post(f"/api/v1/requests/{rid}/offers/{offer['id']}/accept", json={})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")

    arr = out["offers"][0]["arrangement"]
    assert "supporting capacity" in arr["command"]
    for client in (de, at):
        r = client.post(
            f"/api/v1/requests/{rid}/offers/{offer['id']}/arrangement/confirm",
            json={"revision": arr["revision"]},
        )
        assert r.status_code == 200, r.text
    assert r.json()["offers"][0]["status"] == "AGREED"

    r = at.post(
        f"/api/v1/requests/{rid}/offers/{offer['id']}/manifest",
        json={"category": "explosive", "description": "Linear cutting charges", "quantity": 6},
    )
    assert r.status_code == 201, r.text
    item = r.json()["offers"][0]["manifest"][0]
    status = f"/api/v1/requests/{rid}/offers/{offer['id']}/status"
    assert at.post(status, json={"status": "MOBILISING"}).status_code == 200
    blocked = at.post(status, json={"status": "EN_ROUTE"})
    assert blocked.status_code == 409 and "Linear cutting charges" in blocked.json()["detail"]
    r = de.post(
        f"/api/v1/requests/{rid}/offers/{offer['id']}/manifest/{item['id']}/decision",
        json={"decision": "approved"},
    )
    assert r.status_code == 200, r.text
    assert at.post(status, json={"status": "EN_ROUTE"}).status_code == 200
    r = at.post(status, json={"status": "ON_SITE"})
    assert r.json()["status"] == "ACTIVE"
    assert r.json()["lines"][0]["coverage"]["on_site"] == 3
    # Closing needs every team home.
    assert de.post(f"/api/v1/requests/{rid}/close", json={"debrief": "x" * 20}).status_code == 409
    r = de.post(f"/api/v1/requests/{rid}/stand-down", json={"reason": "train stormed"})
    assert r.json()["status"] == "DEMOBILISING"
    assert at.post(status, json={"status": "RETURNING"}).status_code == 200
    assert at.post(status, json={"status": "HOME"}).status_code == 200
    r = de.post(f"/api/v1/requests/{rid}/close", json={"debrief": "Both trains freed at 05:10."})
    assert r.status_code == 200 and r.json()["status"] == "CLOSED"

    metrics = de.get(f"/api/v1/requests/{rid}/metrics").json()
    assert metrics["first_acknowledgement"] is not None
    assert metrics["first_offer"] is not None
    assert metrics["first_team_on_site"] is not None
    kinds = [e["kind"] for e in de.get(f"/api/v1/requests/{rid}/events").json()]
    for expected in (
        "request.created",
        "request.submitted",
        "request.addressed",
        "addressee.acknowledged",
        "answer.offer",
        "offer.accepted",
        "offer.agreed",
        "deployment.on_site",
        "request.closed",
    ):
        assert expected in kinds


def test_offer_details_are_for_the_two_parties(api_as: Any, db: Session) -> None:
    de, at, fr = api_as("duty.de"), api_as("duty.at"), api_as("duty.fr")
    rid = created(de, submit=True)["id"]
    fr_unit = db.scalar(select(User.unit_id).where(User.username == "duty.fr"))
    de.post(
        f"/api/v1/requests/{rid}/addressees",
        json={"unit_ids": [unit_id(db, "AT-ADLER"), fr_unit]},
    )
    at.post(
        f"/api/v1/requests/{rid}/answers",
        json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 2}], "costs": "secret"},
    )
    as_fr = fr.get(f"/api/v1/requests/{rid}").json()
    assert as_fr["offers"][0]["status"] == "OFFERED"  # the same picture…
    assert as_fr["offers"][0]["costs"] is None  # …without the other party's terms
    assert "secret" not in fr.get(f"/api/v1/requests/{rid}").text
    assert de.get(f"/api/v1/requests/{rid}").json()["offers"][0]["costs"] == "secret"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"crisis_category": "mass_gathering"}, "legal_basis"),
        ({"legal_basis": "prum-art18"}, "legal_basis"),
        ({"classification": "SECRET_UE"}, "classification"),
        ({"handling_code": "H3"}, "handling_note"),
        ({"operational_necessity": ""}, "operational_necessity"),
        ({"lines": []}, "lines"),
        (
            {"lines": [{"capability": "juggling", "min_level": 1, "quantity": 1}]},
            "lines[1].capability",
        ),
        ({"legal_basis": "bilateral"}, "bilateral_agreement_id"),
    ],
)
def test_invalid_requests_are_refused_with_the_field_named(
    api_as: Any, over: dict[str, Any], field: str
) -> None:
    r = api_as("duty.de").post("/api/v1/requests", json=body(submit=True, **over))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert "Traceback" not in r.text


def test_exercise_flag_is_mandatory(api_as: Any) -> None:
    b = body()
    del b["exercise"]
    assert api_as("duty.de").post("/api/v1/requests", json=b).status_code == 422


def test_national_gate(api_as: Any, db: Session) -> None:
    db.add(CountrySettings(country_iso2="DE", national_approval_required=True))
    db.flush()
    de, ncp = api_as("duty.de"), api_as("ncp.de")
    rid = created(de, submit=True)["id"]
    assert de.get(f"/api/v1/requests/{rid}").json()["status"] == "NATIONAL_APPROVAL"
    # The requester cannot approve its own request; the contact point can.
    assert de.post(f"/api/v1/requests/{rid}/approve", json={}).status_code == 403
    sent_back = ncp.post(f"/api/v1/requests/{rid}/return", json={"reason": "name the train"})
    assert sent_back.json()["status"] == "DRAFT"
    assert de.post(f"/api/v1/requests/{rid}/submit").json()["status"] == "NATIONAL_APPROVAL"
    r = ncp.post(f"/api/v1/requests/{rid}/approve", json={"reason": "minister agreed"})
    assert r.status_code == 200 and r.json()["status"] == "SUBMITTED"


def test_escalation_ladder_runs_from_the_database(api_as: Any, db: Session, factory: Any) -> None:
    de = api_as("duty.de")
    rid = created(de, submit=True, ack_minutes=10)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    duty_at = db.scalar(select(User).where(User.username == "duty.at"))
    assert duty_at is not None
    # duty.at is in its quiet hours around the clock: escalations still reach it at once.
    db.add(UserPreferences(user_id=duty_at.id, quiet_start="00:00", quiet_end="23:59"))
    db.flush()
    start = utcnow()

    def tick(minutes: int) -> None:
        # A fresh session, as a restarted process would have: the state is in the database.
        with factory() as s:
            tasks.escalate_due(s, start + timedelta(minutes=minutes))
            s.commit()

    def addressee() -> RequestAddressee:
        db.expire_all()
        a = db.scalar(select(RequestAddressee).where(RequestAddressee.request_id == rid))
        assert a is not None
        return a

    tick(5)
    assert addressee().escalations == 0  # not due yet
    tick(11)
    assert addressee().escalations == 1
    alerts = db.scalars(
        select(Notification).where(
            Notification.user_id == duty_at.id, Notification.kind == "escalation.unit"
        )
    ).all()
    assert len(alerts) == 1 and alerts[0].urgent
    assert alerts[0].email_next_at is not None and alerts[0].email_next_at <= utcnow()
    tick(22)
    assert addressee().escalations == 2
    support = api_as("support")
    assert support.get(f"/api/v1/requests/{rid}").status_code == 404
    tick(33)
    a = addressee()
    assert a.status == "NO_RESPONSE" and a.support_office_alerted_at is not None
    # The support office now sees the request it must chase.
    assert support.get(f"/api/v1/requests/{rid}").status_code == 200
    tick(60)
    assert addressee().escalations == 2  # the ladder ends there


def test_idempotent_create(api_as: Any) -> None:
    de = api_as("duty.de")
    first = de.post("/api/v1/requests", json=body(), headers={"Idempotency-Key": "k-1"})
    again = de.post("/api/v1/requests", json=body(), headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = de.post(
        "/api/v1/requests", json=body(title="Another thing"), headers={"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 422


def test_amendment_makes_a_new_version_and_reopens_answers(api_as: Any, db: Session) -> None:
    de, at = api_as("duty.de"), api_as("duty.at")
    rid = created(de, submit=True)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    at.post(
        f"/api/v1/requests/{rid}/answers",
        json={"answer": "accept", "lines": [{"line_no": 2, "quantity": 2}]},
    )
    amended = body(
        expected_version=1,
        reason="a third negotiator needed",
        lines=[
            {"capability": "land_transport", "min_level": 2, "quantity": 6},
            {"capability": "crisis_negotiation", "min_level": 1, "quantity": 3},
        ],
    )
    r = de.put(f"/api/v1/requests/{rid}", json=amended)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["version"] == 2
    assert out["offers"][0]["status"] == "EXPIRED"
    assert out["addressees"][0]["status"] == "AWAITING_ACK"
    # An edit based on the superseded version is refused.
    stale = de.put(f"/api/v1/requests/{rid}", json=amended)
    assert stale.status_code == 409 and "version" in stale.json()["detail"]


def test_units_of_the_requesting_country_are_not_addressed(api_as: Any, db: Session) -> None:
    de = api_as("duty.de")
    rid = created(de, submit=True)["id"]
    r = de.post(
        f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "DE-HABICHT")]}
    )
    assert r.status_code == 422 and "DE-HABICHT" in r.json()["errors"][0]["message"]


def test_next_ring_addresses_neighbours_first(api_as: Any, db: Session) -> None:
    de = api_as("duty.de")
    rid = created(de, submit=True)["id"]
    out = de.post(f"/api/v1/requests/{rid}/addressees", json={"next_ring": True}).json()
    countries = {a["unit"]["country"] for a in out["addressees"]}
    assert countries and countries <= {"AT", "BE", "CH", "CZ", "DK", "FR", "LU", "NL", "PL"}
    assert {a["ring"] for a in out["addressees"]} == {1}


@pytest.mark.parametrize(
    ("username", "sees"),
    [
        ("duty.de", True),  # requesting unit
        ("commander.de", True),  # same unit
        ("ncp.de", True),  # national contact point of the requesting country
        ("duty.at", True),  # addressed
        ("commander.at", True),  # addressed unit
        ("commander.nl", False),  # not addressed
        ("duty.fr", False),
        ("ncp.at", False),  # Austria's ministry is not the unit that was asked
        ("support", False),  # until escalated or granted
        ("observer", False),
        ("admin", False),
    ],
)
def test_who_sees_a_request(api_as: Any, db: Session, username: str, sees: bool) -> None:
    de = api_as("duty.de")
    rid = created(de, submit=True)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    c = api_as(username)
    detail = c.get(f"/api/v1/requests/{rid}")
    listed = c.get("/api/v1/requests")
    events = c.get(f"/api/v1/requests/{rid}/events")
    if sees:
        assert detail.status_code == 200 and events.status_code == 200
        assert rid in [i["id"] for i in listed.json()["items"]]
    else:
        assert detail.status_code in (403, 404) and events.status_code in (403, 404)
        assert listed.status_code == 403 or rid not in [i["id"] for i in listed.json()["items"]]
        assert "Aachen" not in detail.text + events.text + listed.text
        notified = db.scalars(
            select(Notification)
            .join(User, User.id == Notification.user_id)
            .where(User.username == username, Notification.request_id == rid)
        ).all()
        assert notified == []
