"""Import and export of the registry as XLSX and CSV (the support office lives in spreadsheets).

Import is all or nothing: every row is validated first, errors are reported per row and cell,
and nothing is applied if any row fails. Applying the same file twice changes nothing.
Exports are built from the sharing module's output, so they hold only what the viewer may see.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from openpyxl import Workbook, load_workbook
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.errors import Invalid, TooLarge
from atlaslink.models import Country, Network
from atlaslink.registry import repository as repo
from atlaslink.registry import schemas, service
from atlaslink.registry.repository import UnitFilters
from atlaslink.sharing import redact
from atlaslink.sharing.policy import FieldGroup, load_agreements, visible_groups

CAPABILITY_COLUMNS = (
    "unit_code",
    "capability",
    "level",
    "package_size",
    "notice_to_move_hours",
    "self_sufficiency_hours",
    "may_deploy_abroad",
    "may_carry_arms_abroad",
    "may_carry_explosives_abroad",
    "last_validated",
    "validated_exercise",
)
EXPORT_ONLY = ("confirmed_on", "stale")
UNIT_COLUMNS = (
    "unit_code",
    "name",
    "country",
    "network",
    "base_location",
    "latitude",
    "longitude",
    "languages",
    "competent_authority",
)
# Exported as shared (a unit's contacts or transport assets only where the viewer may see
# them); changed on the unit's profile (the API's PATCH /units/{id}), not by import: an import
# reads the "units" and "capabilities" sheets and leaves these alone.
CONTACT_COLUMNS = ("unit_code", "kind", "label", "value")
TRANSPORT_COLUMNS = ("unit_code", "kind", "description", "quantity", "capacity_persons")
ExportTable = Literal["capabilities", "units", "contacts", "transport"]
TABLES: tuple[ExportTable, ...] = ("capabilities", "units", "contacts", "transport")
REQUIRED = {"unit_code", "capability", "level"}
UNIT_REQUIRED = {"unit_code", "name", "country", "base_location"}
TRUE = {"yes", "y", "true", "1", "x", "ja"}
FALSE = {"no", "n", "false", "0", "", "nee"}


@dataclass
class CellError:
    row: int
    column: str
    value: str
    message: str
    sheet: str = "capabilities"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "message": self.message,
        }


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    applied: bool = False
    errors: list[CellError] = field(default_factory=list)
    # Rows of other units' entries that say what the importer's export says (kept as they are;
    # counted as unchanged when the file is applied).
    foreign_unchanged: int = 0


# --- reading files --------------------------------------------------------------------------


def _rows_from_csv(data: bytes) -> Iterator[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("The CSV file is not UTF-8 text.") from None
    dialect: type[csv.Dialect] | csv.Dialect = csv.excel
    with contextlib.suppress(csv.Error):
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    yield from csv.reader(io.StringIO(text), dialect)


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


def _tables_from_xlsx(data: bytes) -> dict[str, Iterator[list[str]]]:
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise Invalid("The file is not a readable XLSX workbook.") from None
    named: dict[str, Any] = {n: wb[n] for n in wb.sheetnames if n in ("units", "capabilities")}
    sheets = named or {"": wb.worksheets[0]}
    return {
        name: ([_cell(v) for v in row] for row in sheet.iter_rows(values_only=True))
        for name, sheet in sheets.items()
    }


def read_tables(filename: str, data: bytes) -> dict[str, list[list[str]]]:
    """The file's tables by kind ("units", "capabilities"), each with its header row first."""
    limit = get_settings().max_import_rows
    name = filename.lower()
    if name.endswith(".xlsx"):
        sources = _tables_from_xlsx(data)
    elif name.endswith(".csv") or name.endswith(".txt"):
        sources = {"": _rows_from_csv(data)}
    else:
        raise Invalid("Upload a .xlsx or .csv file.")
    tables: dict[str, list[list[str]]] = {}
    total = 0
    for sheet, source in sources.items():
        rows: list[list[str]] = []
        for row in source:
            if any(c.strip() for c in row):
                rows.append([c.strip() for c in row])
                total += 1
            if total > limit + len(sources):
                raise TooLarge(f"The file has more than {limit} rows; split it.")
        if not rows:
            continue
        header = {h.lower() for h in rows[0]}
        kind = sheet or (
            "capabilities"
            if "capability" in header
            else "units"
            if "name" in header
            else "capabilities"
        )
        tables[kind] = rows
    if not tables:
        raise Invalid("The file is empty.")
    return tables


# --- validation and applying ----------------------------------------------------------------


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    return None


