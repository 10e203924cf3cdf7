"""Country rules and bilateral agreements as data: who edits, what is audited, what applies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import AuditEvent, utcnow
from tests.conftest import unit_id
from tests.test_operations_flow import body, created


def _audit(db: Session, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.mark.parametrize(
    ("username", "country", "status"),
    [
        ("support", "NL", 200),  # the support office edits any country's rules
        ("support", "DE", 200),
        ("ncp.de", "DE", 200),  # a national contact point its own country's
        ("ncp.de", "NL", 403),
        ("ncp.at", "DE", 403),
        ("commander.de", "DE", 403),  # units read
        ("duty.at", "AT", 403),
        ("observer", "NL", 403),
        ("admin", "NL", 403),
    ],
)
def test_who_edits_a_countrys_rules(api_as: Any, username: str, country: str, status: int) -> None:
    c = api_as(username)
    read = c.get(f"/api/v1/countries/{country}/rules")
    assert read.status_code == 200 and read.json()["editable"] is (status == 200)
    r = c.put(f"/api/v1/countries/{country}/rules", json={"prohibits_foreign_arms": True})
    assert r.status_code == status, r.text
    if status == 403:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert c.get(f"/api/v1/countries/{country}/rules").json()["prohibits_foreign_arms"] is False


def test_a_change_is_audited_with_before_and_after(api_as: Any, db: Session) -> None:
    support = api_as("support")
    r = support.put(
        "/api/v1/countries/nl/rules",
        json={"requires_bilateral_agreement": True, "note": "Specific arrangements first."},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["iso2"] == "NL" and out["requires_bilateral_agreement"] is True
    assert out["national_approval_required"] is False and out["updated_at"]
    # Fields left out keep their value.
    r = support.put("/api/v1/countries/NL/rules", json={"excluded_from_2008_617": False})
    assert r.json()["requires_bilateral_agreement"] is True
    (event,) = _audit(db, "country_rules.updated")  # the no-op second call is not a change
    assert event.object_id == "NL" and event.actor_label == "support"
    assert event.before is not None and event.before["requires_bilateral_agreement"] is False
    assert event.after is not None and event.after["requires_bilateral_agreement"] is True
    assert event.after["note"] == "Specific arrangements first."
    listed = support.get("/api/v1/country-rules", params={"only_set": True}).json()
    assert [c["iso2"] for c in listed["items"]] == ["NL"] and listed["total"] == 1
    every = support.get("/api/v1/country-rules", params={"per_page": 10}).json()
    assert len(every["items"]) == 10 and every["total"] >= 31 and every["pages"] >= 4


@pytest.mark.parametrize(
    ("path", "payload", "status"),
    [
        ("/api/v1/countries/XX/rules", {"note": "x"}, 404),
        ("/api/v1/countries/NL/rules", {"prohibits_foreign_arms": "maybe"}, 422),
        ("/api/v1/countries/NL/rules", {"unknown_rule": True}, 422),
    ],
)
def test_bad_rule_input_is_a_problem(api_as: Any, path: str, payload: Any, status: int) -> None:
    r = api_as("support").put(path, json=payload)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")


def test_eu_display_codes_are_understood(api_as: Any) -> None:
    r = api_as("support").put("/api/v1/countries/UK/rules", json={"excluded_from_2008_617": True})
    assert r.status_code == 200 and r.json()["iso2"] == "GB" and r.json()["country"] == "UK"


def test_rules_apply_to_requests(api_as: Any, db: Session) -> None:
    """The rules edited here are the ones the request checks and addressing read."""
    support, de = api_as("support"), api_as("duty.de")
    support.put("/api/v1/countries/DE/rules", json={"excluded_from_2008_617": True})
    r = de.post("/api/v1/requests", json=body(submit=True))
    assert r.status_code == 422 and "legal_basis" in [e["field"] for e in r.json()["errors"]]
    support.put(
        "/api/v1/countries/DE/rules",
        json={"excluded_from_2008_617": False, "national_approval_required": True},
    )
    assert created(de, submit=True)["status"] == "NATIONAL_APPROVAL"
    support.put("/api/v1/countries/DE/rules", json={"national_approval_required": False})
    support.put("/api/v1/countries/NL/rules", json={"requires_bilateral_agreement": True})
    rid = created(de, submit=True)["id"]
    nl = unit_id(db, "NL-REIGER")
    r = de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [nl]})
    assert r.status_code == 422 and "bilateral" in r.text
    agreement = support.post(
        "/api/v1/bilateral-agreements",
        json={"name": "DE-NL police treaty", "country_a": "NL", "country_b": "DE"},
    ).json()
    assert agreement["countries"] == ["DE", "NL"] and agreement["status"] == "in_force"
    r = de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [nl]})
    assert r.status_code == 200, r.text


def test_agreements_add_list_retire(api_as: Any, db: Session) -> None:
    ncp, support = api_as("ncp.de"), api_as("support")
    today = utcnow().date()
    r = ncp.post(
        "/api/v1/bilateral-agreements",
        json={
            "name": "Treaty of Example",
            "country_a": "DE",
            "country_b": "AT",
            "valid_from": (today - timedelta(days=400)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["countries"] == ["AT", "DE"] and a["editable"] is True
    # The same agreement twice is a conflict; a contact point of a third country cannot add.
    again = ncp.post(
        "/api/v1/bilateral-agreements",
        json={"name": "treaty of example", "country_a": "AT", "country_b": "DE"},
    )
    assert again.status_code == 409
    other = api_as("ncp.at").post(
        "/api/v1/bilateral-agreements",
        json={"name": "Elsewhere", "country_a": "FR", "country_b": "BE"},
    )
    assert other.status_code == 403
    assert (
        api_as("duty.de")
        .post(
            "/api/v1/bilateral-agreements",
            json={"name": "Unit pact", "country_a": "DE", "country_b": "FR"},
        )
        .status_code
        == 403
    )
    listed = api_as("observer").get("/api/v1/bilateral-agreements", params={"country": "AT"})
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()["items"]] == [a["id"]]
    assert listed.json()["items"][0]["editable"] is False
    # A request may name it while it is in force…
    de = api_as("duty.de")
    assert created(de, legal_basis="bilateral", bilateral_agreement_id=a["id"], submit=True)
    # …then it is retired (never deleted), audited, and no new request may use it.
    r = support.post(
        f"/api/v1/bilateral-agreements/{a['id']}/retire",
        json={"valid_to": (today - timedelta(days=1)).isoformat(), "reason": "superseded"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "expired" and "superseded" in r.json()["note"]
    (event,) = _audit(db, "bilateral_agreement.retired")
    assert event.before is not None and event.before["valid_to"] is None
    assert (
        event.after is not None
        and event.after["valid_to"] == (today - timedelta(days=1)).isoformat()
    )
    assert _audit(db, "bilateral_agreement.added")
    r = de.post(
        "/api/v1/requests",
        json=body(legal_basis="bilateral", bilateral_agreement_id=a["id"], submit=True),
    )
    assert r.status_code == 422 and "not in force" in r.text
    twice = support.post(f"/api/v1/bilateral-agreements/{a['id']}/retire", json={})
    assert twice.status_code == 409
    expired = support.get("/api/v1/bilateral-agreements", params={"in_force": False}).json()
    assert a["id"] in [i["id"] for i in expired["items"]]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Same", "country_a": "DE", "country_b": "DE"}, "country_b"),
        ({"name": "Nowhere", "country_a": "DE", "country_b": "QQ"}, "country_b"),
        (
            {
                "name": "Backwards",
                "country_a": "DE",
                "country_b": "AT",
                "valid_from": "2026-01-02",
                "valid_to": "2026-01-01",
            },
            "valid_to",
        ),
        ({"name": "", "country_a": "DE", "country_b": "AT"}, "name"),
    ],
)
def test_bad_agreements_are_refused_with_the_field_named(
    api_as: Any, payload: dict[str, Any], field: str
) -> None:
    r = api_as("support").post("/api/v1/bilateral-agreements", json=payload)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
