"""Registry pages: start, directory, unit profile and editing, sharing, matrix, map, taxonomy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from atlaslink.auth.permissions import Permission
from atlaslink.config import get_settings
from atlaslink.errors import DomainError, Forbidden, Invalid
from atlaslink.registry import schemas, service
from atlaslink.registry.endpoints import unit_filters
from atlaslink.registry.repository import UnitFilters
from atlaslink.registry.taxonomy_seed import CONTACT_KINDS, TRANSPORT_KINDS
from atlaslink.sharing.policy import Audience, FieldGroup
from atlaslink.web import geo
from atlaslink.web.deps import DB, Page
from atlaslink.web.forms import check_csrf, redirect
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)
Filters = Annotated[UnitFilters, Depends(unit_filters)]


def _filter_context(db: DB, f: UnitFilters) -> dict[str, Any]:
    return {
        "f": f,
        "countries": [c for c in service.list_countries(db) if c.unit_count],
        "types": service.taxonomy(db).types,
    }


@router.get("/", response_class=HTMLResponse)
def home(request: Request, page: Page, db: DB) -> Response:
    own = None
    if page.principal.unit_id is not None:
        own = service.get_unit(db, page.principal, page.principal.unit_id)
    return render(request, "home.html", own=own, stale_days=get_settings().stale_after_days)


@router.get("/units", response_class=HTMLResponse)
def units(
    request: Request,
    page: Page,
    db: DB,
    f: Filters,
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    result = service.list_units(db, page.principal, f, p, 50)
    return render(request, "units.html", units=result, **_filter_context(db, f))


@router.get("/units/{unit_id}", response_class=HTMLResponse)
def unit_profile(request: Request, unit_id: int, page: Page, db: DB) -> Response:
    unit = service.get_unit(db, page.principal, unit_id)
    own = page.principal.unit_id == unit_id
    return render(request, "unit.html", unit=unit, own=own, flash=request.query_params.get("saved"))


# --- editing one's own unit -------------------------------------------------------------------


def _lines(text: str, width: int, what: str) -> list[list[str]]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or len(parts) > width:
            raise Invalid(f"{what}, line {n}: separate the fields with '|'.")
        rows.append(parts + [""] * (width - len(parts)))
    return rows


@router.get("/units/{unit_id}/edit", response_class=HTMLResponse)
def unit_edit(request: Request, unit_id: int, page: Page, db: DB) -> Response:
    page.principal.require(Permission.UNITS_EDIT_OWN)
    unit = service.get_unit(db, page.principal, unit_id)
    if page.principal.unit_id != unit_id:
        raise Forbidden("You may change only your own unit.")
    return render(
        request,
        "unit_edit.html",
        unit=unit,
        errors=[],
        contact_kinds=CONTACT_KINDS,
        transport_kinds=TRANSPORT_KINDS,
    )


@router.post("/units/{unit_id}/edit")
def unit_edit_submit(
    request: Request,
    unit_id: int,
    page: Page,
    db: DB,
    name: Annotated[str, Form()] = "",
    base_location: Annotated[str, Form()] = "",
    latitude: Annotated[str, Form()] = "",
    longitude: Annotated[str, Form()] = "",
    languages: Annotated[str, Form()] = "",
    competent_authority: Annotated[str, Form()] = "",
    contacts: Annotated[str, Form()] = "",
    transport: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        data = schemas.UnitUpdate(
            name=name,
            base_location=base_location,
            latitude=float(latitude) if latitude.strip() else None,
            longitude=float(longitude) if longitude.strip() else None,
            languages=[x for x in languages.replace(",", " ").split() if x],
            competent_authority=competent_authority,
            contacts=[
                schemas.Contact(kind=k, label=lbl, value=v)
                for k, lbl, v in _lines(contacts, 3, "Contacts")
            ],
            transport=[
                schemas.Transport(
                    kind=k,
                    description=d,
                    quantity=int(q or 1),
                    capacity_persons=int(c) if c else None,
                )
                for k, d, q, c in _lines(transport, 4, "Transport")
            ],
        )
        service.update_unit(db, page.principal, unit_id, data)
    except (ValidationError, ValueError, DomainError) as exc:
        errors = _errors(exc)
        unit = service.get_unit(db, page.principal, unit_id)
        return render(
            request,
            "unit_edit.html",
            422,
            unit=unit,
            errors=errors,
            contact_kinds=CONTACT_KINDS,
            transport_kinds=TRANSPORT_KINDS,
            form={"contacts": contacts, "transport": transport},
        )
    return redirect(f"/units/{unit_id}?saved=Profile+saved")


def _errors(exc: Exception) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
    if isinstance(exc, DomainError):
        return exc.errors or [{"message": exc.detail}]
    return [{"message": "Numbers must be written as numbers (e.g. 48.2 or 12)."}]


@router.get("/units/{unit_id}/capabilities", response_class=HTMLResponse)
def capabilities_edit(request: Request, unit_id: int, page: Page, db: DB) -> Response:
    page.principal.require(Permission.CAPABILITIES_EDIT_OWN)
    if page.principal.unit_id != unit_id:
        raise Forbidden("You may change only your own unit.")
    unit = service.get_unit(db, page.principal, unit_id)
    return render(
        request,
        "capabilities_edit.html",
        unit=unit,
        types=service.taxonomy(db).types,
        entries={c.type_code: c for c in unit.capabilities},
        errors=[],
    )


@router.post("/units/{unit_id}/capabilities")
async def capabilities_submit(request: Request, unit_id: int, page: Page, db: DB) -> Response:
    form = await request.form()
    check_csrf(page, str(form.get("csrf_token", "")))
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_save_capabilities, request, unit_id, page, db, dict(form))


def _save_capabilities(
    request: Request, unit_id: int, page: Any, db: Any, form: dict[str, Any]
) -> Response:
    if form.get("action") == "confirm":
        n = service.confirm_capabilities(db, page.principal, unit_id)
        return redirect(f"/units/{unit_id}?saved=Confirmed+{n}+entries")
    types = service.taxonomy(db).types
    unit = service.get_unit(db, page.principal, unit_id)
    existing = {c.type_code for c in unit.capabilities}
    errors: list[dict[str, Any]] = []
    writes: list[tuple[str, schemas.CapabilityWrite | None]] = []
    for t in types:
        level = str(form.get(f"{t.code}.level", "")).strip()
        if level == "":
            if t.code in existing:
                writes.append((t.code, None))
            continue

        def num(name: str, code: str = t.code) -> int | None:
            v = str(form.get(f"{code}.{name}", "")).strip()
            return int(v) if v else None

        try:
            writes.append(
                (
                    t.code,
                    schemas.CapabilityWrite(
                        level=int(level),
                        package_size=num("package_size"),
                        notice_to_move_hours=num("notice_to_move_hours"),
                        self_sufficiency_hours=num("self_sufficiency_hours"),
                        may_deploy_abroad=f"{t.code}.may_deploy_abroad" in form,
                        may_carry_arms_abroad=f"{t.code}.may_carry_arms_abroad" in form,
                        may_carry_explosives_abroad=f"{t.code}.may_carry_explosives_abroad" in form,
                        last_validated=str(form.get(f"{t.code}.last_validated", "")) or None,
                        validated_exercise=str(form.get(f"{t.code}.validated_exercise", ""))
                        or None,
                    ),
                )
            )
        except (ValidationError, ValueError) as exc:
            for e in _errors(exc):
                errors.append({"field": f"{t.name}: {e.get('field', '')}", "message": e["message"]})
    if errors:
        return render(
            request,
            "capabilities_edit.html",
            422,
            unit=unit,
            types=types,
            entries={c.type_code: c for c in unit.capabilities},
            errors=errors,
        )
    for code, write in writes:
        if write is None:
            service.delete_capability(db, page.principal, unit_id, code)
        else:
            service.put_capability(db, page.principal, unit_id, code, write)
    return redirect(f"/units/{unit_id}?saved=Capabilities+saved")


@router.get("/units/{unit_id}/sharing", response_class=HTMLResponse)
def sharing_edit(request: Request, unit_id: int, page: Page, db: DB) -> Response:
    page.principal.require(Permission.SHARING_EDIT_OWN)
    agreement = service.get_sharing(db, page.principal, unit_id)
    unit = service.get_unit(db, page.principal, unit_id)
    return render(
        request,
        "sharing.html",
        unit=unit,
        agreement=agreement,
        groups=list(FieldGroup),
        audiences=list(Audience),
        errors=[],
        flash=request.query_params.get("saved"),
    )


@router.post("/units/{unit_id}/sharing")
async def sharing_submit(request: Request, unit_id: int, page: Page, db: DB) -> Response:
    form = await request.form()
    check_csrf(page, str(form.get("csrf_token", "")))
    rules: dict[FieldGroup, schemas.SharingRuleIO] = {}
    errors: list[dict[str, Any]] = []
    for g in FieldGroup:
        try:
            rules[g] = schemas.SharingRuleIO(
                audience=Audience(str(form.get(f"{g.value}.audience", "own_unit"))),
                countries=str(form.get(f"{g.value}.countries", "")).replace(",", " ").split(),
                units=str(form.get(f"{g.value}.units", "")).replace(",", " ").split(),
            )
        except ValueError:
            errors.append({"field": g.value, "message": "choose an audience"})
    from starlette.concurrency import run_in_threadpool

    def save() -> Response:
        nonlocal errors
        if not errors:
            try:
                service.set_sharing(
                    db, page.principal, unit_id, schemas.SharingAgreementIO(rules=rules)
                )
                return redirect(f"/units/{unit_id}/sharing?saved=Sharing+agreement+saved")
            except DomainError as exc:
                errors = exc.errors or [{"message": exc.detail}]
        unit = service.get_unit(db, page.principal, unit_id)
        return render(
            request,
            "sharing.html",
            422,
            unit=unit,
            agreement=schemas.SharingAgreementIO(rules=rules),
            groups=list(FieldGroup),
            audiences=list(Audience),
            errors=errors,
        )

    return await run_in_threadpool(save)


# --- matrix and map ---------------------------------------------------------------------------


@router.get("/matrix", response_class=HTMLResponse)
def matrix(
    request: Request,
    page: Page,
    db: DB,
    f: Filters,
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    result = service.matrix(db, page.principal, f, p, 50)
    return render(request, "matrix.html", m=result, **_filter_context(db, f))


@router.get("/map", response_class=HTMLResponse)
def map_page(request: Request, page: Page, db: DB, f: Filters) -> Response:
    units = service.list_units(db, page.principal, f, 1, 500)
    outlines = geo.outlines()
    members = {c.iso2 for c in service.list_countries(db) if c.networks}
    points = []
    for u in units.items:
        if u.latitude is None or u.longitude is None:
            continue
        x, y = geo.project(u.latitude, u.longitude)
        points.append({"unit": u, "x": round(x, 1), "y": round(y, 1)})
    return render(
        request,
        "map.html",
        outlines=outlines,
        points=points,
        members=members,
        total=units.total,
        **_filter_context(db, f),
    )


# --- taxonomy ---------------------------------------------------------------------------------


@router.get("/taxonomy", response_class=HTMLResponse)
def taxonomy_page(request: Request, page: Page, db: DB) -> Response:
    return render(
        request,
        "taxonomy.html",
        tax=service.taxonomy(db, include_retired=True),
        errors=[],
        flash=request.query_params.get("saved"),
    )


@router.post("/taxonomy")
def taxonomy_add(
    request: Request,
    page: Page,
    db: DB,
    code: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    rtlt_id: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        data = schemas.CapabilityTypeCreate(
            code=code.strip(), kind=kind, name=name.strip(), rtlt_id=rtlt_id.strip() or None
        )
        service.create_type(db, page.principal, data)
    except (ValidationError, DomainError) as exc:
        return render(
            request,
            "taxonomy.html",
            422,
            tax=service.taxonomy(db, include_retired=True),
            errors=_errors(exc),
        )
    return redirect("/taxonomy?saved=Type+added")


@router.post("/taxonomy/{code}/retire")
def taxonomy_retire(
    code: str,
    page: Page,
    db: DB,
    retired: Annotated[str, Form()] = "1",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    service.update_type(
        db, page.principal, code, schemas.CapabilityTypeUpdate(retired=retired == "1")
    )
    return redirect("/taxonomy?saved=Taxonomy+updated")


# --- networks and member countries ------------------------------------------------------------


def _network_page(
    request: Request, db: DB, status: int = 200, errors: list[Any] | None = None
) -> Response:
    return render(
        request,
        "network.html",
        status,
        networks=service.list_networks(db),
        countries=service.list_countries(db),
        errors=errors or [],
        flash=request.query_params.get("saved"),
    )


@router.get("/network", response_class=HTMLResponse)
def network_page(request: Request, page: Page, db: DB) -> Response:
    return _network_page(request, db)


@router.post("/network")
def network_submit(
    request: Request,
    page: Page,
    db: DB,
    action: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    iso2: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "other",
    voting: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        if action == "network":
            service.create_network(
                db,
                page.principal,
                schemas.NetworkCreate(code=code.strip().upper(), name=name.strip()),
            )
        elif action == "country":
            service.create_country(
                db,
                page.principal,
                schemas.CountryCreate(iso2=iso2.strip().upper(), name=name.strip(), status=status),
            )
        elif action == "member":
            service.set_member(db, page.principal, code, iso2, voting == "1")
        elif action == "remove":
            service.set_member(db, page.principal, code, iso2, None)
        else:
            raise Invalid("Unknown action.")
    except (ValidationError, DomainError) as exc:
        return _network_page(request, db, 422, _errors(exc))
    return redirect("/network?saved=Saved")
