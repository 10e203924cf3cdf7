"""The background job: acknowledgement deadlines and escalations, lapsing requests, e-mail.

Deadlines are columns (``request_addressees.next_check_at``, ``assistance_requests.lapse_at``,
``notifications.email_next_at``), so whatever was due while no process ran fires at the next
tick after a restart. Several processes may tick at once: on PostgreSQL each claims rows with
``FOR UPDATE SKIP LOCKED``; SQLite serialises writers. One tick = one transaction per step, so
a crash loses at most the step in progress, which the next tick repeats (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth.principal import SYSTEM
from atlaslink.config import Settings, get_settings
from atlaslink.messages import tasks as message_tasks
from atlaslink.models import (
    AssistanceRequest,
    Notification,
    RequestAddressee,
    RequestGrant,
    Unit,
    UnitContact,
    utcnow,
)
from atlaslink.operations import service, timeline
from atlaslink.operations.states import ENDED, AddresseeStatus, RequestStatus

log = logging.getLogger(__name__)
A = AddresseeStatus
R = RequestStatus

LAPSABLE = (R.SUBMITTED.value, R.OPEN.value, R.PARTIALLY_COVERED.value)
EMAIL_MAX_ATTEMPTS = 6
BATCH = 100


def _claim(session: Session, stmt):  # type: ignore[no-untyped-def]  # any select()
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return stmt


def escalate_due(session: Session, now: datetime) -> int:
    """Addressed units past their acknowledgement deadline climb the ladder: the next duty
    contact, up to ``max_escalations`` times, then the support office; then silence is
    recorded as NO_RESPONSE."""
    # The job claims the request row, as every change of a request does first
    # (``policy.get_visible(for_update=True)``); addressees change only under that lock. A job
    # that locked the addressee alone deadlocked with a unit acknowledging at the deadline,
    # and one that locked both could strand an addressee locked by a pass that then skipped
    # it. SKIP LOCKED: a request someone is changing right now is seen at the next tick.
    stmt = (
        select(RequestAddressee, AssistanceRequest)
        .join(AssistanceRequest, AssistanceRequest.id == RequestAddressee.request_id)
        .where(RequestAddressee.next_check_at <= now)
        .order_by(RequestAddressee.next_check_at, RequestAddressee.id)
        .limit(BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=AssistanceRequest)
    pairs = session.execute(stmt).all()
    for a, req in pairs:
        if a.status != A.AWAITING_ACK or req.status in ENDED:
            a.next_check_at = None
            continue
        unit = session.get(Unit, a.unit_id)
        code = unit.code if unit else str(a.unit_id)
        if a.escalations < req.max_escalations:
            a.escalations += 1
            a.next_check_at = now + timedelta(minutes=req.ack_minutes)
            contacts = list(
                session.scalars(
                    select(UnitContact)
                    .where(UnitContact.unit_id == a.unit_id)
                    .order_by(UnitContact.id)
                )
            )
            # The next duty contact in the unit's list (round robin over its contact points).
            contact = contacts[(a.escalations - 1) % len(contacts)] if contacts else None
            title = f"ESCALATION {a.escalations}: {req.reference} not acknowledged by {code}"
            body = (
                f"{req.title}. Acknowledge now. Next contact: "
                f"{contact.label} ({contact.kind} {contact.value})"
                if contact
                else f"{req.title}. Acknowledge now."
            )
            timeline.notify_users(
                session,
                timeline.unit_responders(session, [a.unit_id]),
                req,
                "escalation.unit",
                title,
                body,
                urgent=True,
            )
            if contact is not None and contact.kind == "email":
                timeline.email_contact(session, req, contact.value, "escalation.unit", title, body)
            timeline.record(
                session,
                SYSTEM,
                req,
                "addressee.escalated",
                f"{code} has not acknowledged: alert {a.escalations} of {req.max_escalations}"
                + (f" to {contact.label}" if contact else ""),
                unit_id=a.unit_id,
                object_type="addressee",
                object_id=a.id,
                at=now,
            )
        else:
            a.status = A.NO_RESPONSE
            a.next_check_at = None
            a.support_office_alerted_at = now
            if not session.scalar(
                select(RequestGrant.id).where(
                    RequestGrant.request_id == req.id, RequestGrant.grantee == "support_office"
                )
            ):
                session.add(
                    RequestGrant(
                        request_id=req.id, grantee="support_office", granted_by_label="system"
                    )
                )
            timeline.notify_users(
                session,
                timeline.support_office(session),
                req,
                "escalation.support_office",
                f"{req.reference}: {code} did not respond after {req.max_escalations} alerts",
                req.title,
                urgent=True,
            )
            timeline.record(
                session,
                SYSTEM,
                req,
                "addressee.no_response",
                f"No response from {code}; support office alerted",
                unit_id=a.unit_id,
                object_type="addressee",
                object_id=a.id,
                pinned=True,
                at=now,
            )
    session.flush()
    return len(pairs)


def lapse_due(session: Session, now: datetime) -> int:
    rows = session.scalars(
        _claim(
            session,
            select(AssistanceRequest)
            .where(AssistanceRequest.status.in_(LAPSABLE), AssistanceRequest.lapse_at <= now)
            .limit(BATCH),
        )
    ).all()
    for req in rows:
        service.lapse(session, SYSTEM, req)
    return len(rows)


def _claim_due_email(session: Session, now: datetime) -> Notification | None:
    return session.scalars(
        _claim(
            session,
            select(Notification)
            .where(Notification.email_state == "pending", Notification.email_next_at <= now)
            .order_by(Notification.urgent.desc(), Notification.id)
            .limit(1),
        )
    ).first()


def send_email(settings: Settings, n: Notification) -> None:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = n.email_to
    msg["Subject"] = n.title
    if n.urgent:
        msg["Importance"] = "high"
    link = f"{settings.base_url.rstrip('/')}{n.link}" if n.link else ""
    # Exercise traffic says so at the top of the body too, as exercise messages do.
    banner = "EXERCISE EXERCISE EXERCISE\n\n" if n.exercise else ""
    msg.set_content(f"{banner}{n.body}\n\n{link}\n".strip() + "\n")
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(msg)


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` failed ones: 30 s, 1, 2, 4, 8 minutes."""
    return timedelta(seconds=30 * 2 ** (attempts - 1))


