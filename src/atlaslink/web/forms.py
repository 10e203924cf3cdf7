"""Helpers shared by the page routes: CSRF checks, redirects, safe 'next' targets."""

from __future__ import annotations

import secrets

from fastapi.responses import RedirectResponse

from atlaslink.config import get_settings
from atlaslink.errors import Forbidden
from atlaslink.web.deps import SESSION_COOKIE, PageAuth


def check_csrf(auth: PageAuth, token: str) -> None:
    if not token or not secrets.compare_digest(auth.csrf, token):
        raise Forbidden("This form has expired. Reload the page and try again.")


def safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def set_session_cookie(response: RedirectResponse, token: str) -> None:
    settings = get_settings()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_absolute_minutes * 60,
        path="/",
    )
