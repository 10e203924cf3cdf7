"""Import and export of the equipment inventory as XLSX or CSV.

Import is all or nothing: every row is checked first (per-row, per-cell errors), nothing is
applied if any row fails, and rows are matched on (unit_code, ref), so importing the same file
twice changes nothing. A unit imports its own rows only. Exports are built from
``views.item_out`` over ``policy.readable``: only items the viewer may see, and the sharing
columns only for the viewer's own unit's items.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.equipment import policy, schemas, service
from atlaslink.equipment import repository as repo
from atlaslink.equipment.repository import Search
from atlaslink.errors import Invalid, TooLarge
from atlaslink.models import Unit

COLUMNS = (
    "unit_code",
    "ref",
    "category",
    "model",
    "quantity",
    "serial_numbers",
    "location_name",
    "latitude",
    "longitude",
    "weight_kg",
    "length_cm",
    "width_cm",
    "height_cm",
    "air_transportable",
    "needs_vehicle",
    "operator_training",
    "restrictions",
    "maintenance_due",
    "status",
    "notes",
    "audience",
    "share_countries",
    "share_units",
)
REQUIRED = {"unit_code", "ref", "category", "model"}
TRUE = {"yes", "y", "true", "1", "x", "ja"}
FALSE = {"no", "n", "false", "0", "", "nee"}
SHEET = "equipment"


@dataclass
class CellError:
    row: int
    column: str
    value: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": SHEET,
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "message": self.message,
        }


class ImportResult(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    applied: bool
    errors: list[dict[str, Any]]


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    applied: bool = False
    errors: list[CellError] = field(default_factory=list)

    def result(self) -> ImportResult:
        return ImportResult(
            rows=self.rows,
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            applied=self.applied,
            errors=[e.as_dict() for e in self.errors],
        )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _rows(filename: str, data: bytes) -> list[list[str]]:
    name = filename.lower()
    source: Iterator[list[str]]
    if name.endswith(".xlsx"):
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception:
            raise Invalid("The file is not a readable XLSX workbook.") from None
        sheet = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
        source = ([_cell(v) for v in row] for row in sheet.iter_rows(values_only=True))
    elif name.endswith(".csv") or name.endswith(".txt"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("The CSV file is not UTF-8 text.") from None
        dialect: type[csv.Dialect] | csv.Dialect = csv.excel
        with contextlib.suppress(csv.Error):
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        source = csv.reader(io.StringIO(text), dialect)
    else:
        raise Invalid("Upload a .xlsx or .csv file.")
    limit = get_settings().max_import_rows
    rows: list[list[str]] = []
    for row in source:
        if any(c.strip() for c in row):
            rows.append([c.strip() for c in row])
        if len(rows) > limit + 1:
            raise TooLarge(f"The file has more than {limit} rows; split it.")
    if not rows:
        raise Invalid("The file is empty.")
    return rows


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    return True if v in TRUE else False if v in FALSE else None


@dataclass
class _Row:
    row: int
    unit_id: int
    ref: str
    create: schemas.ItemCreate | None = None
    update: schemas.ItemUpdate | None = None
    item_id: int | None = None


_NUMBERS: dict[str, type] = {
    "quantity": int,
    "latitude": float,
    "longitude": float,
    "weight_kg": float,
    "length_cm": int,
    "width_cm": int,
    "height_cm": int,
}


def _values(n: int, cells: dict[str, str], errs: list[CellError]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model": cells.get("model", ""),
        "location_name": cells.get("location_name", ""),
        "operator_training": cells.get("operator_training", ""),
        "restrictions": cells.get("restrictions", ""),
        "notes": cells.get("notes", ""),
        "serial_numbers": cells.get("serial_numbers", "").replace(";", " ").split(),
    }
    for col, kind in _NUMBERS.items():
        raw = cells.get(col, "")
        if raw == "":
            values[col] = 1 if col == "quantity" else None
            continue
        try:
            values[col] = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
        except ValueError:
            errs.append(CellError(n, col, raw, "write a number"))
    for col in ("air_transportable", "needs_vehicle"):
        b = _bool(cells.get(col, ""))
        if b is None:
            errs.append(CellError(n, col, cells.get(col, ""), "write yes or no"))
        values[col] = bool(b)
    due = cells.get("maintenance_due", "")
    try:
        values["maintenance_due"] = date.fromisoformat(due) if due else None
    except ValueError:
        errs.append(CellError(n, "maintenance_due", due, "write a date as YYYY-MM-DD"))
    return values


def _validate(
    session: Session, actor: Principal, table: list[list[str]], report: ImportReport
) -> list[_Row]:
    header = [h.strip().lower() for h in table[0]]
    missing = [c for c in COLUMNS if c in REQUIRED and c not in header]
    unknown = [h for h in header if h and h not in COLUMNS]
    for c in missing:
        report.errors.append(CellError(1, c, "", "required column is missing"))
    for c in unknown:
        report.errors.append(CellError(1, c, c, "unknown column"))
    if missing or unknown:
        return []
    index = {h: i for i, h in enumerate(header) if h}
    units = dict(session.execute(select(Unit.code, Unit.id)).tuples().all())
    current = {c.code for c in service.categories(session).categories}
    out: list[_Row] = []
    seen: dict[tuple[str, str], int] = {}
    for n, raw in enumerate(table[1:], start=2):
        cells = {c: (raw[i] if i < len(raw) else "") for c, i in index.items()}
        errs: list[CellError] = []
        code = cells.get("unit_code", "").upper()
        ref = cells.get("ref", "")
        unit_id = units.get(code)
        if unit_id is None:
            errs.append(CellError(n, "unit_code", code, "no such unit"))
        elif not policy.is_owner(actor, unit_id):
            errs.append(CellError(n, "unit_code", code, "you may import only your own unit"))
        if (code, ref) in seen:
            errs.append(CellError(n, "ref", ref, f"duplicate of row {seen[(code, ref)]}"))
        seen.setdefault((code, ref), n)
        category = cells.get("category", "")
        if category not in current:
            errs.append(CellError(n, "category", category, "no such current category"))
        values = _values(n, cells, errs)
        status = cells.get("status", "") or "available"
        sharing_raw = {
            "audience": cells.get("audience", "") or "own_unit",
            "countries": cells.get("share_countries", "").replace(",", " ").split(),
            "units": cells.get("share_units", "").replace(",", " ").split(),
        }
        flagged = {e.column for e in errs}
        existing = repo.item_by_ref(session, unit_id, ref) if unit_id is not None else None
        item = _Row(n, unit_id or 0, ref, item_id=existing.id if existing else None)
        try:
            sharing = schemas.Sharing(**sharing_raw)
            clean = {k: v for k, v in values.items() if k not in flagged}
            if existing is None:
                item.create = schemas.ItemCreate(
                    ref=ref, category=category, unit=code, sharing=sharing, **clean
                )
            else:
                # A blank location keeps the stored one (new items start at the unit's base).
                for col in ("latitude", "longitude", "location_name"):
                    if clean.get(col) in (None, ""):
                        clean.pop(col, None)
                item.update = schemas.ItemUpdate(
                    category=category, status=status, sharing=sharing, **clean
                )
        except ValidationError as exc:
            for ve in exc.errors():
                loc = [str(x) for x in ve["loc"]]
                col = loc[0] if loc else "row"
                col = {"countries": "share_countries", "units": "share_units"}.get(col, col)
                if col not in flagged:
                    errs.append(CellError(n, col, cells.get(col, ""), ve["msg"]))
        if errs:
            report.errors.extend(errs)
        else:
            out.append(item)
    return out


def import_inventory(
    session: Session,
    actor: Principal,
    filename: str,
    data: bytes,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    actor.require(Permission.EQUIPMENT_EDIT_OWN)
    table = _rows(filename, data)
    report = ImportReport(rows=len(table) - 1)
    rows = _validate(session, actor, table, report)
    if report.errors or dry_run:
        return report
    # The items the file changes are locked first, together: each row appends to the audit
    # chain, whose head stays locked until commit, and a booking holds its item before the
    # head (service.hold_items); taking the items one by one would deadlock with it.
    service.hold_items(session, [r.item_id for r in rows if r.update is not None and r.item_id])
    try:
        # Sharing targets and the like are checked again as the rows are applied; any error
        # is reported on its row and nothing of the file stays (the caller rolls back).
        for done, r in enumerate(rows, start=1):
            try:
                if r.create is not None:
                    service.register_item(session, actor, r.create)
                    report.created += 1
                elif r.update is not None and r.item_id is not None:
                    _, changed = service.update_item(session, actor, r.item_id, r.update)
                    if changed:
                        report.updated += 1
                    else:
                        report.unchanged += 1
            except Invalid as exc:
                report.errors.append(CellError(r.row, "row", r.ref, exc.detail))
            if progress is not None:
                progress(done, len(rows))
    finally:
        if report.errors:
            report.created = report.updated = report.unchanged = 0
    report.applied = not report.errors
    return report


# --- export -----------------------------------------------------------------------------------


def _yn(value: bool) -> str:
    return "yes" if value else "no"


def export_rows(session: Session, viewer: Principal, s: Search) -> list[list[Any]]:
    if viewer.kind == "user":
        viewer.require(Permission.EQUIPMENT_READ)
    out: list[list[Any]] = []
    page = 1
    while True:
        result = service.search(session, viewer, s, page, 500)
        for item in result["items"]:
            sharing = item.sharing
            out.append(
                [
                    item.unit.code,
                    item.ref,
                    item.category,
                    item.model,
                    item.quantity,
                    " ".join(item.serial_numbers),
                    item.location_name,
                    item.latitude,
                    item.longitude,
                    item.weight_kg,
                    item.length_cm,
                    item.width_cm,
                    item.height_cm,
                    _yn(item.air_transportable),
                    _yn(item.needs_vehicle),
                    item.operator_training,
                    item.restrictions,
                    item.maintenance_due.isoformat() if item.maintenance_due else None,
                    item.status,
                    item.notes,
                    sharing.audience.value if sharing else None,
                    " ".join(sharing.countries) if sharing else None,
                    " ".join(sharing.units) if sharing else None,
                ]
            )
        if page >= result["pages"]:
            break
        page += 1
    return out


def export_csv(session: Session, viewer: Principal, s: Search) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    w.writerows(export_rows(session, viewer, s))
    return buf.getvalue().encode("utf-8")


def export_xlsx(session: Session, viewer: Principal, s: Search) -> bytes:
    wb = Workbook(write_only=True)
    sheet = wb.create_sheet(SHEET)
    sheet.append(list(COLUMNS))
    for row in export_rows(session, viewer, s):
        sheet.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
