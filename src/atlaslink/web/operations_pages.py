"""Operation pages: the request list, the create/amend form, the operation page (one shared
picture, kept live by ``static/live.js``), candidates, the after-action report and the network
dashboard. Every page reads through ``operations.views``, which applies who-sees-what; the
forms post to ``web/operations_actions.py``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission, Role
from atlaslink.config import get_settings
from atlaslink.errors import Forbidden
from atlaslink.models import Unit, utcnow
from atlaslink.operations import (
    metrics,
    offer_equipment,
    policy,
    rules,
    schemas,
    service,
    timeline,
    views,
    vocab,
)
from atlaslink.operations.states import ACCEPTS_OFFERS, ENDED, RequestStatus
from atlaslink.registry import service as registry
from atlaslink.web import geo
from atlaslink.web import report_pdf as report_pdf_builder
from atlaslink.web.deps import DB, Page, PageAuth
from atlaslink.web.operations_forms import MAX_LINES
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)

STATUS_LABELS = {s.value: s.value.replace("_", " ").capitalize() for s in RequestStatus}
LIVE_STATUSES = [s.value for s in RequestStatus if s not in ENDED]


# --- list ---------------------------------------------------------------------------------


@router.get("/requests", response_class=HTMLResponse)
def request_list(
    request: Request,
    page: Page,
    db: DB,
    status: Annotated[str, Query(max_length=32)] = "live",
    exercise: Annotated[str, Query(max_length=8)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    page.principal.require(Permission.REQUESTS_READ)
    flag = {"yes": True, "no": False}.get(exercise)
    result = views.list_requests(
        db,
        page.principal,
        page=p,
        per_page=25,
        status=None if status == "all" else status,
        exercise=flag,
        q=q.strip() or None,
    )
    return render(
        request,
        "requests.html",
        requests=result,
        f={"status": status, "exercise": exercise, "q": q},
        statuses=[s.value for s in RequestStatus],
    )


# --- create and amend ---------------------------------------------------------------------


def _form_options(db: Session, page: PageAuth) -> dict[str, Any]:
    p = page.principal
    # Only agreements in force can be named (operations.rules decides which those are).
    agreements = (
        rules.list_agreements(db, p, country=p.country, in_force=True, per_page=200)["items"]
        if p.country
        else []
    )
    units = (
        list(db.scalars(select(Unit).where(Unit.country_iso2 == p.country).order_by(Unit.code)))
        if p.country and p.role is Role.NATIONAL_CONTACT
        else []
    )
    return {
        "types": registry.taxonomy(db).types,
        "agreements": agreements,
        "country_units": units,
        "vocab": vocab,
        "max_lines": MAX_LINES,
        "max_classification": get_settings().max_classification,
        "ack_minutes": get_settings().ack_minutes,
    }


def request_form(
    request: Request,
    page: PageAuth,
    db: Session,
    *,
    body: dict[str, Any],
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
    existing: schemas.RequestOut | None = None,
) -> HTMLResponse:
    return render(
        request,
        "request_form.html",
        status,
        body=body,
        errors=errors or [],
        existing=existing,
        **_form_options(db, page),
    )


@router.get("/requests/new", response_class=HTMLResponse)
def new_request(
    request: Request,
    page: Page,
    db: DB,
    kind: Annotated[str, Query(pattern="^(request|pre_alert)$")] = "request",
    pre_alert: int | None = None,
) -> Response:
    page.principal.require(Permission.REQUESTS_CREATE)
    if page.principal.country is None:
        raise Forbidden("Only people of a member country raise requests.")
    body: dict[str, Any] = {"kind": kind, "lines": [], "nature": []}
    if pre_alert is not None:
        # A request that follows a pre-alert starts from what the pre-alert said.
        pa, _ = policy.get_visible(db, page.principal, pre_alert)
        body = service.body_of(db, pa).model_dump(mode="json") | {
            "kind": "request",
            "pre_alert_id": pa.id,
            "pre_alert_ref": pa.reference,
        }
    return request_form(request, page, db, body=body)


@router.get("/requests/{request_id}/edit", response_class=HTMLResponse)
def edit_request(request: Request, request_id: int, page: Page, db: DB) -> Response:
    out = views.get_request(db, page.principal, request_id)
    if not ({"edit", "amend"} & set(out.actions)):
        raise Forbidden(f"This request is {out.status}: you cannot change it now.")
    req, _ = policy.get_visible(db, page.principal, request_id)
    body = service.body_of(db, req).model_dump(mode="json")
    body |= {"kind": out.kind, "expected_version": out.version}
    return request_form(request, page, db, body=body, existing=out)


# --- the operation page --------------------------------------------------------------------


def _map(out: schemas.RequestOut) -> dict[str, Any] | None:
    """The incident and the units involved, projected like the registry map, framed to fit."""
    points: list[dict[str, Any]] = []
    eta = {o.unit.id: o.eta_at for o in out.offers if o.eta_at is not None}
    offer_status = {o.unit.id: o.status for o in out.offers}
    seen: set[int] = set()
    for a in out.addressees:
        u = a.unit
        if u.id in seen or u.latitude is None or u.longitude is None:
            continue
        seen.add(u.id)
        x, y = geo.project(u.latitude, u.longitude)
        points.append(
            {
                "unit": u,
                "x": round(x, 1),
                "y": round(y, 1),
                "state": offer_status.get(u.id, a.status),
                "eta": eta.get(u.id),
            }
        )
    incident: dict[str, float] | None = None
    if out.latitude is not None and out.longitude is not None:
        ix, iy = geo.project(out.latitude, out.longitude)
        incident = {"x": round(ix, 1), "y": round(iy, 1)}
    xs: list[float] = [pt["x"] for pt in points] + ([incident["x"]] if incident else [])
    ys: list[float] = [pt["y"] for pt in points] + ([incident["y"]] if incident else [])
    if not xs:
        return None
    width = max(max(xs) - min(xs), 900.0) * 1.25
    height = max(max(ys) - min(ys), 700.0) * 1.25
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    box = (round(cx - width / 2), round(cy - height / 2), round(width), round(height))
    return {
        "outlines": geo.outlines(),
        "view_box": box,
        "r": round(max(width, height) / 70, 1),
        "font": round(max(width, height) / 32, 1),
        "incident": incident,
        "points": points,
    }


PAGE_EVENTS = 500  # the newest events a request's page shows


def operation_context(db: Session, page: PageAuth, request_id: int) -> dict[str, Any]:
    p = page.principal
    req, inv = policy.get_visible(db, p, request_id)
    live_after = timeline.live_mark(db)  # before the page's rows: see timeline.live_mark
    out = views.request_out(db, p, req, inv)
    # The newest events (a long operation has thousands; the report and the API have them
    # all), and every pinned one however old.
    newest = views.visible_events(db, p, req, inv, limit=PAGE_EVENTS + 1, newest=True)
    events = newest[-PAGE_EVENTS:]
    pinned = views.visible_events(db, p, req, inv, limit=None, pinned_only=True)
    own = next((a for a in out.addressees if a.id == inv.addressee_id), None)
    # The answer form lists the unit's own equipment in service (offered with the offer).
    now = utcnow()
    until = offer_equipment.default_until(now)
    own_items = (
        [
            {
                "id": item.id,
                "ref": item.ref,
                "model": item.model,
                "category": cat.name,
                "busy": busy,
            }
            for item, cat, busy in offer_equipment.available_items(db, own.unit.id, now, until)
        ]
        if own is not None and "answer" in out.actions
        else None
    )
    return {
        "own_items": own_items,
        "own_items_until": until,
        "r": out,
        "events": list(reversed(events)),
        "live_after": live_after,
        "pinned": pinned,
        "events_cut": len(newest) > PAGE_EVENTS,
        "metrics": metrics.metrics(db, req),
        "map": _map(out),
        "own_addressee": own,
        "open_lines": [line for line in out.lines if not line.removed],
        "vocab": vocab,
        "status_labels": STATUS_LABELS,
        "accepts_offers": req.status in ACCEPTS_OFFERS,
        "countries": registry.list_countries(db) if "grant" in out.actions else [],
    }


def operation_page(
    request: Request,
    page: PageAuth,
    db: Session,
    request_id: int,
    *,
    errors: list[dict[str, Any]] | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "request.html",
        status,
        errors=errors or [],
        form=form or {},
        flash=request.query_params.get("saved"),
        **operation_context(db, page, request_id),
    )


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_page(request: Request, request_id: int, page: Page, db: DB) -> Response:
    return operation_page(request, page, db, request_id)


@router.get("/requests/{request_id}/lines/{line_no}/candidates", response_class=HTMLResponse)
def candidates_page(
    request: Request,
    request_id: int,
    line_no: int,
    page: Page,
    db: DB,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Response:
    ranking = views.candidates(db, page.principal, request_id, line_no, limit=limit)
    out = views.get_request(db, page.principal, request_id)
    addressed = {a.unit.id for a in out.addressees}
    return render(
        request,
        "candidates.html",
        r=out,
        ranking=ranking,
        addressed=addressed,
        limit=limit,
    )


def _report(db: Session, page: PageAuth, request_id: int) -> dict[str, Any]:
    p = page.principal
    req, inv = policy.get_visible(db, p, request_id)
    return {
        "r": views.request_out(db, p, req, inv),
        "events": views.visible_events(db, p, req, inv, limit=None),
        "metrics": metrics.metrics(db, req),
        "final": req.status in ENDED,
    }


@router.get("/requests/{request_id}/report", response_class=HTMLResponse)
def report_page(request: Request, request_id: int, page: Page, db: DB) -> Response:
    return render(
        request,
        "report.html",
        status_labels=STATUS_LABELS,
        vocab=vocab,
        **_report(db, page, request_id),
    )


@router.get("/requests/{request_id}/report.pdf")
def report_pdf(request_id: int, page: Page, db: DB) -> Response:
    data = _report(db, page, request_id)
    body = report_pdf_builder.build(data["r"], data["events"], data["metrics"], final=data["final"])
    name = f"after-action-{data['r'].reference}.pdf"
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request,
    page: Page,
    db: DB,
    exercise: Annotated[str, Query(max_length=8)] = "",
) -> Response:
    flag = {"yes": True, "no": False}.get(exercise)
    board = metrics.dashboard(db, page.principal, exercise=flag)
    return render(request, "dashboard.html", d=board, exercise=exercise)
