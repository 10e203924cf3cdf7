"""``atlaslink equipment …``: the inventory from the command line, as a given user sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from atlaslink.audit import service as audit
from atlaslink.cli import (
    AsUser,
    _acting,
    equipment_app,
    err,
    fail,
    handled,
    import_rows,
    out,
)
from atlaslink.db import unit_of_work


@equipment_app.command("list")
def list_items(
    as_user: AsUser,
    category: Annotated[
        str | None, typer.Option(help="A category code (counter_drone, …).")
    ] = None,
    unit: Annotated[str | None, typer.Option(help="Owning unit's code.")] = None,
    near: Annotated[str | None, typer.Option(help="A named place (vienna, …).")] = None,
    max_km: Annotated[float | None, typer.Option(help="Within this distance of --near.")] = None,
    free_from: Annotated[str | None, typer.Option(help="Free from (YYYY-MM-DD, UTC).")] = None,
    free_to: Annotated[str | None, typer.Option(help="Free until (YYYY-MM-DD, UTC).")] = None,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """Search the pool: only what this user may see is listed or counted."""
    from datetime import UTC, datetime

    from atlaslink.equipment import service

    def day(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v).replace(tzinfo=UTC) if v else None

    with handled(), audit.read_ledger() as ledger, unit_of_work() as session:
        actor = _acting(session, as_user)
        ledger.actor = actor
        s = service.build_search(
            category=category,
            unit=unit,
            near=near,
            max_km=max_km,
            available_from=day(free_from),
            available_to=day(free_to),
            session=session,
        )
        result = service.search(session, actor, s, page, per_page)
        audit.flush_reads(session, ledger)
    table = Table(
        title=f"equipment visible to {as_user} (page {result['page']} of {result['pages']}, "
        f"{result['total']} in all)"
    )
    for col in ("id", "unit", "ref", "category", "model", "qty", "km", "road h"):
        table.add_column(col)
    for i in result["items"]:
        table.add_row(
            str(i.id),
            i.unit.code,
            i.ref,
            i.category,
            i.model,
            str(i.quantity),
            "-" if i.distance_km is None else f"{i.distance_km:.0f}",
            "-" if i.eta_hours is None else f"{i.eta_hours:.1f}",
        )
    out.print(table)


@equipment_app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_user: AsUser,
    dry_run: Annotated[bool, typer.Option(help="Validate only.")] = False,
) -> None:
    """Import inventory rows from XLSX or CSV: all rows or none; the same file twice is a no-op."""
    from atlaslink.equipment import spreadsheets

    import_rows(spreadsheets.import_inventory, path, as_user, dry_run)


@equipment_app.command("export")
def export(
    path: Annotated[Path, typer.Argument(dir_okay=False, help="Output .xlsx or .csv file.")],
    as_user: AsUser,
    unit: Annotated[str | None, typer.Option(help="Only this unit's items.")] = None,
) -> None:
    """Export the inventory as the given user may see it."""
    from atlaslink.equipment import service, spreadsheets

    suffix = path.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise fail("the output file must end in .xlsx or .csv")
    with handled(), audit.read_ledger() as ledger, unit_of_work() as session:
        actor = _acting(session, as_user)
        ledger.actor = actor
        s = service.build_search(unit=unit, include_out_of_service=True, session=session)
        with err.status("exporting"):
            if suffix == ".xlsx":
                body = spreadsheets.export_xlsx(session, actor, s)
            else:
                body = spreadsheets.export_csv(session, actor, s)
        audit.flush_reads(session, ledger, action="export")
    path.write_bytes(body)
    out.print(f"wrote {path} ({len(body)} bytes)")
