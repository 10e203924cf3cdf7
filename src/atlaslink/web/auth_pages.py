"""Log-in with second factor, enrolment, log-out, API tokens and user administration pages."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from atlaslink.auth import service as auth
from atlaslink.auth.permissions import Permission, Role
from atlaslink.errors import DomainError, Forbidden
from atlaslink.models import Unit, User, WebSession, utcnow
from atlaslink.web.deps import DB, SESSION_COOKIE, LoginRequired, Page
from atlaslink.web.forms import check_csrf, redirect, safe_next, set_session_cookie
from atlaslink.web.templating import render

router = APIRouter(include_in_schema=False)
PRELOGIN_COOKIE = "atlaslink_prelogin"


def _pending(request: Request, db: DB) -> tuple[WebSession, User]:
    """A session that passed the password but not yet the second factor."""
    token = request.cookies.get(SESSION_COOKIE)
    loaded = auth.load_session(db, token) if token else None
    if loaded is None:
        raise LoginRequired("/login")
    return loaded


def _login_form(
    request: Request, error: str = "", status: int = 200, next_: str = "/"
) -> HTMLResponse:
    token = secrets.token_urlsafe(16)
    response = render(request, "login.html", status, error=error, form_token=token, next=next_)
    response.set_cookie(PRELOGIN_COOKIE, token, httponly=True, samesite="strict", max_age=1800)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _login_form(request, next_=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    db: DB,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    form_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    cookie = request.cookies.get(PRELOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, form_token):
        return _login_form(request, "The log-in form expired. Please try again.", 400)
    try:
        user = auth.check_password(db, username, password)
    except DomainError as exc:
        # Keep the failed-attempt count even though the answer is an error.
        request.state.commit_on_error = True
        return _login_form(request, exc.detail, exc.status, safe_next(next))
    mfa = not auth.needs_totp(user)
    new = auth.start_session(db, user, mfa_passed=mfa)
    target = safe_next(next) if mfa else ("/login/totp" if user.totp_enrolled else "/account/enrol")
    response = redirect(target if mfa else f"{target}?next={safe_next(next)}")
    set_session_cookie(response, new.token)
    response.delete_cookie(PRELOGIN_COOKIE)
    return response


@router.get("/login/totp", response_class=HTMLResponse)
def totp_page(request: Request, db: DB, next: str = "/") -> Response:
    ws, user = _pending(request, db)
    if not user.totp_enrolled:
        return redirect("/account/enrol")
    return render(request, "totp.html", csrf=ws.csrf_token, next=safe_next(next), error="")


def _promote(db: DB, ws: WebSession, user: User, next_: str) -> RedirectResponse:
    # A new session id after the second factor: a fixed or stolen pre-login id is worthless.
    auth.end_session(db, ws)
    new = auth.start_session(db, user, mfa_passed=True)
    response = redirect(safe_next(next_))
    set_session_cookie(response, new.token)
    return response


@router.post("/login/totp")
def totp_submit(
    request: Request,
    db: DB,
    code: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    ws, user = _pending(request, db)
    if not secrets.compare_digest(ws.csrf_token, csrf_token):
        raise Forbidden("This form has expired. Reload the page and try again.")
    try:
        auth.check_totp(db, user, code)
    except DomainError as exc:
        request.state.commit_on_error = True
        return render(
            request,
            "totp.html",
            exc.status,
            csrf=ws.csrf_token,
            next=safe_next(next),
            error=exc.detail,
        )
    return _promote(db, ws, user, next)


@router.get("/account/enrol", response_class=HTMLResponse)
def enrol_page(request: Request, db: DB) -> Response:
    ws, user = _pending(request, db)
    if user.totp_enrolled:
        return redirect("/login/totp")
    secret = auth.begin_enrolment(db, user)
    uri = auth.provisioning_uri(user)
    return render(
        request,
        "enrol.html",
        csrf=ws.csrf_token,
        secret=secret,
        qr=auth.qr_svg(uri),
        error="",
        uri=uri,
    )


@router.post("/account/enrol")
def enrol_submit(
    request: Request,
    db: DB,
    code: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    ws, user = _pending(request, db)
    if not secrets.compare_digest(ws.csrf_token, csrf_token):
        raise Forbidden("This form has expired. Reload the page and try again.")
    try:
        auth.finish_enrolment(db, user, code)
    except DomainError as exc:
        request.state.commit_on_error = True
        uri = auth.provisioning_uri(user)
        return render(
            request,
            "enrol.html",
            exc.status,
            csrf=ws.csrf_token,
            secret=user.totp_secret,
            qr=auth.qr_svg(uri),
            error=exc.detail,
            uri=uri,
        )
    return _promote(db, ws, user, "/")


@router.post("/logout")
def logout(page: Page, db: DB, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(page, csrf_token)
    auth.log_out(db, page.web_session, page.user)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


# --- API tokens -------------------------------------------------------------------------------


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(request: Request, page: Page, db: DB) -> Response:
    page.principal.require(Permission.TOKENS_OWN)
    return render(request, "tokens.html", tokens=auth.list_tokens(db, page.user.id), new_token=None)


@router.post("/account/tokens")
def tokens_create(
    request: Request,
    page: Page,
    db: DB,
    name: Annotated[str, Form(max_length=100)] = "",
    expires_days: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    page.principal.require(Permission.TOKENS_OWN)
    days = int(expires_days) if expires_days.strip().isdigit() else None
    issued = auth.create_token(db, page.user, name, expires_days=days)
    return render(
        request, "tokens.html", tokens=auth.list_tokens(db, page.user.id), new_token=issued.token
    )


@router.post("/account/tokens/{token_id}/revoke")
def tokens_revoke(
    token_id: int, page: Page, db: DB, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(page, csrf_token)
    auth.revoke_token(db, page.user, token_id)
    return redirect("/account/tokens")


# --- users (platform admin) -------------------------------------------------------------------


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, page: Page, db: DB, p: int = 1) -> Response:
    page.principal.require(Permission.USERS_MANAGE)
    per_page = 50
    users, total = auth.list_users(db, offset=(max(p, 1) - 1) * per_page, limit=per_page)
    pages = max(1, -(-total // per_page))
    return render(
        request,
        "users.html",
        users=users,
        total=total,
        p=max(p, 1),
        pages=pages,
        roles=list(Role),
        errors=[],
        form={},
        unit_codes=_unit_codes(db),
        now=utcnow(),
    )


@router.post("/admin/users")
def users_create(
    request: Request,
    page: Page,
    db: DB,
    username: Annotated[str, Form(max_length=100)] = "",
    display_name: Annotated[str, Form(max_length=200)] = "",
    role: Annotated[str, Form()] = "",
    unit_code: Annotated[str, Form(max_length=40)] = "",
    country: Annotated[str, Form(max_length=2)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(page, csrf_token)
    page.principal.require(Permission.USERS_MANAGE)
    try:
        auth.create_user(
            db,
            page.principal,
            username=username,
            display_name=display_name,
            role=_role(role),
            password=password,
            unit_code=unit_code or None,
            country=country or None,
        )
    except DomainError as exc:
        users, total = auth.list_users(db, limit=50)
        return render(
            request,
            "users.html",
            exc.status,
            users=users,
            total=total,
            p=1,
            pages=max(1, -(-total // 50)),
            roles=list(Role),
            errors=[{"message": exc.detail}],
            unit_codes=_unit_codes(db),
            now=utcnow(),
            form={
                "username": username,
                "display_name": display_name,
                "role": role,
                "unit_code": unit_code,
                "country": country,
            },
        )
    return redirect("/admin/users")


def _unit_codes(db: DB) -> dict[int, str]:
    return dict(db.execute(select(Unit.id, Unit.code)).tuples().all())


def _role(value: str) -> Role:
    from atlaslink.errors import Invalid

    try:
        return Role(value)
    except ValueError:
        raise Invalid("Choose a role.") from None


@router.post("/admin/users/{username}/disable")
def users_disable(
    username: str, page: Page, db: DB, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(page, csrf_token)
    page.principal.require(Permission.USERS_MANAGE)
    if username == page.user.username:
        raise Forbidden("You cannot disable your own account.")
    auth.set_disabled(db, page.principal, username, True)
    return redirect("/admin/users")
