"""Recording what happens to a request: the shared timeline, the audit log, the live signal and
the notifications, all in the caller's transaction.

Every transition goes through :func:`record`, so the timeline and the audit trail never disagree
and open pages learn of the change only once it is committed (PostgreSQL delivers ``pg_notify``
at commit; on SQLite the live broadcaster polls for new rows).

Each timeline event and notification gets its place in commit order, ``live_seq``, from
:func:`number_live`: the live streams' cursor (ids are taken at INSERT, and transactions commit
in another order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import Principal
from atlaslink.models import (
    AssistanceRequest,
    AuditHead,
    Notification,
    OperationEvent,
    Unit,
    User,
    UserPreferences,
    utcnow,
)

# PostgreSQL channels read by ``operations.live``. The payloads carry what the live filter needs,
# so that no subscriber has to query: ``request_id:event_id:live_seq:scope:unit_id`` (unit_id
# empty when the event concerns no unit) and ``notification_id:user_id:live_seq:urgent`` (urgent
# is 0 or 1).
LIVE_CHANNEL = "atlaslink_operations"
NOTIFY_CHANNEL = "atlaslink_notifications"


def event_signal(event: OperationEvent) -> str:
    unit = "" if event.unit_id is None else str(event.unit_id)
    return f"{event.request_id}:{event.id}:{event.live_seq}:{event.scope}:{unit}"


def notification_signal(n: Notification) -> str:
    return f"{n.id}:{n.user_id}:{n.live_seq}:{int(n.urgent)}"


# Moves the counter on the audit chain's head by :n and returns its new value. The UPDATE locks
# the head until the transaction ends, so no other transaction takes a number until this one has
# committed: the numbers follow commit order.
_TAKE_LIVE = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(live_seq=AuditHead.live_seq + bindparam("n"))
    .returning(AuditHead.live_seq)
)


def number_live(session: Session, rows: Sequence[OperationEvent | Notification]) -> None:
    """Give rows just inserted in this transaction their place in commit order (``live_seq``).

    Taken after the INSERT, as the audit append is: the row's foreign keys are checked, and the
    rows they name locked for key share, before the head is held (so a transaction that holds
    one of those rows and waits for the head cannot deadlock with this one). Whoever has seen a
    row numbered *n* has seen every committed row below *n*: a stream resumed after *n* misses
    nothing."""
    if not rows:
        return
    last = session.connection().execute(_TAKE_LIVE, {"n": len(rows)}).scalar_one()
    for seq, row in enumerate(rows, start=last - len(rows) + 1):
        row.live_seq = seq
    session.flush()


def live_mark(session: Session) -> int:
    """The newest number committed: a page rendered after reading it resumes its stream after
    it (read it before the rows the page shows; a row numbered above it may be shown and also
    signalled, never neither)."""
    return int(session.scalar(select(AuditHead.live_seq).where(AuditHead.id == 1)) or 0)


def unit_code(session: Session, unit_id: int) -> str:
    """How the timeline names a unit: its code."""
    unit = session.get(Unit, unit_id)
    return unit.code if unit else str(unit_id)


def record(
    session: Session,
    actor: Principal,
    req: AssistanceRequest,
    kind: str,
    summary: str,
    *,
    unit_id: int | None = None,
    offer_id: int | None = None,
    scope: str = "all",
    data: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    object_type: str = "request",
    object_id: int | None = None,
    pinned: bool = False,
    at: datetime | None = None,
) -> OperationEvent:
    event = OperationEvent(
        request_id=req.id,
        occurred_at=at or utcnow(),
        actor_user_id=actor.user_id,
        actor_label=actor.label,
        kind=kind,
        summary=summary,
        unit_id=unit_id,
        offer_id=offer_id,
        scope=scope,
        data=audit.jsonable(data or {}),
        pinned=pinned,
    )
    session.add(event)
    session.flush()
    number_live(session, [event])
    audit.append(
        session,
        actor,
        kind,
        object_type,
        object_id if object_id is not None else req.id,
        before=before,
        after=after if after is not None else {"request": req.reference, "summary": summary},
    )
    # Standard messages for subscribed partners go to the outbox in this same transaction and
    # are delivered after the commit (messages/outbox.py; imported here, not at the top, as
    # it shapes messages through operations.views, which imports this module's callers).
    from atlaslink.messages import outbox

    outbox.on_event(session, req, event)
    if session.get_bind().dialect.name == "postgresql":
        # Delivered to listeners only when this transaction commits.
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": LIVE_CHANNEL, "payload": event_signal(event)},
        )
    return event


# ------------------------------------------------------------------------- notifications

_RESPONDER_ROLES = (Role.UNIT_COMMANDER.value, Role.DUTY_OFFICER.value)


def _quiet_until(prefs: UserPreferences | None, now: datetime) -> datetime | None:
    """The end of the user's quiet hours if ``now`` falls inside them (times are UTC)."""
    if prefs is None or not prefs.quiet_start or not prefs.quiet_end:
        return None
    start = time.fromisoformat(prefs.quiet_start)
    end = time.fromisoformat(prefs.quiet_end)
    t = now.time().replace(tzinfo=None)
    inside = (start <= t < end) if start <= end else (t >= start or t < end)
    if not inside:
        return None
    end_today = now.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    return end_today if end_today > now else end_today + timedelta(days=1)


