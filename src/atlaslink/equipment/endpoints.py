"""The equipment pool's REST API under /api/v1/equipment (RFC 9457 errors, paginated lists)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from atlaslink.equipment import calendar, loans, schemas, service, spreadsheets
from atlaslink.equipment.places import PLACES
from atlaslink.registry.endpoints import PageNo, PerPage
from atlaslink.registry.schemas import Page
from atlaslink.registry.service import paginate
from atlaslink.web.deps import DB, ApiPrincipal

router = APIRouter(prefix="/equipment", tags=["equipment"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- categories and places ---------------------------------------------------------------------


@router.get("/categories", response_model=schemas.Categories)
def list_categories(db: DB, who: ApiPrincipal, include_retired: bool = False) -> Any:
    return service.categories(db, include_retired)


@router.post("/categories", response_model=schemas.Category, status_code=201)
def create_category(db: DB, who: ApiPrincipal, data: schemas.CategoryCreate) -> Any:
    return service._category_out(service.create_category(db, who, data))


@router.patch("/categories/{code}", response_model=schemas.Category)
def update_category(db: DB, who: ApiPrincipal, code: str, data: schemas.CategoryUpdate) -> Any:
    return service._category_out(service.update_category(db, who, code, data))


@router.get("/places", response_model=Page[schemas.Place])
def list_places(who: ApiPrincipal, page: PageNo = 1, per_page: PerPage = 50) -> Any:
    return paginate(list(PLACES.values()), page, per_page)


# --- loans (declared before /{item_id} routes) ---------------------------------------------------


@router.get("/loans", response_model=Page[schemas.Loan])
def list_loans(
    db: DB,
    who: ApiPrincipal,
    side: Annotated[str | None, Query(pattern="^(owner|borrower)$")] = None,
    status: Annotated[str | None, Query(description="a loan state, or 'open'")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    return loans.list_loans(db, who, side=side, status=status, page=page, per_page=per_page)


@router.get("/loans/{loan_id}", response_model=schemas.Loan)
def get_loan(db: DB, who: ApiPrincipal, loan_id: int) -> Any:
    return loans.get_loan(db, who, loan_id)


@router.post("/loans/{loan_id}/steps", response_model=schemas.Loan)
def loan_step(db: DB, who: ApiPrincipal, loan_id: int, data: schemas.LoanStep) -> Any:
    """Move the loan (approve = RESERVED, decline = DECLINED, ...); 409 names allowed moves."""
    loans.step(db, who, loan_id, data)
    return loans.get_loan(db, who, loan_id)


@router.post("/loans/{loan_id}/events/{event_id}/photos", status_code=201)
async def add_photo(
    db: DB, who: ApiPrincipal, loan_id: int, event_id: int, file: Annotated[UploadFile, File()]
) -> dict[str, int]:
    data = await file.read()
    photo = await run_in_threadpool(
        loans.add_photo,
        db,
        who,
        loan_id,
        event_id,
        (file.filename or "", file.content_type or "", data),
    )
    return {"id": photo.id, "size": photo.size}


@router.get("/photos/{photo_id}", response_class=Response)
def get_photo(db: DB, who: ApiPrincipal, photo_id: int) -> Response:
    photo = loans.get_photo(db, who, photo_id)
    return Response(photo.data, media_type=photo.content_type)


# --- calendars and feeds -----------------------------------------------------------------------


@router.get("/units/{unit_id}/calendar", response_model=calendar.UnitCalendar)
def unit_calendar(
    db: DB,
    who: ApiPrincipal,
    unit_id: int,
    start: datetime | None = None,
    days: Annotated[int, Query(ge=1, le=92)] = 28,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 25,
) -> Any:
    begin = start or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return calendar.unit_calendar(db, who, unit_id, begin, days, page, per_page)


@router.get("/units/{unit_id}/feeds", response_model=Page[schemas.Feed])
def list_feeds(
    db: DB, who: ApiPrincipal, unit_id: int, page: PageNo = 1, per_page: PerPage = 50
) -> Any:
    return paginate(list(calendar.list_feeds(db, who, unit_id)), page, per_page)


@router.post("/units/{unit_id}/feeds", response_model=schemas.Feed, status_code=201)
def create_feed(db: DB, who: ApiPrincipal, unit_id: int, data: schemas.FeedCreate) -> Any:
    """A secret iCalendar address for the unit's reservations; shown once."""
    return calendar.create_feed(db, who, unit_id, data.label)


@router.post("/feeds/{feed_id}/revoke", response_model=schemas.Feed)
def revoke_feed(db: DB, who: ApiPrincipal, feed_id: int) -> Any:
    return calendar.revoke_feed(db, who, feed_id)


