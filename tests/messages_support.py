"""Shared by the message tests: the official schemas (the oracle), partners, and a realistic
operation run through the API that produces every message type the platform emits."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.principal import Principal
from atlaslink.messages import schemas, service, validation
from atlaslink.models import OutboxMessage, User
from tests.conftest import unit_id

REPO = Path(__file__).resolve().parent.parent
# The standards sit beside the repository (../shared/standards); this machine also has them
# at /work/shared/standards.
CANDIDATES = (REPO.parent / "shared" / "standards", Path("/work/shared/standards"))
STANDARDS = next((p for p in CANDIDATES if p.is_dir()), None)


@lru_cache
def official() -> validation.Schemas:
    if STANDARDS is None:
        pytest.skip("the official schemas (../shared/standards) are not on this machine")
    return validation.Schemas(STANDARDS)


def principal(db: Session, username: str) -> Principal:
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None
    return auth.principal_of(user)


def add_partner(db: Session, code: str, sender: str, **over: Any) -> None:
    support = principal(db, "support")
    body = {
        "code": code,
        "name": f"{code} command system",
        "sender_id": sender,
        "topics": ["requests", "answers", "deployments", "alerts"],
    } | over
    service.create_partner(db, support, schemas.PartnerCreate(**body))
    service.add_endpoint(
        db,
        support,
        code,
        schemas.EndpointCreate(kind="http", target=f"http://127.0.0.1:9/{code}", secret="s3cret"),
    )
    db.commit()


def standard_partners(db: Session) -> None:
    """The requesting unit's command system, two addressed units' (one on EDXL-DE 1.0), a
    unit that is never asked, and an outside observer network."""
    add_partner(db, "de-falke", "de.falke.command", unit_code="DE-FALKE")
    add_partner(db, "at-adler", "at.adler.command", unit_code="AT-ADLER")
    add_partner(db, "nl-reiger", "nl.reiger.command", unit_code="NL-REIGER", de_version="1.0")
    add_partner(db, "it-lupo", "it.lupo.command", unit_code="IT-LUPO")
    add_partner(db, "observers", "eu.observer.network", observer=True)


def request_body(**over: Any) -> dict[str, Any]:
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
        "distribution_marking": "LIMITE",
        "handling_code": "H2",
        "lines": [
            {
                "capability": "building",
                "min_level": 2,
                "quantity": 6,
                "needed_by": "2030-11-23T16:00:00+00:00",
                "note": "Rail breaching kit",
            },
            {"capability": "crisis_negotiation", "min_level": 1, "quantity": 2},
        ],
    }
    b.update(over)
    return b


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def full_operation(api_as: Any, db: Session) -> int:
    """A whole operation: answers of every kind, acceptance, agreement, steps, an amendment,
    a recall, a withdrawal, the stand-down and the return home."""
    de, at, nl = api_as("duty.de"), api_as("duty.at"), api_as("commander.nl")
    fr = api_as("duty.fr")
    req = ok(de.post("/api/v1/requests", json=request_body(submit=True)), 201)
    rid = req["id"]
    base = f"/api/v1/requests/{rid}"
    fr_unit = db.scalar(select(User.unit_id).where(User.username == "duty.fr"))
    ids = [unit_id(db, "AT-ADLER"), unit_id(db, "NL-REIGER"), fr_unit]
    ok(de.post(f"{base}/addressees", json={"unit_ids": ids}))
    ok(at.post(f"{base}/acknowledge"))
    out = ok(
        at.post(
            f"{base}/answers",
            json={
                "answer": "accept",
                "lines": [{"line_no": 1, "quantity": 4}],
                "package": "4 operators, rail-breaching kit",
                "conditions": "Own vehicles",
                "costs": "own costs",
                "eta_at": "2030-11-23T15:30:00+00:00",
            },
        ),
        201,
    )
    ok(nl.post(f"{base}/answers", json={"answer": "refuse", "reason": "Committed at home"}), 201)
    ok(fr.post(f"{base}/answers", json={"answer": "unable_to_fill"}), 201)
    at_offer = out["offers"][0]["id"]
    out = ok(
        de.post(f"{base}/offers/{at_offer}/accept", json={"lines": [{"line_no": 1, "quantity": 3}]})
    )
    rev = out["offers"][0]["arrangement"]["revision"]
    for c in (de, at):
        ok(c.post(f"{base}/offers/{at_offer}/arrangement/confirm", json={"revision": rev}))
    status = f"{base}/offers/{at_offer}/status"
    ok(at.post(status, json={"status": "MOBILISING"}))
    ok(at.post(status, json={"status": "EN_ROUTE", "note": "Crossing at Salzburg"}))
    ok(at.post(status, json={"status": "ON_SITE"}))
    # An amendment while the team is on site: line 2 asks for more negotiators.
    current = ok(de.get(base))
    amended = request_body(expected_version=current["version"], reason="A second train was stopped")
    amended["lines"][1]["quantity"] = 3
    ok(de.put(base, json=amended))
    # France can help after all; the Netherlands proposes something else, then withdraws it.
    out = ok(
        fr.post(
            f"{base}/answers",
            json={
                "answer": "accept",
                "lines": [{"line_no": 2, "quantity": 2}],
                "package": "2 negotiators",
            },
        ),
        201,
    )
    fr_offer = next(o["id"] for o in out["offers"] if o["unit"]["id"] == fr_unit)
    ok(
        nl.post(
            f"{base}/answers",
            json={
                "answer": "counter_propose",
                "package": "Armoured vehicle and crew",
                "reason": "No negotiators free",
            },
        ),
        201,
    )
    nl_offer = next(
        o["id"] for o in ok(de.get(base))["offers"] if o["unit"]["id"] == unit_id(db, "NL-REIGER")
    )
    ok(nl.post(f"{base}/offers/{nl_offer}/withdraw", json={"reason": "Vehicle needed at home"}))
    out = ok(de.post(f"{base}/offers/{fr_offer}/accept", json={}))
    rev = next(o for o in out["offers"] if o["id"] == fr_offer)["arrangement"]["revision"]
    for c in (de, fr):
        ok(c.post(f"{base}/offers/{fr_offer}/arrangement/confirm", json={"revision": rev}))
    ok(fr.post(f"{base}/offers/{fr_offer}/status", json={"status": "MOBILISING"}))
    ok(fr.post(f"{base}/offers/{fr_offer}/recall", json={"reason": "Needed for a national case"}))
    ok(de.post(f"{base}/stand-down", json={"reason": "train stormed"}))
    for step in ("RETURNING", "HOME"):
        ok(at.post(status, json={"status": step}))
    ok(fr.post(f"{base}/offers/{fr_offer}/status", json={"status": "HOME"}))
    return rid


def outbox_of(db: Session, partner_code: str | None = None) -> list[OutboxMessage]:
    from atlaslink.models import Partner

    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    if partner_code:
        stmt = stmt.join(Partner, Partner.id == OutboxMessage.partner_id).where(
            Partner.code == partner_code
        )
    return list(db.scalars(stmt))
