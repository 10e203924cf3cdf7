"""Spreadsheet import (all or nothing, idempotent, errors per row and cell) and export."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.models import AuditEvent, CapabilityEntry, CapabilityType
from tests.conftest import csrf_of, unit_id

HEADER = "unit_code,capability,level,package_size,notice_to_move_hours,self_sufficiency_hours,may_deploy_abroad,may_carry_arms_abroad,may_carry_explosives_abroad,last_validated,validated_exercise\n"
# The rows of one unit, imported by that unit's commander (only the unit itself changes its
# entries; the support office may only give a unit it creates in the same file its first ones).
GOOD = HEADER + (
    "AT-ADLER,canine,2,6,4,24,yes,no,no,2026-05-01,Exercise ALPINE KEY\n"
    "AT-ADLER,combat_diving,1,4,12,,no,no,no,,\n"
    "AT-ADLER,drones,3,8,2,48,yes,yes,no,2026-03-03,\n"
)
FOREIGN = HEADER + "BG-ORLIK,drones,3,8,2,48,yes,yes,no,2026-03-03,\n"


def _upload(api: TestClient, body: bytes, name: str = "caps.csv", dry_run: bool = False):  # type: ignore[no-untyped-def]
    return api.post(
        "/api/v1/import", params={"dry_run": dry_run}, files={"file": (name, body, "text/csv")}
    )


def _count(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count(CapabilityEntry.id))) or 0


def _audit_count(db: Session) -> int:
    return (
        db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.object_type == "capability"))
        or 0
    )


def test_import_applies_and_reimport_changes_nothing(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    api = api_as("commander.at")
    r = _upload(api, GOOD.encode())
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["applied"] and first["rows"] == 3
    assert first["created"] + first["updated"] + first["unchanged"] == 3
    entries, events = _count(db), _audit_count(db)
    again = _upload(api, GOOD.encode()).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert _count(db) == entries and _audit_count(db) == events
    uid = unit_id(db, "AT-ADLER")
    canine = db.scalar(
        select(CapabilityEntry).where(
            CapabilityEntry.unit_id == uid, CapabilityEntry.package_size == 6
        )
    )
    assert canine is not None and canine.level == 2 and canine.may_deploy_abroad


def test_one_bad_row_applies_nothing_and_names_row_and_cell(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    body = (
        GOOD
        + "AT-ADLER,flying_carpet,5,x,,,maybe,no,no,01/02/2026,\nXX-NONE,canine,1,,,,no,no,no,,\n"
    )
    before = _count(db)
    r = _upload(api_as("commander.at"), body.encode())
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = {(e["row"], e["column"]) for e in r.json()["errors"]}
    assert {
        (5, "capability"),
        (5, "package_size"),
        (5, "may_deploy_abroad"),
        (5, "last_validated"),
        (6, "unit_code"),
    } <= errors
    level = [e for e in r.json()["errors"] if e["row"] == 5 and e["column"] == "level"]
    assert level and "3" in level[0]["message"]
    assert r.json()["applied"] is False
    assert _count(db) == before


def test_missing_columns_and_duplicates_are_reported(api_as) -> None:  # type: ignore[no-untyped-def]
    r = _upload(api_as("commander.at"), b"unit_code,level\nAT-ADLER,2\n")
    assert r.status_code == 422
    assert {
        "sheet": "capabilities",
        "row": 1,
        "column": "capability",
        "value": "",
        "message": "required column is missing",
    } in r.json()["errors"]
    dup = HEADER + "AT-ADLER,canine,2,,,,no,no,no,,\nAT-ADLER,canine,3,,,,no,no,no,,\n"
    r = _upload(api_as("commander.at"), dup.encode())
    assert any("duplicate of row 2" in e["message"] for e in r.json()["errors"])


def test_dry_run_validates_without_applying(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    before = _count(db)
    r = _upload(api_as("commander.at"), GOOD.encode(), dry_run=True)
    assert r.status_code == 200 and r.json()["applied"] is False
    assert _count(db) == before


def test_xlsx_import(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "capabilities"
    for line in GOOD.strip().splitlines():
        ws.append([int(c) if c.isdigit() else c for c in line.split(",")])
    buf = io.BytesIO()
    wb.save(buf)
    r = api_as("commander.at").post(
        "/api/v1/import", files={"file": ("caps.xlsx", buf.getvalue(), "application/octet-stream")}
    )
    assert r.status_code == 200, r.text
    assert r.json()["applied"]


def test_commander_imports_only_own_unit_rows(api_as) -> None:  # type: ignore[no-untyped-def]
    r = _upload(api_as("commander.at"), (GOOD + FOREIGN.split("\n", 1)[1]).encode())
    assert r.status_code == 422
    assert [(e["row"], e["column"]) for e in r.json()["errors"]] == [(5, "unit_code")]
    own = HEADER + "AT-ADLER,canine,2,6,4,24,yes,no,no,2026-05-01,\n"
    assert _upload(api_as("commander.at"), own.encode()).status_code == 200
    assert _upload(api_as("duty.at"), own.encode()).status_code == 403


def test_support_office_cannot_write_or_probe_an_existing_units_entries(  # type: ignore[no-untyped-def]
    api_as, db: Session
) -> None:
    """Only a unit changes its entries. The support office's own export (blank where BG-ORLIK
    shares nothing with it) imports again as unchanged; any other row for BG-ORLIK is refused
    alike, whether it states the hidden values truly or not, so the reply tells nothing."""
    uid = unit_id(db, "BG-ORLIK")

    def entries() -> list[tuple[int, int, int | None, int | None]]:
        db.expire_all()
        return [
            (e.capability_type_id, e.level, e.package_size, e.notice_to_move_hours)
            for e in db.scalars(
                select(CapabilityEntry)
                .where(CapabilityEntry.unit_id == uid)
                .order_by(CapabilityEntry.capability_type_id)
            )
        ]

    stored, events = entries(), _audit_count(db)
    assert stored
    support = api_as("support")
    exported = support.get("/api/v1/export", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(exported)))
    orlik = [r for r in rows if r["unit_code"] == "BG-ORLIK"]
    assert orlik and all(r["level"] == "" for r in orlik)  # its levels are not shared with it
    reads = db.scalar(select(func.count()).where(AuditEvent.object_type == "disclosure"))
    r = _upload(support, exported.encode())
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, len(rows))
    assert entries() == stored and _audit_count(db) == events
    # Comparing rows with what is shared shows nothing: no read is recorded for it.
    db.expire_all()
    assert db.scalar(select(func.count()).where(AuditEvent.object_type == "disclosure")) == reads

    true_row = dict(orlik[0])  # an entry the support office knows exists, its level blank
    stored_level = db.scalar(
        select(CapabilityEntry.level)
        .join(CapabilityType, CapabilityType.id == CapabilityEntry.capability_type_id)
        .where(CapabilityEntry.unit_id == uid, CapabilityType.code == true_row["capability"])
    )
    assert stored_level is not None
    replies = []
    for level in (stored_level, (stored_level + 1) % 4):  # the true hidden value, and a wrong one
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(true_row))
        w.writeheader()
        w.writerow({**true_row, "level": level})
        r = _upload(support, out.getvalue().encode())
        assert r.status_code == 422, r.text
        assert r.json()["applied"] is False
        replies.append(r.json()["errors"])
    assert replies[0] == [
        {
            "sheet": "capabilities",
            "row": 2,
            "column": "unit_code",
            "value": "BG-ORLIK",
            "message": "only the unit itself may change its capabilities (this row differs "
            "from what the unit shares with you)",
        }
    ]
    assert replies[1] == replies[0]
    assert entries() == stored and _audit_count(db) == events


def test_unreadable_files_get_a_clear_error(api_as) -> None:  # type: ignore[no-untyped-def]
    api = api_as("support")
    r = _upload(api, b"\x00\x01garbage", name="caps.xlsx")
    assert r.status_code == 422 and "XLSX" in r.json()["detail"]
    r = _upload(api, b"a,b", name="caps.pdf")
    assert r.status_code == 422 and ".xlsx or .csv" in r.json()["detail"]
    r = _upload(api, b"", name="caps.csv")
    assert r.status_code == 422 and "empty" in r.json()["detail"]


def test_export_roundtrip_of_own_unit(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    api = api_as("commander.at")
    body = api.get("/api/v1/export", params={"format": "csv"}).text
    rows = [r for r in csv.DictReader(io.StringIO(body)) if r["unit_code"] == "AT-ADLER"]
    assert rows and all(r["level"] != "" for r in rows)
    # The commander's own rows, exported and imported again, change nothing.
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
    result = _upload(api, out.getvalue().encode()).json()
    assert result["unchanged"] == len(rows) and result["created"] == result["updated"] == 0
    units = api.get("/api/v1/export", params={"format": "csv", "table": "units"}).text
    assert "AT-ADLER" in units and units.startswith("unit_code,name,country")
    wb = load_workbook(io.BytesIO(api.get("/api/v1/export", params={"format": "xlsx"}).content))
    assert wb.sheetnames == ["capabilities", "units", "contacts", "transport"]
    # The whole workbook imports again and changes nothing (the contacts and transport sheets
    # are the profile's, read by no import).
    workbook = api.get("/api/v1/export", params={"format": "xlsx"}).content
    r = api.post(
        "/api/v1/import", files={"file": ("reg.xlsx", workbook, "application/octet-stream")}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"]) == (0, 0)


def test_import_page_shows_errors_per_row(pages_as) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("support")
    page = c.get("/registry/transfer")
    bad = HEADER + "AT-ADLER,canine,9,,,,no,no,no,,\n"
    r = c.post(
        "/registry/import",
        data={"csrf_token": csrf_of(page.text)},
        files={"file": ("caps.csv", bad.encode(), "text/csv")},
    )
    assert r.status_code == 422
    assert "Row 2" in r.text and "level" in r.text and "nothing was applied" in r.text


def test_units_sheet_creates_units_and_their_capabilities_in_one_file(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    wb = Workbook()
    units = wb.active
    assert units is not None
    units.title = "units"
    units.append(
        [
            "unit_code",
            "name",
            "country",
            "network",
            "base_location",
            "latitude",
            "longitude",
            "languages",
            "competent_authority",
        ]
    )
    units.append(
        [
            "LU-NEW",
            "New Luxembourg unit",
            "LU",
            "ATLAS",
            "Luxembourg",
            49.61,
            6.13,
            "fr de lb en",
            "Police grand-ducale",
        ]
    )
    caps = wb.create_sheet("capabilities")
    caps.append(["unit_code", "capability", "level"])
    caps.append(["LU-NEW", "building", 2])
    buf = io.BytesIO()
    wb.save(buf)
    body = buf.getvalue()
    r = api_as("support").post(
        "/api/v1/import", files={"file": ("reg.xlsx", body, "application/octet-stream")}
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2
    # From now on the new unit's entries are its own: shared with nobody yet (the default),
    # so the same file again changes nothing and says why, row by row.
    events = _audit_count(db)
    again = api_as("support").post(
        "/api/v1/import", files={"file": ("reg.xlsx", body, "application/octet-stream")}
    )
    assert again.status_code == 422
    assert [(e["sheet"], e["row"], e["column"]) for e in again.json()["errors"]] == [
        ("capabilities", 2, "unit_code")
    ]
    assert "only the unit itself" in again.json()["errors"][0]["message"]
    assert _audit_count(db) == events
    # Another unit's profile can only be changed by that unit.
    units_csv = "unit_code,name,country,base_location\nAT-ADLER,Renamed by someone else,AT,Wien\n"
    r = api_as("support").post(
        "/api/v1/import", files={"file": ("u.csv", units_csv.encode(), "text/csv")}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0] == {
        "sheet": "units",
        "row": 2,
        "column": "unit_code",
        "value": "AT-ADLER",
        "message": "only the unit itself may change its profile",
    }