@router.get(
    "/feed/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
def ical_feed(db: DB, token: str) -> Response:
    """The unit's reservations as iCalendar; the secret token in the address is the credential."""
    body = calendar.feed_ics(db, token)
    return Response(body, media_type="text/calendar; charset=utf-8")


# --- import and export -------------------------------------------------------------------------


@router.get(
    "/export", response_class=Response, responses={200: {"content": {"text/csv": {}, XLSX: {}}}}
)
def export(
    db: DB,
    who: ApiPrincipal,
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
    unit: str | None = None,
) -> Response:
    s = service.build_search(unit=unit, include_out_of_service=True, session=db)
    if format == "xlsx":
        return Response(
            spreadsheets.export_xlsx(db, who, s),
            media_type=XLSX,
            headers={"Content-Disposition": 'attachment; filename="atlaslink-equipment.xlsx"'},
        )
    return Response(
        spreadsheets.export_csv(db, who, s),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="atlaslink-equipment.csv"'},
    )


@router.post("/import", response_model=spreadsheets.ImportResult)
async def import_file(
    db: DB, who: ApiPrincipal, file: Annotated[UploadFile, File()], dry_run: bool = False
) -> Any:
    data = await file.read()
    report = await run_in_threadpool(
        spreadsheets.import_inventory, db, who, file.filename or "", data, dry_run=dry_run
    )
    result = report.result()
    if report.errors:
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


# --- items -------------------------------------------------------------------------------------


@router.get("", response_model=Page[schemas.Item])
def search(
    db: DB,
    who: ApiPrincipal,
    category: str | None = None,
    q: str | None = None,
    unit: Annotated[str | None, Query(description="owning unit's code")] = None,
    available_from: datetime | None = None,
    available_to: datetime | None = None,
    next_week: Annotated[bool, Query(description="available all of next week (Mon-Mon)")] = False,
    near: Annotated[str | None, Query(description="a named place (see /places)")] = None,
    latitude: Annotated[float | None, Query(ge=-90, le=90)] = None,
    longitude: Annotated[float | None, Query(ge=-180, le=180)] = None,
    max_km: Annotated[float | None, Query(gt=0)] = None,
    max_eta_hours: Annotated[float | None, Query(gt=0)] = None,
    air_transportable: bool | None = None,
    no_vehicle_needed: bool = False,
    max_weight_kg: Annotated[float | None, Query(ge=0)] = None,
    include_out_of_service: bool = False,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Search the pool: only items shared with the caller are found, listed or counted."""
    if next_week:
        available_from, available_to = next_week_window(datetime.now(UTC))
    s = service.build_search(
        category=category,
        q=q,
        unit=unit,
        available_from=available_from,
        available_to=available_to,
        near=near,
        latitude=latitude,
        longitude=longitude,
        max_km=max_km,
        max_eta_hours=max_eta_hours,
        air_transportable=air_transportable,
        no_vehicle_needed=no_vehicle_needed,
        max_weight_kg=max_weight_kg,
        include_out_of_service=include_out_of_service,
        session=db,
    )
    return service.search(db, who, s, page, per_page)


def next_week_window(now: datetime) -> tuple[datetime, datetime]:
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today + timedelta(days=7 - today.weekday())
    return monday, monday + timedelta(days=7)


@router.post("", response_model=schemas.Item, status_code=201)
def register(db: DB, who: ApiPrincipal, data: schemas.ItemCreate) -> Any:
    item = service.register_item(db, who, data)
    return service.get_item(db, who, item.id)


@router.get("/{item_id}", response_model=schemas.Item)
def get_item(db: DB, who: ApiPrincipal, item_id: int) -> Any:
    return service.get_item(db, who, item_id)


@router.patch("/{item_id}", response_model=schemas.Item)
def update_item(db: DB, who: ApiPrincipal, item_id: int, data: schemas.ItemUpdate) -> Any:
    service.update_item(db, who, item_id, data)
    return service.get_item(db, who, item_id)


@router.get("/{item_id}/calendar", response_model=Page[schemas.Period])
def item_calendar(
    db: DB,
    who: ApiPrincipal,
    item_id: int,
    start: datetime | None = None,
    days: Annotated[int, Query(ge=1, le=366)] = 56,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    """The item's bookings in the window, as the caller may see them, in time order."""
    begin = start or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    periods = service.item_periods(db, who, item_id, begin, begin + timedelta(days=days))
    return paginate(list(periods), page, per_page)


@router.post("/{item_id}/maintenance", response_model=schemas.Period, status_code=201)
def add_maintenance(
    db: DB, who: ApiPrincipal, item_id: int, data: schemas.MaintenanceCreate
) -> Any:
    r = service.add_maintenance(db, who, item_id, data)
    return schemas.Period(
        id=r.id, kind="maintenance", starts_at=r.starts_at, ends_at=r.ends_at, note=r.note
    )


@router.delete("/{item_id}/maintenance/{reservation_id}", status_code=204)
def remove_maintenance(db: DB, who: ApiPrincipal, item_id: int, reservation_id: int) -> Response:
    service.remove_maintenance(db, who, item_id, reservation_id)
    return Response(status_code=204)


@router.post("/{item_id}/loans", response_model=schemas.Loan, status_code=201)
def request_loan(db: DB, who: ApiPrincipal, item_id: int, data: schemas.LoanCreate) -> Any:
    """Ask the owning unit to lend the item; the period is held at once (409 if taken)."""
    loan = loans.request_loan(db, who, item_id, data)
    return loans.get_loan(db, who, loan.id)
