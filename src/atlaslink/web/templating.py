"""Jinja2 set-up shared by all pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from atlaslink.auth.permissions import ROLE_LABELS, Permission, Role
from atlaslink.registry.taxonomy_seed import LEVELS, display_country
from atlaslink.sharing.policy import AUDIENCE_LABELS, FIELD_GROUP_LABELS

templates = Jinja2Templates(directory=str(files("atlaslink") / "web" / "templates"))
env = templates.env
env.globals.update(
    P=Permission,
    ROLE_LABELS=ROLE_LABELS,
    Role=Role,
    LEVELS=LEVELS,
    AUDIENCE_LABELS=AUDIENCE_LABELS,
    FIELD_GROUP_LABELS=FIELD_GROUP_LABELS,
    display_country=display_country,
)


def page_url(request: Request, **changes: Any) -> str:
    """The current address with some query parameters changed (for pagination and filters)."""
    params = dict(request.query_params)
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = str(v)
    return request.url.path + ("?" + urlencode(params) if params else "")


env.globals["page_url"] = page_url
# A one-time key per rendered form: the server does a form's action once (web/operations_actions).
env.globals["new_key"] = lambda: uuid.uuid4().hex


def dtlocal(value: Any) -> str:
    """A time as a ``datetime-local`` field shows it (UTC, to the minute)."""
    if not value:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    return str(value)[:16]


env.filters["dtlocal"] = dtlocal
env.globals["now_utc"] = lambda: datetime.now(UTC)
env.tests["startingwith"] = lambda value, prefix: str(value).startswith(prefix)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    auth = getattr(request.state, "page_auth", None)
    context.setdefault(
        "me",
        {
            "display_name": auth.display_name,
            "username": auth.username,
            "unread": auth.unread,
            "live_after": auth.live_after,
        }
        if auth
        else None,
    )
    context.setdefault("principal", auth.principal if auth else None)
    context.setdefault("csrf", auth.csrf if auth else "")
    return templates.TemplateResponse(request, name, context, status_code=status)


def render_error(
    request: Request, status: int, title: str, detail: str, errors: list[dict[str, Any]]
) -> HTMLResponse:
    return render(request, "error.html", status, title=title, detail=detail, errors=errors)
