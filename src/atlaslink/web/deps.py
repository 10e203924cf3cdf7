"""Request-scoped dependencies: the database session of the request and who is calling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from atlaslink.audit.service import ReadLedger
from atlaslink.auth import service as auth
from atlaslink.auth.principal import Principal
from atlaslink.errors import Unauthenticated
from atlaslink.models import User, WebSession
from atlaslink.operations import inbox, timeline

SESSION_COOKIE = "atlaslink_session"


async def get_db(request: Request) -> Session:
    """The request's one transaction; the unit-of-work middleware commits or rolls it back.

    ``async``: it only creates the session (no I/O), so it need not hop to the thread pool."""
    db: Session | None = getattr(request.state, "db", None)
    if db is None:
        db = request.app.state.sessionmaker()
        request.state.db = db
    return db


DB = Annotated[Session, Depends(get_db)]


def _ledger(request: Request) -> ReadLedger | None:
    return getattr(request.state, "ledger", None)


def api_principal(request: Request, db: DB) -> Principal:
    """API callers present a bearer token (machine clients and scripts)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Send an API token as 'Authorization: Bearer <token>'.")
    user = auth.authenticate_token(db, token.strip())
    if user is None:
        raise Unauthenticated("The API token is unknown, expired or revoked.")
    principal = auth.principal_of(user)
    ledger = _ledger(request)
    if ledger is not None:
        ledger.actor = principal
    return principal


ApiPrincipal = Annotated[Principal, Depends(api_principal)]


@dataclass(frozen=True)
class PageAuth:
    principal: Principal
    user: User
    web_session: WebSession
    # Plain copies for rendering, usable even after the transaction has ended.
    csrf: str
    display_name: str
    username: str
    # Unread notifications, for the badge in the page header, and where its live stream
    # resumes (read before the count: operations.timeline.live_mark).
    unread: int = 0
    live_after: int = 0


class LoginRequired(Exception):
    """Raised by page dependencies; rendered as a redirect to the log-in page."""

    def __init__(self, target: str) -> None:
        self.target = target


def page_auth(request: Request, db: DB) -> PageAuth:
    token = request.cookies.get(SESSION_COOKIE)
    loaded = auth.load_session(db, token) if token else None
    if loaded is None:
        raise LoginRequired("/login")
    ws, user = loaded
    if not ws.mfa_passed:
        raise LoginRequired("/login/totp" if user.totp_enrolled else "/account/enrol")
    principal = auth.principal_of(user)
    ledger = _ledger(request)
    if ledger is not None:
        ledger.actor = principal
    live_after = timeline.live_mark(db)
    request.state.page_auth = PageAuth(
        principal,
        user,
        ws,
        ws.csrf_token,
        user.display_name,
        user.username,
        inbox.unread_count(db, principal, upto=live_after),
        live_after,
    )
    return request.state.page_auth  # type: ignore[no-any-return]


Page = Annotated[PageAuth, Depends(page_auth)]
