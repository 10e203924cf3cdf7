"""Equipment pool pages: search and inventory, item (with its calendar), register and edit,
loans and their steps, the unit calendar with its iCalendar feeds, import and export.

Pages call the same services as the API; what a viewer may see is decided there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from atlaslink.auth.permissions import Permission
from atlaslink.equipment import calendar, loans, schemas, service, spreadsheets
from atlaslink.equipment.endpoints import XLSX, next_week_window
from atlaslink.equipment.places import PLACES
from atlaslink.equipment.states import ACTION_LABELS, CONDITIONS, HANDOVERS, LABELS, PURPOSES
from atlaslink.errors import DomainError, Invalid
from atlaslink.models import Unit
from atlaslink.sharing.policy import AUDIENCE_LABELS, Audience
from atlaslink.web.deps import DB, Page
from atlaslink.web.forms import check_csrf, redirect
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)
CALENDAR_DAYS = 28


def _when(value: str, what: str) -> datetime | None:
    """A ``date`` or ``datetime-local`` field, read as UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{what}: write a date as YYYY-MM-DD (and a time as HH:MM).") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _float(value: str, what: str) -> float | None:
    value = value.strip().replace(",", ".")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise Invalid(f"{what}: write a number.") from None


def _context() -> dict[str, Any]:
    return {
        "places": list(PLACES.values()),
        "LABELS": LABELS,
        "ACTION_LABELS": ACTION_LABELS,
        "PURPOSES": PURPOSES,
        "CONDITIONS": CONDITIONS,
        "HANDOVERS": [s.value for s in HANDOVERS],
        "EQ_AUDIENCES": [(a.value, AUDIENCE_LABELS[a]) for a in Audience],
    }


def _day(start: datetime) -> datetime:
    return start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# --- search and inventory ---------------------------------------------------------------------


@router.get("/equipment", response_class=HTMLResponse)
def search_page(
    request: Request,
    page: Page,
    db: DB,
    category: str = "",
    q: str = "",
    unit: str = "",
    near: str = "",
    latitude: str = "",
    longitude: str = "",
    max_km: str = "",
    max_eta_hours: str = "",
    available_from: str = "",
    available_to: str = "",
    next_week: str = "",
    air_transportable: str = "",
    no_vehicle_needed: str = "",
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    page.principal.require(Permission.EQUIPMENT_READ)
    own = db.get(Unit, page.principal.unit_id) if page.principal.unit_id else None
    form = dict(request.query_params)
    errors: list[dict[str, Any]] = []
    result: dict[str, Any] | None = None
    try:
        start = _when(available_from, "Available from")
        end = _when(available_to, "Available until")
        if next_week:
            start, end = next_week_window(datetime.now(UTC))
            form["available_from"] = start.date().isoformat()
            form["available_to"] = end.date().isoformat()
        s = service.build_search(
            category=category or None,
            q=q or None,
            unit=unit or None,
            near=near or None,
            latitude=_float(latitude, "Latitude"),
            longitude=_float(longitude, "Longitude"),
            max_km=_float(max_km, "Within (km)"),
            max_eta_hours=_float(max_eta_hours, "Road time (hours)"),
            available_from=start,
            available_to=end,
            air_transportable=True if air_transportable else None,
            no_vehicle_needed=bool(no_vehicle_needed),
            # One's own inventory lists items in repair or retired too.
            include_out_of_service=own is not None and unit.strip().upper() == own.code,
            session=db,
        )
        result = service.search(db, page.principal, s, p, 25)
    except DomainError as exc:
        errors = [{"message": exc.detail}]
    return render(
        request,
        "equipment_search.html",
        own_code=own.code if own else None,
        result=result,
        form=form,
        errors=errors,
        categories=service.categories(db).categories,
        **_context(),
    )


# --- register and edit ------------------------------------------------------------------------


def _item_form(form: dict[str, str]) -> dict[str, Any]:
    """Form fields → the keys of ItemCreate/ItemUpdate."""
    data: dict[str, Any] = {
        "model": form.get("model", "").strip(),
        "quantity": int(_float(form.get("quantity", ""), "Quantity") or 1),
        "serial_numbers": form.get("serial_numbers", "").replace(",", " ").split(),
        "location_name": form.get("location_name", "").strip(),
        "latitude": _float(form.get("latitude", ""), "Latitude"),
        "longitude": _float(form.get("longitude", ""), "Longitude"),
        "weight_kg": _float(form.get("weight_kg", ""), "Weight"),
        "air_transportable": bool(form.get("air_transportable")),
        "needs_vehicle": bool(form.get("needs_vehicle")),
        "operator_training": form.get("operator_training", "").strip(),
        "restrictions": form.get("restrictions", "").strip(),
        "notes": form.get("notes", "").strip(),
        "maintenance_due": form.get("maintenance_due") or None,
    }
    for dim in ("length_cm", "width_cm", "height_cm"):
        v = _float(form.get(dim, ""), dim)
        data[dim] = int(v) if v is not None else None
    data["sharing"] = {
        "audience": form.get("audience", "own_unit"),
        "countries": form.get("share_countries", "").replace(",", " ").split(),
        "units": form.get("share_units", "").replace(",", " ").split(),
    }
    return data


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(x) for x in e["loc"]) or "form", "message": e["msg"]}
        for e in exc.errors()
    ]


