"""Live streams for the pages (server-sent events, cookie session): a request's timeline and
the caller's notifications. The interface is described in ``operations/live.py``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.principal import Principal
from atlaslink.operations import live
from atlaslink.web.deps import DB, SESSION_COOKIE, Page

router = APIRouter(include_in_schema=False)
After = Annotated[int | None, Query(ge=0)]
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)]


def _session_check(request: Request) -> live.Authenticate:
    """The stream's later checks: the same web session, not logged out, idle or expired.
    (Checked in a transaction that is rolled back: an open stream does not keep it alive.)"""
    token = request.cookies.get(SESSION_COOKIE, "")

    def check(session: Session) -> Principal | None:
        loaded = auth.load_session(session, token) if token else None
        if loaded is None or not loaded[0].mfa_passed:
            return None
        return auth.principal_of(loaded[1])

    return check


@router.get("/requests/{request_id}/live")
async def request_live(
    request_id: int,
    request: Request,
    page: Page,
    db: DB,
    after: After = None,
    last_event_id: LastEventId = None,
) -> live.EventStream:
    return await live.request_stream(
        request,
        db,
        page.principal,
        request_id,
        after=live.resume_after(last_event_id, after),
        authenticate=_session_check(request),
    )


@router.get("/notifications/live")
async def notifications_live(
    request: Request, page: Page, db: DB, after: After = None, last_event_id: LastEventId = None
) -> live.EventStream:
    return await live.notification_stream(
        request,
        db,
        page.principal,
        after=live.resume_after(last_event_id, after),
        authenticate=_session_check(request),
    )
