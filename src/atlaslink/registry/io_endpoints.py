"""Spreadsheet import and export over the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile
from pydantic import BaseModel

from atlaslink.registry import spreadsheets
from atlaslink.registry.endpoints import Filters
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(tags=["import/export"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportResult(BaseModel):
    rows: int
    created: int
    updated: int
    unchanged: int
    applied: bool
    errors: list[dict[str, Any]]


@router.get(
    "/export", response_class=Response, responses={200: {"content": {"text/csv": {}, XLSX: {}}}}
)
def export(
    db: DB,
    who: ApiPrincipal,
    f: Filters,
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
    table: spreadsheets.ExportTable = "capabilities",
) -> Response:
    if format == "xlsx":
        body = spreadsheets.export_xlsx(db, who, f)
        return Response(
            body,
            media_type=XLSX,
            headers={"Content-Disposition": 'attachment; filename="atlaslink-registry.xlsx"'},
        )
    body = spreadsheets.export_csv(db, who, f, table)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="atlaslink-{table}.csv"'},
    )


@router.post("/import", response_model=ImportResult)
async def import_file(
    db: DB,
    who: ApiPrincipal,
    file: Annotated[UploadFile, File(description="XLSX or CSV with the capability columns")],
    dry_run: bool = False,
) -> Any:
    from starlette.concurrency import run_in_threadpool

    data = await file.read()
    report = await run_in_threadpool(
        spreadsheets.import_registry, db, who, file.filename or "", data, dry_run=dry_run
    )
    result = ImportResult(
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        applied=report.applied,
        errors=[e.as_dict() for e in report.errors],
    )
    if report.errors:
        from fastapi.responses import JSONResponse

        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Import refused",
                "status": 422,
                "detail": f"{len(report.errors)} problem(s) in the file; nothing was applied.",
                **result.model_dump(),
            },
            status_code=422,
            media_type="application/problem+json",
        )
    return result
