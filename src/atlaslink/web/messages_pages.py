"""Pages of the standard messages: partners with their endpoints and subscriptions, the
outbox with its delivery state, and the delivery log (messages.service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from atlaslink.errors import DomainError, Invalid
from atlaslink.messages import repository, schemas, service, validation
from atlaslink.messages.outbox import TOPICS
from atlaslink.messages.policy import require_manage
from atlaslink.web.deps import DB, Page
from atlaslink.web.forms import check_csrf, redirect
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)
PER_PAGE = 25
PageNo = Annotated[int, Query(alias="page", ge=1)]


def _errors(exc: Exception) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
    if isinstance(exc, DomainError):
        return exc.errors or [{"message": exc.detail}]
    return [{"message": str(exc)}]


def _schema_status() -> str:
    return "configured" if validation.configured() is not None else validation.NOT_CONFIGURED


def _partners(
    request: Request,
    page: Page,
    db: DB,
    *,
    p: int = 1,
    status: int = 200,
    errors: list[dict[str, Any]] | None = None,
    secret: str | None = None,
) -> Response:
    require_manage(page.principal)
    return render(
        request,
        "messages.html",
        status,
        tab="partners",
        partners=service.list_partners(db, page.principal, page=p, per_page=PER_PAGE),
        all_partners=service.list_partners(db, page.principal, page=1, per_page=200)["items"],
        units=repository.all_unit_codes(db),
        topics=TOPICS,
        schema_status=_schema_status(),
        errors=errors or [],
        flash=request.query_params.get("saved"),
        secret=secret,
    )


@router.get("/messages", response_class=HTMLResponse)
def partners_page(request: Request, page: Page, db: DB, p: PageNo = 1) -> Response:
    return _partners(request, page, db, p=p)


@router.post("/messages")
def partners_submit(
    request: Request,
    page: Page,
    db: DB,
    action: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    sender_id: Annotated[str, Form()] = "",
    unit_code: Annotated[str, Form()] = "",
    country: Annotated[str, Form()] = "",
    observer: Annotated[str, Form()] = "",
    de_version: Annotated[str, Form()] = "2.0",
    topics: Annotated[list[str] | None, Form()] = None,
    kind: Annotated[str, Form()] = "",
    target: Annotated[str, Form()] = "",
    endpoint_id: Annotated[int | None, Form()] = None,
    active: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    try:
        if action == "partner":
            body = schemas.PartnerCreate.model_validate(
                {
                    "code": code,
                    "name": name,
                    "sender_id": sender_id,
                    "unit_code": unit_code or None,
                    "country": country or None,
                    "observer": observer == "1",
                    "de_version": de_version,
                    "topics": topics or [],
                }
            )
            made = service.create_partner(db, page.principal, body)
            return redirect(f"/messages?saved=Partner+{made.code}+registered")
        if action == "endpoint":
            _endpoint, secret = service.add_endpoint(
                db,
                page.principal,
                code,
                schemas.EndpointCreate.model_validate({"kind": kind, "target": target}),
            )
            # The secret is shown once, on this response, never in a URL or a list.
            return _partners(request, page, db, status=201, secret=secret or None)
        if action == "endpoint_active" and endpoint_id is not None:
            service.set_endpoint_active(db, page.principal, code, endpoint_id, active == "1")
            return redirect(f"/messages?saved=Endpoint+{endpoint_id}+updated")
        if action == "partner_active":
            service.update_partner(
                db, page.principal, code, schemas.PartnerUpdate(active=active == "1")
            )
            return redirect(f"/messages?saved=Partner+{code}+updated")
        raise Invalid("Unknown action.")
    except (ValidationError, DomainError) as exc:
        db.rollback()
        return _partners(request, page, db, status=getattr(exc, "status", 422), errors=_errors(exc))


@router.get("/messages/outbox", response_class=HTMLResponse)
def outbox_page(
    request: Request,
    page: Page,
    db: DB,
    p: PageNo = 1,
    state: Annotated[str | None, Query(pattern="^(pending|sent|parked|)$")] = None,
) -> Response:
    return render(
        request,
        "messages.html",
        tab="outbox",
        outbox=service.list_outbox(
            db, page.principal, page=p, per_page=PER_PAGE, state=state or None
        ),
        state=state or "",
        schema_status=_schema_status(),
        errors=[],
        flash=request.query_params.get("saved"),
    )


@router.post("/messages/outbox")
def outbox_retry(
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    outbox_id: Annotated[int, Form()] = 0,
) -> Response:
    check_csrf(page, csrf_token)
    m = service.retry(db, page.principal, outbox_id)
    return redirect(f"/messages/outbox?state=pending&saved=Message+{m.id}+is+pending+again")


@router.get("/messages/log", response_class=HTMLResponse)
def log_page(
    request: Request,
    page: Page,
    db: DB,
    p: PageNo = 1,
    failed: bool = False,
    outbox: int | None = None,
) -> Response:
    return render(
        request,
        "messages.html",
        tab="log",
        attempts=service.list_attempts(
            db, page.principal, page=p, per_page=PER_PAGE, outbox_id=outbox, failed_only=failed
        ),
        failed=failed,
        outbox_id=outbox,
        schema_status=_schema_status(),
        errors=[],
        flash=None,
    )