def deliver_one(session: Session, now: datetime, settings: Settings) -> bool | None:
    """Send the most urgent due e-mail. Returns None when nothing is due, else whether it went.

    A send that fails is retried with back-off and parked as ``failed`` after
    ``EMAIL_MAX_ATTEMPTS`` (visible on the row and in the notification list, never dropped).
    """
    n = _claim_due_email(session, now)
    if n is None:
        return None
    try:
        send_email(settings, n)
    except Exception as exc:  # any failure of this message is recorded on it, never raised:
        # raising would roll back the transaction and hide the attempt.
        n.email_attempts += 1
        n.email_error = f"{type(exc).__name__}: {exc}"[:500]
        if n.email_attempts >= EMAIL_MAX_ATTEMPTS:
            n.email_state = "failed"
            n.email_next_at = None
            log.error("e-mail %s to %s parked after %s tries", n.id, n.email_to, n.email_attempts)
        else:
            n.email_next_at = now + backoff(n.email_attempts)
            log.warning("e-mail %s to %s failed: %s", n.id, n.email_to, n.email_error)
        session.flush()
        return False
    n.email_state = "sent"
    n.email_attempts += 1
    n.email_error = ""
    n.email_next_at = None
    session.flush()
    return True


def deliver_emails(
    unit_of_work: Callable[[], AbstractContextManager[Session]],
    now: datetime,
    settings: Settings,
    *,
    limit: int = BATCH,
) -> int:
    """Send due e-mail, one message per transaction: a message is marked sent in the same
    commit that follows its send, so a crash or a failure of another message never causes a
    message that went out to be sent again (at most the one in flight at a crash)."""
    if not settings.smtp_host:
        return 0
    sent = 0
    for _ in range(limit):
        with unit_of_work() as session:
            went = deliver_one(session, now, settings)
        if went is None:
            break
        sent += went
    return sent


def tick(
    unit_of_work: Callable[[], AbstractContextManager[Session]],
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> dict[str, int]:
    """One pass of every step, each in its own transaction."""
    settings = settings or get_settings()
    at = now or utcnow()
    done = {}
    with unit_of_work() as session:
        done["escalated"] = escalate_due(session, at)
    with unit_of_work() as session:
        done["lapsed"] = lapse_due(session, at)
    with unit_of_work() as session:
        from atlaslink.equipment import tasks as equipment_tasks

        done.update(equipment_tasks.tick(session, at))
    done["emails"] = deliver_emails(unit_of_work, at, settings)
    # Standard messages to partners (outbox written with the events; messages/tasks.py).
    done["messages"] = message_tasks.deliver_messages(unit_of_work, now, settings)
    return done


async def run_forever(
    unit_of_work: Callable[[], AbstractContextManager[Session]], interval: float
) -> None:
    """The in-server loop (``atlaslink serve``); ``atlaslink worker`` runs the same ticks."""
    while True:
        try:
            await asyncio.to_thread(tick, unit_of_work)
        except Exception:  # a failed tick must not stop the loop; the next one retries
            log.exception("background tick failed")
        await asyncio.sleep(interval)
