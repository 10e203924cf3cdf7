"""Audit and spreadsheet import/export pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from atlaslink.audit.policy import AuditFilters, readable
from atlaslink.errors import DomainError
from atlaslink.registry import spreadsheets
from atlaslink.registry.io_endpoints import XLSX
from atlaslink.registry.repository import UnitFilters
from atlaslink.web.deps import DB, Page
from atlaslink.web.forms import check_csrf
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    page: Page,
    db: DB,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    f = AuditFilters(action=action or None, actor=actor or None, object_type=object_type or None)
    return render(request, "audit.html", log=readable(db, page.principal, f, p, 50), f=f)


@router.get("/registry/transfer", response_class=HTMLResponse)
def transfer_page(request: Request, page: Page) -> Response:
    return render(request, "transfer.html", report=None, errors=[])


@router.get("/registry/export.{fmt}")
def export(
    page: Page,
    db: DB,
    fmt: str,
    table: spreadsheets.ExportTable = "capabilities",
) -> Response:
    if fmt == "xlsx":
        body = spreadsheets.export_xlsx(db, page.principal, UnitFilters())
        return Response(
            body,
            media_type=XLSX,
            headers={"Content-Disposition": 'attachment; filename="atlaslink-registry.xlsx"'},
        )
    if fmt == "csv":
        body = spreadsheets.export_csv(db, page.principal, UnitFilters(), table)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="atlaslink-{table}.csv"'},
        )
    return Response(status_code=404)


@router.post("/registry/import", response_class=HTMLResponse)
async def import_submit(
    request: Request,
    page: Page,
    db: DB,
    file: Annotated[UploadFile, File()],
    csrf_token: Annotated[str, Form()] = "",
    dry_run: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    data = await file.read()
    try:
        report = await run_in_threadpool(
            spreadsheets.import_registry,
            db,
            page.principal,
            file.filename or "",
            data,
            dry_run=bool(dry_run),
        )
    except DomainError as exc:
        return render(
            request, "transfer.html", exc.status, report=None, errors=[{"message": exc.detail}]
        )
    status = 422 if report.errors else 200
    return render(
        request,
        "transfer.html",
        status,
        report=report,
        errors=[e.as_dict() for e in report.errors],
        dry_run=bool(dry_run),
    )
