"""Who sees an assistance request, and which of its fields, over every way it leaves the
platform: API detail, list and timeline, the operation page, the after-action report, the
dashboard and the notifications. Viewers x grants x ways out, from one scenario.

Germany (DE-FALKE) asks Austria (AT-ADLER) and a French unit. Adler offers with terms only
the two parties may read, the offer is accepted and Adler declares a weapon on the manifest
(an event for the parties only), and offers one item of its equipment that its own sharing
keeps to itself (offering discloses it to the requester). The French unit sees that Adler
offered, not what.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import Notification, User
from tests.conftest import unit_id

PACKAGE = "Package-7Q2-two-assault-teams"
COSTS = "Costs-5K9-borne-by-Austria"
ITEM = "Rifles-X4Z"
EQUIPMENT = "Breacher-Robot-M3K"

# viewer -> (sees the request, sees the offer terms) without grants, and with grants to
# the support office and the observers.
EXPECTED: dict[str, dict[str, tuple[bool, bool]]] = {
    "duty.de": {"none": (True, True), "granted": (True, True)},
    "commander.de": {"none": (True, True), "granted": (True, True)},
    "ncp.de": {"none": (True, True), "granted": (True, True)},
    "duty.at": {"none": (True, True), "granted": (True, True)},
    "commander.at": {"none": (True, True), "granted": (True, True)},
    "duty.fr": {"none": (True, False), "granted": (True, False)},
    "commander.nl": {"none": (False, False), "granted": (False, False)},
    "ncp.at": {"none": (False, False), "granted": (False, False)},
    "observer": {"none": (False, False), "granted": (True, False)},
    # The support office, once granted, supervises: it may have to settle the terms.
    "support": {"none": (False, False), "granted": (True, True)},
    "admin": {"none": (False, False), "granted": (False, False)},
}


@pytest.fixture
def scenario(api_as: Any, db: Session) -> Any:
    def make(grants: str) -> dict[str, Any]:
        de, at = api_as("duty.de"), api_as("duty.at")
        r = api_as("commander.at").post(
            "/api/v1/equipment",
            json={
                "ref": "BR-1",
                "category": "counter_drone",
                "model": EQUIPMENT,
                "sharing": {"audience": "own_unit"},
            },
        )
        assert r.status_code == 201, r.text
        equipment = r.json()["id"]
        body = {
            "exercise": False,
            "title": "Ongoing attack at a shopping centre in Munich",
            "crisis_category": "ongoing_attack",
            "location_name": "München, Olympia-Einkaufszentrum",
            "latitude": 48.183,
            "longitude": 11.532,
            "nature": ["intervention"],
            "operational_necessity": "Several attackers; our teams are engaged elsewhere.",
            "legal_basis": "2008/617-art3",
            "lines": [{"capability": "building", "min_level": 2, "quantity": 2}],
            "submit": True,
        }
        r = de.post("/api/v1/requests", json=body)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        fr_unit = db.scalar(select(User.unit_id).where(User.username == "duty.fr"))
        units = [unit_id(db, "AT-ADLER"), fr_unit]
        assert de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": units}).is_success
        r = at.post(
            f"/api/v1/requests/{rid}/answers",
            json={
                "answer": "accept",
                "lines": [{"line_no": 1, "quantity": 2}],
                "package": PACKAGE,
                "costs": COSTS,
                "equipment": [equipment],
            },
        )
        assert r.status_code == 201, r.text
        offer = r.json()["offers"][0]["id"]
        assert de.post(f"/api/v1/requests/{rid}/offers/{offer}/accept", json={}).is_success
        r = at.post(
            f"/api/v1/requests/{rid}/offers/{offer}/manifest",
            json={"category": "weapon", "description": ITEM, "quantity": 16},
        )
        assert r.status_code == 201, r.text
        if grants == "granted":
            for grantee in ("support_office", "observers"):
                r = de.post(f"/api/v1/requests/{rid}/grants", json={"grantee": grantee})
                assert r.is_success, r.text
        return {"id": rid, "reference": r.json()["reference"]}

    return make


CASES = [(viewer, grants) for viewer in EXPECTED for grants in ("none", "granted")]


@pytest.mark.parametrize(("viewer", "grants"), CASES)
def test_request_visibility_over_every_way_out(
    scenario: Any, api_as: Any, pages_as: Any, db: Session, viewer: str, grants: str
) -> None:
    sees, terms = EXPECTED[viewer][grants]
    s = scenario(grants)
    rid, ref = s["id"], s["reference"]
    api, page = api_as(viewer), pages_as(viewer)
    outputs: dict[str, str] = {}

    r = api.get(f"/api/v1/requests/{rid}")
    assert r.status_code == (200 if sees else 404), (viewer, r.text[:200])
    outputs["api detail"] = r.text
    r = api.get(f"/api/v1/requests/{rid}/events")
    assert r.status_code == (200 if sees else 404)
    outputs["api events"] = r.text
    r = api.get("/api/v1/requests", params={"status": "live"})
    if r.status_code == 200:
        assert (rid in [i["id"] for i in r.json()["items"]]) == sees, viewer
    else:
        assert not sees and r.status_code == 403
    outputs["api list"] = r.text
    r = api.get("/api/v1/dashboard")
    if r.status_code == 200:
        assert (ref in r.text) == sees
    outputs["api dashboard"] = r.text

    for path in (f"/requests/{rid}", f"/requests/{rid}/report"):
        r = page.get(path)
        assert r.status_code == (200 if sees else 404), path
        outputs[path] = r.text
    r = page.get(f"/requests/{rid}/report.pdf")
    assert r.status_code == (200 if sees else 404)
    if sees:
        assert r.headers["content-type"] == "application/pdf"
        pdf = PdfReader(io.BytesIO(r.content))
        outputs["report pdf"] = " ".join(p.extract_text() for p in pdf.pages)
        assert ref in outputs["report pdf"] and "ACTUAL" in outputs["report pdf"]
    r = page.get("/requests?status=all")
    outputs["page list"] = r.text
    if r.status_code == 200:
        assert (ref in r.text) == sees
    r = page.get("/dashboard")
    outputs["page dashboard"] = r.text

    user_id = db.scalar(select(User.id).where(User.username == viewer))
    notes = db.scalars(select(Notification).where(Notification.user_id == user_id)).all()
    outputs["notifications"] = " ".join(f"{n.title} {n.body}" for n in notes)
    if not sees:
        assert not [n for n in notes if n.request_id == rid], viewer

    for way, text in outputs.items():
        if not sees:
            assert ref not in text or way in ("api dashboard", "page dashboard"), (viewer, way)
            assert "Munich" not in text and "Olympia" not in text, (viewer, way)
        for secret in (PACKAGE, COSTS, ITEM, EQUIPMENT):
            if not terms:
                assert secret not in text, (viewer, way, secret)
    if terms:
        assert PACKAGE in outputs["api detail"] and PACKAGE in outputs[f"/requests/{rid}"]
        assert ITEM in outputs["api events"] and ITEM in outputs[f"/requests/{rid}/report"]
        assert PACKAGE in outputs["report pdf"].replace("\n", "")
        for way in ("api detail", f"/requests/{rid}", f"/requests/{rid}/report"):
            assert EQUIPMENT in outputs[way], way
        assert EQUIPMENT in outputs["report pdf"].replace("\n", "")
    elif sees:
        # The same picture: who offered, and the state of it.
        assert "AT-ADLER" in outputs[f"/requests/{rid}"]


def test_candidates_are_for_the_requesting_side_only(scenario: Any, api_as: Any) -> None:
    rid = scenario("granted")["id"]
    for viewer, status in (
        ("duty.de", 200),
        ("ncp.de", 200),
        ("duty.at", 403),
        ("support", 403),
        ("observer", 403),
        ("commander.nl", 404),
    ):
        r = api_as(viewer).get(f"/api/v1/requests/{rid}/lines/1/candidates")
        assert r.status_code == status, (viewer, r.text[:200])