def notify_users(
    session: Session,
    users: Iterable[User],
    req: AssistanceRequest | None,
    kind: str,
    title: str,
    body: str = "",
    *,
    urgent: bool = False,
) -> list[Notification]:
    now = utcnow()
    users = [u for u in users if not u.disabled]
    prefs = (
        {
            p.user_id: p
            for p in session.scalars(
                select(UserPreferences).where(UserPreferences.user_id.in_([u.id for u in users]))
            )
        }
        if users
        else {}
    )
    exercise = bool(req and req.exercise)
    prefix = "[EXERCISE] " if exercise else ""
    link = f"/requests/{req.id}" if req else ""
    made = []
    for user in users:
        pref = prefs.get(user.id)
        wants_mail = bool(user.email) and (pref is None or pref.email_enabled or urgent)
        quiet = None if urgent else _quiet_until(pref, now)
        n = Notification(
            user_id=user.id,
            email_to=user.email if wants_mail else "",
            request_id=req.id if req else None,
            kind=kind,
            title=prefix + title,
            body=body,
            link=link,
            urgent=urgent,
            exercise=exercise,
            email_state="pending" if wants_mail else "none",
            email_next_at=(quiet or now) if wants_mail else None,
        )
        session.add(n)
        made.append(n)
    session.flush()
    number_live(session, made)
    if made and session.get_bind().dialect.name == "postgresql":
        # Open pages learn of the notifications at commit (header badge); one statement for all.
        session.execute(
            text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"),
            {"channel": NOTIFY_CHANNEL, "payloads": [notification_signal(n) for n in made]},
        )
    return made


def email_contact(
    session: Session, req: AssistanceRequest, address: str, kind: str, title: str, body: str
) -> Notification:
    """An e-mail to a unit's 24/7 contact address (no account behind it). Always urgent."""
    prefix = "[EXERCISE] " if req.exercise else ""
    n = Notification(
        user_id=None,
        email_to=address,
        request_id=req.id,
        kind=kind,
        title=prefix + title,
        body=body,
        link=f"/requests/{req.id}",
        urgent=True,
        exercise=req.exercise,
        email_state="pending",
        email_next_at=utcnow(),
    )
    session.add(n)
    session.flush()
    number_live(session, [n])
    return n


def unit_responders(session: Session, unit_ids: Iterable[int]) -> list[User]:
    ids = sorted(set(unit_ids))
    if not ids:
        return []
    return list(
        session.scalars(
            select(User)
            .where(User.unit_id.in_(ids), User.role.in_(_RESPONDER_ROLES), User.disabled.is_(False))
            .order_by(User.id)
        )
    )


def requesting_side(session: Session, req: AssistanceRequest) -> list[User]:
    """The people of the requesting country who follow its requests (unit users carry their
    unit's country, see ``auth.service.create_user``)."""
    return list(
        session.scalars(
            select(User)
            .where(
                User.disabled.is_(False),
                User.country_iso2 == req.requesting_country,
                User.role.in_((*_RESPONDER_ROLES, Role.NATIONAL_CONTACT.value)),
            )
            .order_by(User.id)
        )
    )


def national_contacts(session: Session, country: str) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(
                User.country_iso2 == country,
                User.role == Role.NATIONAL_CONTACT.value,
                User.disabled.is_(False),
            )
            .order_by(User.id)
        )
    )


def support_office(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(User.role == Role.SUPPORT_OFFICE.value, User.disabled.is_(False))
            .order_by(User.id)
        )
    )