def _header(
    table: list[list[str]],
    sheet: str,
    columns: tuple[str, ...],
    required: set[str],
    report: ImportReport,
) -> dict[str, int] | None:
    header = [h.strip().lower() for h in table[0]]
    missing = [c for c in columns if c in required and c not in header]
    unknown = [h for h in header if h and h not in columns and h not in EXPORT_ONLY]
    for c in missing:
        report.errors.append(CellError(1, c, "", "required column is missing", sheet))
    for c in unknown:
        report.errors.append(CellError(1, c, c, "unknown column", sheet))
    if missing or unknown:
        return None
    return {h: i for i, h in enumerate(header) if h}


@dataclass
class _UnitRow:
    row: int
    code: str
    create: schemas.UnitCreate | None = None
    update: schemas.UnitUpdate | None = None
    unit_id: int | None = None


def _validate_units(
    session: Session, actor: Principal, table: list[list[str]], report: ImportReport
) -> list[_UnitRow]:
    index = _header(table, "units", UNIT_COLUMNS, UNIT_REQUIRED, report)
    if index is None:
        return []
    out: list[_UnitRow] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(table[1:], start=2):
        cells = {c: (raw[i] if i < len(raw) else "") for c, i in index.items()}
        errs: list[CellError] = []
        code = cells.get("unit_code", "").upper()
        if code in seen:
            errs.append(CellError(n, "unit_code", code, f"duplicate of row {seen[code]}", "units"))
        seen.setdefault(code, n)
        values: dict[str, Any] = {
            "name": cells.get("name", ""),
            "base_location": cells.get("base_location", ""),
            "languages": cells.get("languages", "").replace(",", " ").split(),
            "competent_authority": cells.get("competent_authority", ""),
        }
        for col in ("latitude", "longitude"):
            value = cells.get(col, "")
            try:
                values[col] = float(value) if value else None
            except ValueError:
                errs.append(CellError(n, col, value, "write a decimal number", "units"))
        flagged = {e.column for e in errs}
        existing = repo.unit_by_code(session, code) if code else None
        item = _UnitRow(n, code, unit_id=existing.id if existing else None)
        try:
            if existing is None:
                item.create = schemas.UnitCreate(
                    code=code,
                    country=cells.get("country", "").upper(),
                    network=cells.get("network", "") or "ATLAS",
                    **{k: v for k, v in values.items() if k not in flagged},
                )
            else:
                item.update = schemas.UnitUpdate(
                    **{k: v for k, v in values.items() if k not in flagged}
                )
        except ValidationError as exc:
            for e in exc.errors():
                col = str(e["loc"][0]) if e["loc"] else "row"
                col = "unit_code" if col == "code" else col
                if col not in flagged:
                    errs.append(CellError(n, col, cells.get(col, ""), e["msg"], "units"))
        if existing is None and not actor.can(Permission.NETWORK_MANAGE):
            errs.append(CellError(n, "unit_code", code, "no unit has this code", "units"))
        elif existing is not None and item.update is not None:
            if cells.get("country", existing.country_iso2).upper() != existing.country_iso2:
                errs.append(
                    CellError(
                        n, "country", cells["country"], "a unit's country cannot change", "units"
                    )
                )
            current = {
                "name": existing.name,
                "base_location": existing.base_location,
                "latitude": existing.latitude,
                "longitude": existing.longitude,
                "languages": list(existing.languages or []),
                "competent_authority": existing.competent_authority,
            }
            if item.update.model_dump(exclude_none=False, include=set(current)) == current:
                item.update = None  # nothing to change
            elif actor.unit_id != existing.id or not actor.can(Permission.UNITS_EDIT_OWN):
                errs.append(
                    CellError(
                        n, "unit_code", code, "only the unit itself may change its profile", "units"
                    )
                )
        if existing is None and item.create is not None:
            if session.get(Country, item.create.country) is None:
                errs.append(
                    CellError(n, "country", item.create.country, "not a member country", "units")
                )
            if (
                session.scalar(select(Network.id).where(Network.code == item.create.network))
                is None
            ):
                errs.append(
                    CellError(n, "network", item.create.network, "no such network", "units")
                )
        report.errors.extend(errs)
        if not errs:
            out.append(item)
    return out


