"""A person's notifications and notification preferences (quiet hours, e-mail)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from atlaslink.errors import DomainError
from atlaslink.operations import inbox, schemas
from atlaslink.web.deps import DB, Page
from atlaslink.web.forms import check_csrf, redirect, safe_next
from atlaslink.web.operations_forms import errors_of, status_of
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/notifications", response_class=HTMLResponse)
def notifications(
    request: Request,
    page: Page,
    db: DB,
    unread: bool = False,
    p: Annotated[int, Query(alias="page", ge=1)] = 1,
) -> Response:
    result = inbox.list_notifications(db, page.principal, page=p, per_page=25, unread=unread)
    return render(request, "notifications.html", notes=result, unread_only=unread)


@router.post("/notifications/{notification_id}/read")
def notification_read(
    notification_id: int,
    page: Page,
    db: DB,
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    n = inbox.mark_read(db, page.principal, notification_id)
    # Opening a notification goes to what it is about.
    return redirect(safe_next(next or n.link or "/notifications"))


@router.post("/notifications/read-all")
def notifications_read_all(page: Page, db: DB, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(page, csrf_token)
    n = inbox.mark_all_read(db, page.principal)
    return redirect(f"/notifications?saved={n}+marked+read")


@router.get("/account/preferences", response_class=HTMLResponse)
def preferences(request: Request, page: Page, db: DB) -> Response:
    prefs = inbox.get_preferences(db, page.principal)
    return render(
        request,
        "preferences.html",
        prefs=prefs,
        errors=[],
        flash=request.query_params.get("saved"),
    )


@router.post("/account/preferences")
def preferences_save(
    request: Request,
    page: Page,
    db: DB,
    quiet_start: Annotated[str, Form()] = "",
    quiet_end: Annotated[str, Form()] = "",
    email_enabled: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    body = schemas.Preferences.model_construct(
        quiet_start=quiet_start.strip() or None,
        quiet_end=quiet_end.strip() or None,
        email_enabled=email_enabled == "1",
    )
    try:
        with db.begin_nested():
            inbox.set_preferences(db, page.principal, body)
    except DomainError as exc:
        return render(
            request,
            "preferences.html",
            status_of(exc),
            prefs=body,
            errors=errors_of(exc),
        )
    return redirect("/account/preferences?saved=Preferences+saved")