def _form_page(
    request: Request,
    db: Session,
    item: schemas.Item | None,
    *,
    form: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
) -> Response:
    """The register / edit form of an item (``item`` None for a new one), with what was typed
    and the problems found when it is shown again."""
    return render(
        request,
        "equipment_form.html",
        status,
        item=item,
        form=form or {},
        errors=errors or [],
        categories=service.categories(db).categories,
        **_context(),
    )


@router.get("/equipment/new", response_class=HTMLResponse)
def new_item(request: Request, page: Page, db: DB) -> Response:
    page.principal.require(Permission.EQUIPMENT_EDIT_OWN)
    return _form_page(request, db, None)


@router.post("/equipment/new")
async def new_item_submit(request: Request, page: Page, db: DB) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(page, form.get("csrf_token", ""))
    try:
        data = schemas.ItemCreate(
            ref=form.get("ref", "").strip(), category=form.get("category", ""), **_item_form(form)
        )
        item = service.register_item(db, page.principal, data)
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except DomainError as exc:
        errors = [{"message": exc.detail}, *exc.errors]
    else:
        return redirect(f"/equipment/{item.id}?saved=Registered")
    return _form_page(request, db, None, form=form, errors=errors, status=422)


# --- loans ------------------------------------------------------------------------------------


@router.get("/equipment/loans", response_class=HTMLResponse)
def loans_page(
    request: Request,
    page: Page,
    db: DB,
    side: Annotated[str, Query(pattern="^(|owner|borrower)$")] = "",
    status: str = "",
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    page.principal.require(Permission.EQUIPMENT_READ)
    result = loans.list_loans(
        db, page.principal, side=side or None, status=status or None, page=p, per_page=25
    )
    return render(
        request,
        "equipment_loans.html",
        result=result,
        side=side,
        loan_status=status,
        flash=request.query_params.get("saved"),
        **_context(),
    )


@router.get("/equipment/loans/{loan_id}", response_class=HTMLResponse)
def loan_page(request: Request, loan_id: int, page: Page, db: DB) -> Response:
    loan = loans.get_loan(db, page.principal, loan_id)
    return render(
        request,
        "equipment_loan.html",
        loan=loan,
        flash=request.query_params.get("saved"),
        errors=[],
        **_context(),
    )


@router.post("/equipment/loans/{loan_id}/step")
async def loan_step(
    request: Request,
    loan_id: int,
    page: Page,
    db: DB,
    to: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    condition: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
    signed_owner: Annotated[str, Form()] = "",
    signed_borrower: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
    photo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    check_csrf(page, csrf_token)
    upload = None
    if photo is not None and photo.filename:
        upload = (photo.filename, photo.content_type or "", await photo.read())
    try:
        data = schemas.LoanStep(
            to=to,
            condition=condition,
            notes=notes,
            signed_owner=signed_owner,
            signed_borrower=signed_borrower,
            reason=reason,
        )
        await run_in_threadpool(loans.step, db, page.principal, loan_id, data, photo=upload)
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except DomainError as exc:
        if exc.status in (404, 403):
            raise
        errors = [{"message": exc.detail}]
    else:
        return redirect(f"/equipment/loans/{loan_id}?saved={LABELS[to].replace(' ', '+')}")  # type: ignore[index]
    loan = loans.get_loan(db, page.principal, loan_id)
    return render(request, "equipment_loan.html", 409, loan=loan, errors=errors, **_context())


@router.get("/equipment/photos/{photo_id}")
def photo(photo_id: int, page: Page, db: DB) -> Response:
    found = loans.get_photo(db, page.principal, photo_id)
    return Response(found.data, media_type=found.content_type)


# --- the unit calendar and its feeds ----------------------------------------------------------


@router.get("/equipment/calendar", response_class=HTMLResponse)
def unit_calendar_page(
    request: Request,
    page: Page,
    db: DB,
    unit: int | None = None,
    start: str = "",
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    page.principal.require(Permission.EQUIPMENT_READ)
    unit_id = unit or page.principal.unit_id
    if unit_id is None:
        raise Invalid("Choose a unit: /equipment/calendar?unit=ID.")
    begin = _day(_when(start, "Start") or datetime.now(UTC))
    cal = calendar.unit_calendar(db, page.principal, unit_id, begin, CALENDAR_DAYS, p, 20)
    feeds = (
        calendar.list_feeds(db, page.principal, unit_id)
        if page.principal.unit_id == unit_id and page.principal.can(Permission.EQUIPMENT_EDIT_OWN)
        else None
    )
    return render(
        request,
        "equipment_calendar.html",
        cal=cal,
        feeds=feeds,
        new_feed=None,
        prev_start=(begin - timedelta(days=CALENDAR_DAYS)).date().isoformat(),
        next_start=(begin + timedelta(days=CALENDAR_DAYS)).date().isoformat(),
        flash=request.query_params.get("saved"),
        **_context(),
    )


@router.post("/equipment/feeds")
def create_feed(
    request: Request,
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    label: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    unit_id = page.principal.unit_id
    if unit_id is None:
        raise Invalid("Only a unit has a calendar feed.")
    new = calendar.create_feed(db, page.principal, unit_id, label.strip()[:200])
    begin = _day(datetime.now(UTC))
    cal = calendar.unit_calendar(db, page.principal, unit_id, begin, CALENDAR_DAYS, 1, 20)
    return render(
        request,
        "equipment_calendar.html",
        cal=cal,
        feeds=calendar.list_feeds(db, page.principal, unit_id),
        new_feed=new,
        prev_start=(begin - timedelta(days=CALENDAR_DAYS)).date().isoformat(),
        next_start=(begin + timedelta(days=CALENDAR_DAYS)).date().isoformat(),
        flash="The feed's address is shown once: copy it now.",
        **_context(),
    )


@router.post("/equipment/feeds/{feed_id}/revoke")
def revoke_feed(
    feed_id: int, page: Page, db: DB, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(page, csrf_token)
    calendar.revoke_feed(db, page.principal, feed_id)
    return redirect("/equipment/calendar?saved=Feed+revoked")


# --- categories (the support office edits them as data) -------------------------------------


@router.get("/equipment/categories", response_class=HTMLResponse)
def categories_page(request: Request, page: Page, db: DB) -> Response:
    page.principal.require(Permission.EQUIPMENT_READ)
    return render(
        request,
        "equipment_categories.html",
        cats=service.categories(db, include_retired=True),
        flash=request.query_params.get("saved"),
        errors=[],
    )


@router.post("/equipment/categories")
def categories_add(
    request: Request,
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        service.create_category(
            db,
            page.principal,
            schemas.CategoryCreate(code=code.strip(), name=name.strip(), description=description),
        )
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except DomainError as exc:
        if exc.status == 403:
            raise
        errors = [{"message": exc.detail}]
    else:
        return redirect("/equipment/categories?saved=Category+added")
    return render(
        request,
        "equipment_categories.html",
        422,
        cats=service.categories(db, include_retired=True),
        errors=errors,
    )


@router.post("/equipment/categories/{code}/retire")
def categories_retire(
    code: str,
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    retired: Annotated[str, Form()] = "1",
) -> Response:
    check_csrf(page, csrf_token)
    service.update_category(
        db, page.principal, code, schemas.CategoryUpdate(retired=retired == "1")
    )
    return redirect("/equipment/categories?saved=Saved")


# --- import and export ------------------------------------------------------------------------


@router.get("/equipment/transfer", response_class=HTMLResponse)
def transfer(request: Request, page: Page) -> Response:
    page.principal.require(Permission.EQUIPMENT_READ)
    return render(request, "equipment_transfer.html", report=None, errors=[], dry_run=False)


@router.get("/equipment/export.{fmt}")
def export(fmt: str, page: Page, db: DB) -> Response:
    s = service.build_search(include_out_of_service=True)
    if fmt == "xlsx":
        return Response(
            spreadsheets.export_xlsx(db, page.principal, s),
            media_type=XLSX,
            headers={"Content-Disposition": 'attachment; filename="atlaslink-equipment.xlsx"'},
        )
    if fmt == "csv":
        return Response(
            spreadsheets.export_csv(db, page.principal, s),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="atlaslink-equipment.csv"'},
        )
    raise Invalid("Export as .csv or .xlsx.")


@router.post("/equipment/import", response_class=HTMLResponse)
async def import_file(
    request: Request,
    page: Page,
    db: DB,
    file: Annotated[UploadFile, File()],
    csrf_token: Annotated[str, Form()] = "",
    dry_run: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    data = await file.read()
    report = await run_in_threadpool(
        spreadsheets.import_inventory,
        db,
        page.principal,
        file.filename or "",
        data,
        dry_run=bool(dry_run),
    )
    errors = [e.as_dict() for e in report.errors]
    return render(
        request,
        "equipment_transfer.html",
        422 if errors else 200,
        report=report,
        errors=errors,
        dry_run=bool(dry_run),
    )


# --- one item (last: /equipment/{id} must not shadow the paths above) --------------------------


def _item_page(
    request: Request,
    db: DB,
    page: Page,
    item_id: int,
    start: datetime,
    *,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    item = service.get_item(db, page.principal, item_id)
    periods = service.item_periods(
        db, page.principal, item_id, start, start + timedelta(days=CALENDAR_DAYS)
    )
    days = calendar.day_states(periods, start, CALENDAR_DAYS)
    weeks = [
        [(start + timedelta(days=w * 7 + d), days[w * 7 + d]) for d in range(7)]
        for w in range(CALENDAR_DAYS // 7)
    ]
    history = service.loans_of_item(db, item_id)[:20] if "edit" in item.actions else []
    return render(
        request,
        "equipment_item.html",
        status,
        item=item,
        periods=periods,
        weeks=weeks,
        history=history,
        errors=errors or [],
        form=form or {},
        start=start,
        prev_start=(start - timedelta(days=CALENDAR_DAYS)).date().isoformat(),
        next_start=(start + timedelta(days=CALENDAR_DAYS)).date().isoformat(),
        flash=request.query_params.get("saved"),
        **_context(),
    )


@router.get("/equipment/{item_id}", response_class=HTMLResponse)
def item_page(request: Request, item_id: int, page: Page, db: DB, start: str = "") -> Response:
    begin = _day(_when(start, "Start") or datetime.now(UTC))
    begin -= timedelta(days=begin.weekday())  # weeks start on Monday
    return _item_page(request, db, page, item_id, begin)


@router.post("/equipment/{item_id}/loans")
def request_loan(
    request: Request,
    item_id: int,
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
    purpose: Annotated[str, Form()] = "",
    purpose_note: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        start, end = _when(starts_at, "From"), _when(ends_at, "Until")
        if start is None or end is None:
            raise Invalid("Give the period of the loan.")
        data = schemas.LoanCreate(
            starts_at=start,
            ends_at=end,
            purpose=purpose,
            purpose_note=purpose_note,
        )
        loan = loans.request_loan(db, page.principal, item_id, data)
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except DomainError as exc:
        if exc.status == 404:
            raise
        errors = [{"message": exc.detail}]
    else:
        return redirect(f"/equipment/loans/{loan.id}?saved=Loan+requested")
    begin = _day(datetime.now(UTC))
    begin -= timedelta(days=begin.weekday())
    form = {"starts_at": starts_at, "ends_at": ends_at, "purpose": purpose, "note": purpose_note}
    return _item_page(request, db, page, item_id, begin, errors=errors, status=409, form=form)


@router.post("/equipment/{item_id}/maintenance")
def add_maintenance(
    item_id: int,
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    starts_at: Annotated[str, Form()] = "",
    ends_at: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    start, end = _when(starts_at, "From"), _when(ends_at, "Until")
    if start is None or end is None:
        raise Invalid("Give the maintenance window.")
    service.add_maintenance(
        db,
        page.principal,
        item_id,
        schemas.MaintenanceCreate(starts_at=start, ends_at=end, note=note),
    )
    return redirect(f"/equipment/{item_id}?saved=Maintenance+booked")


@router.post("/equipment/{item_id}/maintenance/{reservation_id}/remove")
def remove_maintenance(
    item_id: int, reservation_id: int, page: Page, db: DB, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(page, csrf_token)
    service.remove_maintenance(db, page.principal, item_id, reservation_id)
    return redirect(f"/equipment/{item_id}?saved=Maintenance+removed")


@router.get("/equipment/{item_id}/edit", response_class=HTMLResponse)
def edit_item(request: Request, item_id: int, page: Page, db: DB) -> Response:
    page.principal.require(Permission.EQUIPMENT_EDIT_OWN)
    item = service.get_item(db, page.principal, item_id)
    if "edit" not in item.actions:
        raise Invalid("You may change only your own unit's equipment.")
    return _form_page(request, db, item)


@router.post("/equipment/{item_id}/edit")
async def edit_item_submit(request: Request, item_id: int, page: Page, db: DB) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    check_csrf(page, form.get("csrf_token", ""))
    try:
        fields = _item_form(form)
        data = schemas.ItemUpdate(
            category=form.get("category") or None, status=form.get("status") or None, **fields
        )
        service.update_item(db, page.principal, item_id, data)
    except ValidationError as exc:
        errors = _validation_errors(exc)
    except DomainError as exc:
        if exc.status in (403, 404):
            raise
        errors = [{"message": exc.detail}]
    else:
        return redirect(f"/equipment/{item_id}?saved=Saved")
    item = service.get_item(db, page.principal, item_id)
    return _form_page(request, db, item, form=form, errors=errors, status=422)