def _validate_capabilities(
    session: Session,
    actor: Principal,
    table: list[list[str]],
    report: ImportReport,
    new_units: set[str],
) -> list[tuple[str, str, schemas.CapabilityWrite]]:
    index = _header(table, "capabilities", CAPABILITY_COLUMNS, REQUIRED, report)
    if index is None:
        return []
    types = {t.code for t in repo.current_types(session)}
    units: dict[str, int | None] = {}
    seen: dict[tuple[str, str], int] = {}
    views: dict[int, dict[str, schemas.Capability]] = {}
    valid: list[tuple[str, str, schemas.CapabilityWrite]] = []
    for n, raw in enumerate(table[1:], start=2):
        cells = {c: (raw[i] if i < len(raw) else "") for c, i in index.items()}
        errs: list[CellError] = []
        code = cells.get("unit_code", "").upper()
        if code not in units:
            u = repo.unit_by_code(session, code) if code else None
            units[code] = u.id if u else None
        unit_id = units[code]
        if not code:
            errs.append(CellError(n, "unit_code", "", "required"))
        elif unit_id is None and code not in new_units:
            errs.append(CellError(n, "unit_code", code, "no unit has this code"))
        elif unit_id is None and not actor.can(Permission.NETWORK_MANAGE):
            errs.append(CellError(n, "unit_code", code, "you may import only your own unit's rows"))
        # As on the API, only the unit itself changes its entries. The support office creates
        # units (and gives a unit it creates in the same file its first entries), but another
        # unit's entries hold values the importer may not see: writing them would overwrite
        # what its export left blank, and "updated" or "unchanged" would tell what it may not
        # see. Such a row is accepted only as it is in the importer's own export (so a whole
        # exported workbook can be imported again): compared with that, never with the stored
        # entry.
        foreign = unit_id is not None and unit_id != actor.unit_id and actor.kind != "system"
        cap = cells.get("capability", "").strip().lower()
        if cap not in types:
            errs.append(CellError(n, "capability", cap, "not a current capability type"))
        key = (code, cap)
        if key in seen:
            errs.append(CellError(n, "capability", cap, f"duplicate of row {seen[key]}"))
        seen.setdefault(key, n)
        values: dict[str, Any] = {}
        for col in CAPABILITY_COLUMNS[2:]:
            if col not in cells:
                continue
            value = cells[col]
            if col.startswith("may_"):
                b = _bool(value)
                if b is None:
                    errs.append(CellError(n, col, value, "write yes or no"))
                values[col] = bool(b)
            elif col == "last_validated":
                if value:
                    try:
                        values[col] = date.fromisoformat(value[:10])
                    except ValueError:
                        errs.append(CellError(n, col, value, "write a date as YYYY-MM-DD"))
            elif col == "validated_exercise":
                values[col] = value or None
            elif value:
                try:
                    values[col] = int(value)
                except ValueError:
                    errs.append(CellError(n, col, value, "write a whole number"))
            elif col == "level" and not foreign:
                errs.append(CellError(n, col, "", "required"))
        if foreign:
            assert unit_id is not None
            if not errs and _as_exported(session, actor, unit_id, cap, views, values, cells):
                report.foreign_unchanged += 1
            elif not any(e.column == "unit_code" for e in errs):
                errs.append(
                    CellError(
                        n,
                        "unit_code",
                        code,
                        "only the unit itself may change its capabilities (this row differs "
                        "from what the unit shares with you)",
                    )
                )
            report.errors.extend(errs)
            continue
        # Check value ranges even when other cells failed, so one pass names every bad cell.
        flagged = {e.column for e in errs}
        try:
            write = schemas.CapabilityWrite(**values)
        except ValidationError as exc:
            for e in exc.errors():
                col = str(e["loc"][0]) if e["loc"] else "row"
                if col not in flagged:
                    errs.append(CellError(n, col, cells.get(col, ""), e["msg"]))
        else:
            if not errs:
                valid.append((code, cap, write))
        report.errors.extend(errs)
    return valid


def _as_exported(
    session: Session,
    actor: Principal,
    unit_id: int,
    cap: str,
    views: dict[int, dict[str, schemas.Capability]],
    values: dict[str, Any],
    cells: dict[str, str],
) -> bool:
    """Whether a row of another unit's entry says what the importer's export of it says, in
    every column the file has (a field the importer may not see is blank there)."""
    if unit_id not in views:
        # The entries as redacted for the importer, built without noting a read: nothing of
        # them is shown, and the comparison's outcome says only what the importer may see.
        groups = visible_groups(actor, load_agreements(session, [unit_id])[unit_id])
        views[unit_id] = (
            {
                t.code: redact.capability(e, t, groups, date.min)
                for e, t in repo.entries_of(session, [unit_id])[unit_id]
            }
            if FieldGroup.EXISTENCE in groups
            else {}
        )
    shown = views[unit_id].get(cap)
    if shown is None:
        return False
    for col in CAPABILITY_COLUMNS[2:]:
        if col not in cells:
            continue
        expected = getattr(shown, col)
        if col.startswith("may_"):
            expected = bool(expected)  # exported as yes/no
        if values.get(col) != expected:
            return False
    return True


