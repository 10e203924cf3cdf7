"""Planning around the pool: the background job's notifications (overdue returns, maintenance
due, undecided requests expiring), inventory import (per-row errors, all or nothing,
idempotent), photos on handover records, the categories as versioned data, and the pages'
forms (CSRF)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM
from atlaslink.equipment import loans, schemas, service
from atlaslink.equipment import tasks as equipment_tasks
from atlaslink.models import EquipmentItem, EquipmentLoan, Notification, User, utcnow
from tests.conftest import csrf_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def principal(db: Session, username: str):  # type: ignore[no-untyped-def]
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None
    return auth.principal_of(user)


def notes_for(db: Session, username: str, kind: str) -> list[Notification]:
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None
    return list(
        db.scalars(
            select(Notification).where(Notification.user_id == user.id, Notification.kind == kind)
        )
    )


def new_item(db: Session, ref: str, **over) -> EquipmentItem:  # type: ignore[no-untyped-def]
    return service.register_item(
        db,
        SYSTEM,
        schemas.ItemCreate(
            ref=ref,
            category="drone",
            model=f"Kestrel {ref}",
            unit="AT-ADLER",
            sharing=schemas.Sharing(audience="network"),  # type: ignore[arg-type]
            **over,
        ),
    )


def test_the_job_announces_overdue_returns_and_due_maintenance_once(db: Session) -> None:
    item = new_item(db, "JOB-1", maintenance_due=utcnow().date() + timedelta(days=3))
    start = utcnow() + timedelta(days=1)
    loan = loans.request_loan(
        db,
        principal(db, "duty.de"),
        item.id,
        schemas.LoanCreate(starts_at=start, ends_at=start + timedelta(days=2), purpose="training"),
    )
    at, de = principal(db, "commander.at"), principal(db, "duty.de")
    good = {"condition": "good", "signed_owner": "A", "signed_borrower": "B"}
    loans.step(db, at, loan.id, schemas.LoanStep(to="RESERVED"))
    loans.step(db, at, loan.id, schemas.LoanStep(to="ISSUED", **good))  # type: ignore[arg-type]
    loans.step(db, de, loan.id, schemas.LoanStep(to="IN_TRANSIT"))
    loans.step(db, de, loan.id, schemas.LoanStep(to="ON_LOAN", **good))  # type: ignore[arg-type]
    later = start + timedelta(days=3)
    done = equipment_tasks.tick(db, later)
    assert done["loans_overdue"] == 1 and done["maintenance_due"] >= 1
    assert len(notes_for(db, "duty.de", "loan.overdue")) == 1
    assert len(notes_for(db, "commander.at", "loan.overdue")) == 1
    assert any(
        n.link == f"/equipment/{item.id}"
        for n in notes_for(db, "commander.at", "equipment.maintenance_due")
    )
    # Once only, also at the next tick.
    again = equipment_tasks.tick(db, later + timedelta(minutes=1))
    assert again["loans_overdue"] == 0
    assert len(notes_for(db, "duty.de", "loan.overdue")) == 1
    # An overdue item is not found as available, whatever the window.
    s = service.build_search(
        category="drone", available_from=later, available_to=later + timedelta(days=1)
    )
    rows, _ = service.repo.search_page(db, de, s, later, 0, 500)
    assert item.id not in [i.id for i, *_ in rows]
    db.refresh(loan)
    assert loan.overdue_notified_at == later


def test_undecided_requests_expire_and_free_their_period(db: Session) -> None:
    item = new_item(db, "JOB-2")
    start = utcnow() + timedelta(hours=2)
    loan = loans.request_loan(
        db,
        principal(db, "duty.de"),
        item.id,
        schemas.LoanCreate(starts_at=start, ends_at=start + timedelta(days=1), purpose="exercise"),
    )
    assert equipment_tasks.tick(db, start + timedelta(minutes=1))["loans_expired"] >= 1
    db.refresh(loan)
    assert loan.status == "EXPIRED"
    assert notes_for(db, "duty.de", "loan.expired")
    # The period is free again.
    service.book(db, SYSTEM, item, start, start + timedelta(hours=1), kind="maintenance")


def test_photos_are_bounded_images_seen_by_the_two_units(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    item = new_item(db, "PH-1")
    db.commit()
    de, at, nl = api_as("duty.de"), api_as("commander.at"), api_as("commander.nl")
    start = datetime.now(UTC) + timedelta(days=5)
    loan = de.post(
        f"/api/v1/equipment/{item.id}/loans",
        json={
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(days=1)).isoformat(),
            "purpose": "exercise",
        },
    ).json()
    at.post(f"/api/v1/equipment/loans/{loan['id']}/steps", json={"to": "RESERVED"})
    r = at.post(
        f"/api/v1/equipment/loans/{loan['id']}/steps",
        json={"to": "ISSUED", "condition": "good", "signed_owner": "X", "signed_borrower": "Y"},
    )
    event = r.json()["events"][-1]["id"]
    url = f"/api/v1/equipment/loans/{loan['id']}/events/{event}/photos"
    assert at.post(url, files={"file": ("x.txt", b"hello", "text/plain")}).status_code == 422
    big = PNG + b"\x00" * (3 * 1024 * 1024)
    assert at.post(url, files={"file": ("big.png", big, "image/png")}).status_code == 413
    r = at.post(url, files={"file": ("ok.png", PNG, "image/png")})
    assert r.status_code == 201, r.text
    photo = r.json()["id"]
    assert de.get(f"/api/v1/equipment/photos/{photo}").content == PNG
    assert nl.get(f"/api/v1/equipment/photos/{photo}").status_code == 404
    assert de.get(f"/api/v1/equipment/loans/{loan['id']}").json()["events"][-1]["photos"] == [photo]


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


def test_import_is_all_or_nothing_with_row_errors_and_idempotent(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    at = api_as("commander.at")
    good = [
        {
            "unit_code": "AT-ADLER",
            "ref": f"IMP-{n}",
            "category": "night_vision",
            "model": f"NV set {n}",
            "quantity": "2",
            "serial_numbers": f"S{n}a S{n}b",
            "air_transportable": "yes",
            "needs_vehicle": "no",
            "audience": "listed",
            "share_countries": "DE",
        }
        for n in range(3)
    ]
    bad = [*good, {**good[0], "ref": "IMP-X", "category": "nope", "quantity": "two"}]
    bad.append({**good[1], "unit_code": "DE-FALKE", "ref": "IMP-Y"})
    r = at.post("/api/v1/equipment/import", files={"file": ("inv.csv", _csv(bad), "text/csv")})
    assert r.status_code == 422
    errors = {(e["row"], e["column"]) for e in r.json()["errors"]}
    assert {(5, "category"), (5, "quantity"), (6, "unit_code")} <= errors
    assert db.scalar(select(EquipmentItem.id).where(EquipmentItem.ref == "IMP-0")) is None
    r = at.post("/api/v1/equipment/import", files={"file": ("inv.csv", _csv(good), "text/csv")})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 3
    r = at.post("/api/v1/equipment/import", files={"file": ("inv.csv", _csv(good), "text/csv")})
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 3)
    # What was exported is imported unchanged (round trip of one's own rows).
    body = at.get("/api/v1/equipment/export", params={"unit": "AT-ADLER"}).content
    r = at.post("/api/v1/equipment/import", files={"file": ("back.csv", body, "text/csv")})
    assert r.status_code == 200 and r.json()["updated"] == 0, r.text
    # Another unit's commander may not import AT-ADLER's rows.
    r = api_as("commander.de").post(
        "/api/v1/equipment/import", files={"file": ("inv.csv", _csv(good), "text/csv")}
    )
    assert r.status_code == 422


def test_categories_are_versioned_data_edited_by_the_support_office(api_as) -> None:  # type: ignore[no-untyped-def]
    support, at = api_as("support"), api_as("commander.at")
    before = support.get("/api/v1/equipment/categories").json()
    assert {"counter_drone", "cbrn_detector", "boat"} <= {c["code"] for c in before["categories"]}
    body = {"code": "k9_kennel", "name": "Mobile dog kennels"}
    assert at.post("/api/v1/equipment/categories", json=body).status_code == 403
    assert support.post("/api/v1/equipment/categories", json=body).status_code == 201
    r = support.patch("/api/v1/equipment/categories/k9_kennel", json={"retired": True})
    assert r.json()["retired"]
    after = support.get("/api/v1/equipment/categories").json()
    assert after["version"] == before["version"] + 2
    assert "k9_kennel" not in {c["code"] for c in after["categories"]}


def test_page_forms_need_the_csrf_token(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    item = new_item(db, "PG-1")
    db.commit()
    de = pages_as("duty.de")
    page = de.get(f"/equipment/{item.id}")
    assert page.status_code == 200 and "Request a loan" in page.text
    start = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    end = (datetime.now(UTC) + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    form = {"starts_at": start, "ends_at": end, "purpose": "exercise"}
    r = de.post(f"/equipment/{item.id}/loans", data=form, follow_redirects=False)
    assert r.status_code == 403
    r = de.post(
        f"/equipment/{item.id}/loans",
        data={**form, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "/equipment/loans/" in r.headers["location"]
    assert db.scalar(select(EquipmentLoan.id).where(EquipmentLoan.item_id == item.id))
    for path in (
        "/equipment",
        "/equipment/loans",
        "/equipment/calendar",
        "/equipment/transfer",
        "/equipment/categories",
    ):
        assert de.get(path).status_code == 200, path
    commander = pages_as("commander.at")
    assert commander.get("/equipment/new").status_code == 200
    assert commander.get(f"/equipment/{item.id}/edit").status_code == 200


def test_the_support_office_edits_categories_from_the_page(pages_as) -> None:  # type: ignore[no-untyped-def]
    support = pages_as("support")
    page = support.get("/equipment/categories")
    assert page.status_code == 200 and "Counter-drone systems" in page.text
    r = support.post(
        "/equipment/categories",
        data={
            "code": "hydraulic_rescue",
            "name": "Hydraulic rescue sets",
            "csrf_token": csrf_of(page.text),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Hydraulic rescue sets" in support.get("/equipment/categories").text
    duty = pages_as("duty.de")
    page = duty.get("/equipment/categories")
    assert "Add a category" not in page.text
    r = duty.post(
        "/equipment/categories",
        data={"code": "x_y", "name": "Nope", "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_search_by_distance_road_time_and_transport(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    for unit, air, weight in (
        ("AT-ADLER", True, 40),
        ("DE-FALKE", True, 900),
        ("NL-REIGER", False, 40),
    ):
        service.register_item(
            db,
            SYSTEM,
            schemas.ItemCreate(
                ref=f"GEO-{unit}",
                category="cbrn_detector",
                model=f"GEOTEST {unit}",
                unit=unit,
                air_transportable=air,
                weight_kg=weight,
                sharing=schemas.Sharing(audience="network"),  # type: ignore[arg-type]
            ),
        )
    db.commit()
    fr = api_as("duty.fr")

    def found(**params) -> list[str]:  # type: ignore[no-untyped-def]
        r = fr.get("/api/v1/equipment", params={"q": "geotest", **params})
        assert r.status_code == 200, r.text
        return [i["unit"]["code"] for i in r.json()["items"]]

    # Vienna-Berlin is about 524 km; Vienna-The Hague about 930 km. Nearest first.
    assert found(near="vienna", max_km=800) == ["AT-ADLER", "DE-FALKE"]
    # Road: 524 km x 1.3 / 75 km/h = 9.1 h, plus 0.5 h for the AT-DE border.
    assert found(near="vienna", max_eta_hours=9.4) == ["AT-ADLER"]
    assert found(near="vienna", max_eta_hours=9.8) == ["AT-ADLER", "DE-FALKE"]
    assert found(latitude=48.2082, longitude=16.3738, max_km=50) == ["AT-ADLER"]
    assert found(near="vienna", air_transportable=True) == ["AT-ADLER", "DE-FALKE"]
    assert found(near="vienna", max_weight_kg=100) == ["AT-ADLER", "NL-REIGER"]
    page = fr.get("/api/v1/equipment", params={"q": "geotest", "per_page": 1, "page": 2}).json()
    assert page["total"] == 3 and page["pages"] == 3 and len(page["items"]) == 1
    item = fr.get("/api/v1/equipment", params={"q": "geotest", "near": "vienna"}).json()["items"][1]
    assert 500 < item["distance_km"] < 550 and 9.3 < item["eta_hours"] < 9.8


def test_registering_and_editing_an_item_from_the_form(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    commander = pages_as("commander.at")
    page = commander.get("/equipment/new")
    form = {
        "ref": "FORM-1",
        "category": "counter_drone",
        "model": "Skywall 100",
        "weight_kg": "heavy",
        "audience": "network",
        "csrf_token": csrf_of(page.text),
    }
    # A bad value: the form comes back with the reason and what was typed; nothing is saved.
    r = commander.post("/equipment/new", data=form, follow_redirects=False)
    assert r.status_code == 422 and 'role="alert"' in r.text and "Weight" in r.text
    assert 'value="FORM-1"' in r.text
    assert db.scalar(select(EquipmentItem.id).where(EquipmentItem.ref == "FORM-1")) is None
    r = commander.post("/equipment/new", data={**form, "weight_kg": "95"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    item_id = db.scalar(select(EquipmentItem.id).where(EquipmentItem.ref == "FORM-1"))
    assert item_id is not None and f"/equipment/{item_id}" in r.headers["location"]
    page = commander.get(f"/equipment/{item_id}/edit")
    assert page.status_code == 200 and "Skywall 100" in page.text
    edit = {**form, "model": "", "weight_kg": "95", "csrf_token": csrf_of(page.text)}
    r = commander.post(f"/equipment/{item_id}/edit", data=edit, follow_redirects=False)
    assert r.status_code == 422 and "Edit: Skywall 100" in r.text
    assert 'role="alert"' in r.text and "<strong>model</strong>" in r.text
    db.expire_all()
    item = db.get(EquipmentItem, item_id)
    assert item is not None and item.model == "Skywall 100"
