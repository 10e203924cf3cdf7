"""A person's notifications and notification preferences (quiet hours, e-mail).

Notifications are written by ``timeline.notify_users`` in the transaction of the change they
announce; here they are read and marked read. Quiet hours hold back routine e-mail only: an
escalation or any other urgent notification is never delayed (``timeline._quiet_until``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.principal import Principal
from atlaslink.errors import Invalid, NotFound
from atlaslink.models import Notification, UserPreferences, utcnow
from atlaslink.operations import schemas
from atlaslink.registry.service import page_dict

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _mine(p: Principal) -> Any:
    return Notification.user_id == p.user_id


def unread_count(session: Session, p: Principal, *, upto: int | None = None) -> int:
    """The caller's unread notifications; ``upto``: only those numbered up to it (a page's
    badge counts what its stream will not send again, see ``timeline.live_mark``)."""
    if p.user_id is None:
        return 0
    stmt = (
        select(func.count())
        .select_from(Notification)
        .where(_mine(p), Notification.read_at.is_(None))
    )
    if upto is not None:
        stmt = stmt.where(Notification.live_seq <= upto)
    return session.scalar(stmt) or 0


def list_notifications(
    session: Session, p: Principal, *, page: int, per_page: int, unread: bool = False
) -> dict[str, Any]:
    stmt = select(Notification).where(_mine(p))
    if unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Notification.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    items = [schemas.NotificationOut.model_validate(n, from_attributes=True) for n in rows]
    return page_dict(items, total, page, per_page)


def mark_read(session: Session, p: Principal, notification_id: int) -> Notification:
    n = session.get(Notification, notification_id)
    if n is None or n.user_id != p.user_id:
        raise NotFound(f"No notification {notification_id}.")
    if n.read_at is None:
        n.read_at = utcnow()
        session.flush()
    return n


def mark_all_read(session: Session, p: Principal) -> int:
    result = session.execute(
        update(Notification)
        .where(_mine(p), Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of an UPDATE


def get_preferences(session: Session, p: Principal) -> schemas.Preferences:
    prefs = session.get(UserPreferences, p.user_id) if p.user_id is not None else None
    if prefs is None:
        return schemas.Preferences(quiet_start=None, quiet_end=None, email_enabled=True)
    return schemas.Preferences(
        quiet_start=prefs.quiet_start,
        quiet_end=prefs.quiet_end,
        email_enabled=prefs.email_enabled,
    )


def set_preferences(
    session: Session, p: Principal, body: schemas.Preferences
) -> schemas.Preferences:
    if p.user_id is None:
        raise Invalid("Preferences belong to a person.")
    problems = [
        {"field": name, "message": "write the time as HH:MM (24 hours, UTC)"}
        for name, value in (("quiet_start", body.quiet_start), ("quiet_end", body.quiet_end))
        if value and not _HHMM.match(value)
    ]
    if bool(body.quiet_start) != bool(body.quiet_end):
        problems.append({"field": "quiet_end", "message": "give both the start and the end"})
    if body.quiet_start and body.quiet_start == body.quiet_end:
        problems.append({"field": "quiet_end", "message": "the end must differ from the start"})
    if problems:
        raise Invalid("The preferences are not valid.", errors=problems)
    before = get_preferences(session, p)
    prefs = session.get(UserPreferences, p.user_id)
    if prefs is None:
        prefs = UserPreferences(user_id=p.user_id)
        session.add(prefs)
    prefs.quiet_start = body.quiet_start or None
    prefs.quiet_end = body.quiet_end or None
    prefs.email_enabled = body.email_enabled
    session.flush()
    after = get_preferences(session, p)
    audit.append(
        session,
        p,
        "preferences.updated",
        "user",
        p.user_id,
        before=before.model_dump(),
        after=after.model_dump(),
    )
    return after