def import_registry(
    session: Session,
    actor: Principal,
    filename: str,
    data: bytes,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import units and capability rows: every row is checked first; all or nothing."""
    actor.require(Permission.REGISTRY_IMPORT)
    tables = read_tables(filename, data)
    report = ImportReport(rows=sum(len(t) - 1 for t in tables.values()))
    unit_rows = (
        _validate_units(session, actor, tables["units"], report) if "units" in tables else []
    )
    new_units = {u.code for u in unit_rows if u.create is not None}
    cap_rows = (
        _validate_capabilities(session, actor, tables["capabilities"], report, new_units)
        if "capabilities" in tables
        else []
    )
    if report.errors or dry_run:
        return report
    total = len(unit_rows) + len(cap_rows)
    done = 0
    for u in unit_rows:
        if u.create is not None:
            service.create_unit(session, actor, u.create)
            report.created += 1
        elif u.update is not None and u.unit_id is not None:
            service.update_unit(session, actor, u.unit_id, u.update)
            report.updated += 1
        else:
            report.unchanged += 1
        done += 1
        if progress is not None:
            progress(done, total)
    ids: dict[str, int] = {}
    for code, cap, write in cap_rows:
        if code not in ids:
            unit = repo.unit_by_code(session, code)
            assert unit is not None  # validated above
            ids[code] = unit.id
        _, outcome = service.put_capability(
            session, actor, ids[code], cap, write, require_own=False
        )
        setattr(report, outcome, getattr(report, outcome) + 1)
        done += 1
        if progress is not None:
            progress(done, total)
    report.unchanged += report.foreign_unchanged
    report.applied = True
    return report


# --- export ---------------------------------------------------------------------------------


def _yn(value: bool) -> str:
    return "yes" if value else "no"


def export_rows(session: Session, viewer: Principal, f: UnitFilters) -> dict[str, list[list[Any]]]:
    """The rows of each table (:data:`TABLES`) as the viewer may see them."""
    viewer.require(Permission.REGISTRY_EXPORT)
    unit_rows: list[list[Any]] = []
    cap_rows: list[list[Any]] = []
    contact_rows: list[list[Any]] = []
    transport_rows: list[list[Any]] = []
    offset = 0
    while True:
        # The page's ids honour the viewer's filters; unit_details applies the sharing rules.
        rows, total = repo.units_page(session, viewer, f, offset, 500)
        details = service.unit_details(session, viewer, [row.id for row, _ in rows])
        for u in details:
            unit_rows.append(
                [
                    u.code,
                    u.name,
                    u.country,
                    u.network,
                    u.base_location,
                    u.latitude,
                    u.longitude,
                    " ".join(u.languages),
                    u.competent_authority,
                ]
            )
        for d in details:
            contact_rows.extend([d.code, c.kind, c.label, c.value] for c in d.contacts or [])
            transport_rows.extend(
                [d.code, t.kind, t.description, t.quantity, t.capacity_persons]
                for t in d.transport or []
            )
            for c in d.capabilities:
                cap_rows.append(
                    [
                        d.code,
                        c.type_code,
                        c.level,
                        c.package_size,
                        c.notice_to_move_hours,
                        c.self_sufficiency_hours,
                        _yn(c.may_deploy_abroad),
                        _yn(c.may_carry_arms_abroad),
                        _yn(c.may_carry_explosives_abroad),
                        c.last_validated.isoformat() if c.last_validated else None,
                        c.validated_exercise,
                        c.confirmed_on.isoformat(),
                        _yn(c.stale),
                    ]
                )
        offset += 500
        if offset >= total:
            break
    return {
        "capabilities": cap_rows,
        "units": unit_rows,
        "contacts": contact_rows,
        "transport": transport_rows,
    }


_HEADERS: dict[str, tuple[str, ...]] = {
    "capabilities": CAPABILITY_COLUMNS + EXPORT_ONLY,
    "units": UNIT_COLUMNS,
    "contacts": CONTACT_COLUMNS,
    "transport": TRANSPORT_COLUMNS,
}


def export_csv(
    session: Session, viewer: Principal, f: UnitFilters, table: str = "capabilities"
) -> bytes:
    """One table (:data:`TABLES`) as CSV."""
    if table not in _HEADERS:
        raise Invalid(f"There is no table {table!r}: choose one of {', '.join(TABLES)}.")
    rows = export_rows(session, viewer, f)[table]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(_HEADERS[table])
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def export_xlsx(session: Session, viewer: Principal, f: UnitFilters) -> bytes:
    """Every table, a sheet each (an import reads "units" and "capabilities")."""
    tables = export_rows(session, viewer, f)
    wb = Workbook(write_only=True)
    for name in TABLES:
        sheet = wb.create_sheet(name)
        sheet.append(list(_HEADERS[name]))
        for row in tables[name]:
            sheet.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
