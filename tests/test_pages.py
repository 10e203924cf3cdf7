"""Pages: each renders for the roles that use it, forms save, bad input gets a readable message."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import ApiToken, CapabilityEntry, SharingRule, User
from tests.conftest import csrf_of, unit_id

PAGES = {
    "duty.at": [
        "/",
        "/units",
        "/units?page=2",
        "/matrix?kind=skill",
        "/map",
        "/taxonomy",
        "/registry/transfer",
        "/account/tokens",
        "/requests",
        "/requests?status=all&exercise=yes&q=train",
        "/requests/new",
        "/requests/new?kind=pre_alert",
        "/dashboard",
        "/dashboard?exercise=no",
        "/notifications",
        "/notifications?unread=true",
        "/account/preferences",
    ],
    "ncp.de": ["/requests", "/requests/new", "/dashboard"],
    "support": [
        "/requests",
        "/dashboard",
        "/",
        "/units",
        "/audit",
        "/audit?action=capability.",
        "/taxonomy",
        "/registry/transfer",
    ],
    "admin": ["/", "/admin/users", "/audit", "/account/tokens"],
    "observer": ["/units", "/matrix", "/map", "/requests", "/dashboard", "/notifications"],
}


@pytest.mark.parametrize(("user", "path"), [(u, p) for u, paths in PAGES.items() for p in paths])
def test_page_renders(pages_as, user: str, path: str) -> None:  # type: ignore[no-untyped-def]
    r = pages_as(user).get(path)
    assert r.status_code == 200, r.text[:500]
    assert '<a class="skip" href="#main">' in r.text and '<main id="main"' in r.text
    assert "Traceback" not in r.text


def test_pages_redirect_to_login(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/units", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/units"


def test_unknown_page_is_readable(pages_as) -> None:  # type: ignore[no-untyped-def]
    r = pages_as("duty.at").get("/units/99999999")
    assert r.status_code == 404 and "There is no unit" in r.text and "<html" in r.text


def test_map_draws_outlines_and_units_offline(pages_as) -> None:  # type: ignore[no-untyped-def]
    html = pages_as("observer").get("/map").text
    assert html.count('class="land') > 30 and html.count("<circle") >= 40
    assert not re.search(r'(src|href)="https?://', html), "no external resources"


def test_duty_officer_updates_capabilities_from_the_page(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    uid = unit_id(db, "AT-ADLER")
    c = pages_as("duty.at")
    page = c.get(f"/units/{uid}/capabilities")
    assert page.status_code == 200
    # Keep every existing entry as it is and set counter-drone to level 2.
    form = {"csrf_token": csrf_of(page.text)}
    for m in re.finditer(r'<select name="([a-z_]+)\.level"[^>]*>(.*?)</select>', page.text, re.S):
        chosen = re.search(r'value="(\d)" selected', m[2])
        form[f"{m[1]}.level"] = chosen[1] if chosen else ""
    form["counter_drone.level"] = "2"
    form["counter_drone.notice_to_move_hours"] = "abc"
    r = c.post(f"/units/{uid}/capabilities", data=form)
    assert r.status_code == 422 and "Counter-drone" in r.text
    form["counter_drone.notice_to_move_hours"] = "3"
    r = c.post(f"/units/{uid}/capabilities", data=form, follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    levels = {
        e.level
        for e in db.scalars(
            select(CapabilityEntry).where(
                CapabilityEntry.unit_id == uid, CapabilityEntry.notice_to_move_hours == 3
            )
        )
    }
    assert 2 in levels


def test_commander_edits_sharing_on_the_page(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    uid = unit_id(db, "AT-ADLER")
    c = pages_as("commander.at")
    page = c.get(f"/units/{uid}/sharing")
    assert "Matching engine only" in page.text
    data = {"csrf_token": csrf_of(page.text)}
    for g in ("existence", "level", "package", "notice", "transport"):
        data[f"{g}.audience"] = "network"
    data["contacts.audience"] = "listed"
    data["contacts.countries"] = "DE, ZZ"
    r = c.post(f"/units/{uid}/sharing", data=data)
    assert r.status_code == 422 and "unknown country" in r.text
    data["contacts.countries"] = "DE CH"
    r = c.post(f"/units/{uid}/sharing", data=data, follow_redirects=False)
    assert r.status_code == 303
    db.expire_all()
    rules = {
        r.field_group: r.audience
        for r in db.scalars(select(SharingRule).where(SharingRule.unit_id == uid))
    }
    assert rules["contacts"] == "listed" and rules["level"] == "network"
    assert pages_as("duty.at").get(f"/units/{uid}/sharing").status_code == 403


def test_commander_edits_profile_on_the_page(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    uid = unit_id(db, "AT-ADLER")
    c = pages_as("commander.at")
    page = c.get(f"/units/{uid}/edit")
    data = {
        "csrf_token": csrf_of(page.text),
        "name": "Adler Command",
        "base_location": "Wiener Neustadt",
        "latitude": "47.81",
        "longitude": "16.24",
        "languages": "de en",
        "competent_authority": "Ministry",
        "contacts": "phone | Duty desk | +43 555 0101\nbad line without bars",
        "transport": "",
    }
    r = c.post(f"/units/{uid}/edit", data=data)
    assert r.status_code == 422 and "line 2" in r.text
    data["contacts"] = "phone | Duty desk | +43 555 0101"
    assert c.post(f"/units/{uid}/edit", data=data, follow_redirects=False).status_code == 303
    assert "Adler Command" in c.get(f"/units/{uid}").text


def test_tokens_page_creates_and_revokes(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("duty.at")
    page = c.get("/account/tokens")
    r = c.post("/account/tokens", data={"name": "laptop", "csrf_token": csrf_of(page.text)})
    assert re.search(r'id="new-token">atl_', r.text)
    token = db.scalar(select(ApiToken).where(ApiToken.name == "laptop"))
    assert token is not None
    c.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf_of(r.text)})
    db.expire_all()
    assert db.get(ApiToken, token.id).revoked_at is not None  # type: ignore[union-attr]


def test_admin_manages_users_on_the_page(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("admin")
    page = c.get("/admin/users")
    base = {
        "csrf_token": csrf_of(page.text),
        "display_name": "Zed",
        "country": "",
        "password": "a-long-password-9",
    }
    r = c.post(
        "/admin/users",
        data={**base, "username": "zed", "role": "unit_commander", "unit_code": "NOPE"},
    )
    assert r.status_code == 422 and "no unit" in r.text
    r = c.post(
        "/admin/users",
        data={**base, "username": "zed", "role": "unit_commander", "unit_code": "AT-ADLER"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    c.post("/admin/users/zed/disable", data={"csrf_token": csrf_of(page.text)})
    db.expire_all()
    assert db.scalar(select(User.disabled).where(User.username == "zed")) is True


def test_support_office_adds_taxonomy_type_on_the_page(pages_as) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("support")
    page = c.get("/taxonomy")
    r = c.post(
        "/taxonomy",
        data={"csrf_token": csrf_of(page.text), "code": "Bad Code", "kind": "skill", "name": "x"},
    )
    assert r.status_code == 422
    r = c.post(
        "/taxonomy",
        data={
            "csrf_token": csrf_of(page.text),
            "code": "tunnel_ops",
            "kind": "environment",
            "name": "Tunnels",
        },
    )
    assert r.status_code == 200 and "tunnel_ops" in r.text
    assert "Add type" not in pages_as("duty.at").get("/taxonomy").text


def test_other_units_edit_pages_are_forbidden(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    other = unit_id(db, "DE-FALKE")
    c = pages_as("commander.at")
    for path in (f"/units/{other}/edit", f"/units/{other}/capabilities", f"/units/{other}/sharing"):
        assert c.get(path).status_code in (403, 404), path
