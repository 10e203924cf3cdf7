"""The country rules page: everyone reads it; the right people change rules and agreements."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import AuditEvent, BilateralAgreement, CountrySettings
from tests.conftest import csrf_of


@pytest.mark.parametrize("username", ["support", "ncp.de", "duty.at", "observer", "admin"])
def test_the_page_renders_for_every_role(pages_as: Any, username: str) -> None:
    r = pages_as(username).get("/network/rules")
    assert r.status_code == 200, r.text
    assert "Country rules and bilateral agreements" in r.text
    assert "Netherlands" in r.text and "Traceback" not in r.text
    forms = 'name="action" value="rules"' in r.text
    assert forms is (username in ("support", "ncp.de"))


def test_the_network_page_links_to_it(pages_as: Any) -> None:
    assert 'href="/network/rules"' in pages_as("observer").get("/network").text


def test_a_contact_point_changes_its_own_countrys_rules(pages_as: Any, db: Session) -> None:
    c = pages_as("ncp.de")
    page = c.get("/network/rules")
    assert "Change the rules of Germany (DE)" in page.text  # its own country, no other choice
    assert 'name="edit"' not in page.text
    r = c.post(
        "/network/rules",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "rules",
            "country": "DE",
            "national_approval_required": "1",
            "note": "Cabinet decision needed",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    db.expire_all()
    cs = db.get(CountrySettings, "DE")
    assert cs is not None and cs.national_approval_required and not cs.prohibits_foreign_arms
    assert cs.note == "Cabinet decision needed"
    shown = c.get(r.headers["location"])
    assert "Rules of DE saved" in shown.text
    # Another country's rules: refused, with a readable page.
    r = c.post(
        "/network/rules",
        data={"csrf_token": csrf_of(page.text), "action": "rules", "country": "NL"},
    )
    assert r.status_code == 403 and "national contact point" in r.text
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "country_rules.updated"))
    assert event is not None and event.object_id == "DE"


def test_forms_need_the_csrf_token(pages_as: Any, db: Session) -> None:
    r = pages_as("support").post(
        "/network/rules", data={"action": "rules", "country": "NL", "csrf_token": "forged"}
    )
    assert r.status_code == 403
    assert db.get(CountrySettings, "NL") is None


def test_agreements_are_recorded_listed_by_page_and_retired(pages_as: Any, db: Session) -> None:
    c = pages_as("support")
    csrf = csrf_of(c.get("/network/rules").text)
    for i in range(22):
        r = c.post(
            "/network/rules",
            data={
                "csrf_token": csrf,
                "action": "agreement",
                "name": f"Pact number {i:02d}",
                "country_a": "AT",
                "country_b": "DE" if i % 2 else "CH",
                "valid_from": "2024-01-01",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
    first = c.get("/network/rules")
    assert "22 in all · page 1 of 2" in first.text and 'rel="next"' in first.text
    second = c.get("/network/rules?page=2")
    assert second.text.count("<td>Pact number") == 2
    only_de = c.get("/network/rules?country=de")
    assert only_de.text.count("<td>Pact number") == 11
    bad = c.post(
        "/network/rules",
        data={
            "csrf_token": csrf,
            "action": "agreement",
            "name": "Backwards",
            "country_a": "AT",
            "country_b": "DE",
            "valid_from": "2024-02-01",
            "valid_to": "2024-01-01",
        },
    )
    assert bad.status_code == 422 and "ends before it starts" in bad.text
    a = db.scalar(select(BilateralAgreement).where(BilateralAgreement.name == "Pact number 00"))
    assert a is not None
    r = c.post(
        "/network/rules",
        data={
            "csrf_token": csrf,
            "action": "retire",
            "agreement_id": str(a.id),
            "valid_to": "2025-06-30",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    db.expire_all()
    assert db.get(BilateralAgreement, a.id).valid_to.isoformat() == "2025-06-30"  # type: ignore[union-attr]
    # Readers see the list but no forms.
    observer = pages_as("observer").get("/network/rules").text
    assert "Pact number 01" in observer and 'value="retire"' not in observer
