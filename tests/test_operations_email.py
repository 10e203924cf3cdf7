"""E-mail of notifications, delivered by the background job to a local SMTP sink (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.config import Settings
from atlaslink.models import Notification, UnitContact, User, UserPreferences, utcnow
from atlaslink.operations import tasks
from tests.conftest import unit_id
from tests.test_operations_flow import created

BASE = "https://atlas.example.invalid"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    """Collects messages; ``refuse`` (an SMTP reply) refuses every recipient."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def sink() -> Iterator[tuple[Sink, Settings]]:
    handler = Sink()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=port, base_url=BASE, mail_from="atlas@example.invalid"
    )
    try:
        yield handler, settings
    finally:
        controller.stop()


@pytest.fixture
def uow(factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    """The job's unit of work, on the test's connection (each commit is a savepoint)."""

    @contextmanager
    def make() -> Iterator[Session]:
        with factory() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    return make


def _user(db: Session, username: str) -> User:
    u = db.scalar(select(User).where(User.username == username))
    assert u is not None
    return u


def _rows(db: Session, request_id: int, **where: Any) -> list[Notification]:
    db.expire_all()
    stmt = select(Notification).where(Notification.request_id == request_id)
    for k, v in where.items():
        stmt = stmt.where(getattr(Notification, k) == v)
    return list(db.scalars(stmt.order_by(Notification.id)))


def _quiet_now(db: Session, user: User) -> datetime:
    """Put the user in quiet hours around the current time; returns when they end."""
    now = utcnow()
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    db.add(UserPreferences(user_id=user.id, quiet_start=f"{start:%H:%M}", quiet_end=f"{end:%H:%M}"))
    db.flush()
    return end.replace(second=0, microsecond=0)


def test_a_new_request_emails_the_units_responders(
    api_as: Any, db: Session, sink: tuple[Sink, Settings], uow: Any
) -> None:
    box, settings = sink
    de = api_as("duty.de")
    rid = created(de, submit=True)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    done = tasks.tick(uow, settings=settings)
    assert done["emails"] >= 2
    for username in ("duty.at", "commander.at"):
        mails = box.to(_user(db, username).email)
        assert len(mails) == 1, username
        m = mails[0]
        assert m["Subject"].startswith("[EXERCISE] Request for assistance AR-")
        assert m["From"] == "atlas@example.invalid" and m["Importance"] == "high"
        text = m.get_content()
        assert text.startswith("EXERCISE EXERCISE EXERCISE")
        assert f"{BASE}/requests/{rid}" in text
    # Nobody else's address, and nothing for the requesting side (it was not told anything).
    assert not box.to(_user(db, "duty.de").email)
    assert {n.email_state for n in _rows(db, rid)} == {"sent"}
    # Sent once: later passes (before the acknowledgement deadline) find nothing due.
    count = len(box.messages)
    tasks.tick(uow, settings=settings, now=utcnow() + timedelta(minutes=5))
    tasks.tick(uow, settings=settings, now=utcnow() + timedelta(minutes=9))
    assert len(box.messages) == count


def test_an_actual_request_is_not_marked_exercise(
    api_as: Any, db: Session, sink: tuple[Sink, Settings], uow: Any
) -> None:
    box, settings = sink
    de = api_as("duty.de")
    rid = created(de, submit=True, exercise=False)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    tasks.tick(uow, settings=settings)
    (m,) = box.to(_user(db, "duty.at").email)
    assert "EXERCISE" not in m["Subject"] + m.get_content()


def test_escalations_email_the_next_24_7_contact(
    api_as: Any, db: Session, sink: tuple[Sink, Settings], uow: Any
) -> None:
    box, settings = sink
    de = api_as("duty.de")
    rid = created(de, submit=True, ack_minutes=10)["id"]
    at = unit_id(db, "AT-ADLER")
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [at]})
    contacts = list(
        db.scalars(select(UnitContact).where(UnitContact.unit_id == at).order_by(UnitContact.id))
    )
    start = utcnow()
    tasks.tick(uow, settings=settings, now=start)
    box.messages.clear()
    named = []
    for k in (1, 2):  # the ladder's two alerts (ATLASLINK_MAX_ESCALATIONS)
        tasks.tick(uow, settings=settings, now=start + timedelta(minutes=11 * k))
        contact = contacts[(k - 1) % len(contacts)]
        named.append(contact)
        # Each alert reaches the unit's responders again, urgently…
        for username in ("duty.at", "commander.at"):
            subjects = [m["Subject"] for m in box.to(_user(db, username).email)]
            assert f"[EXERCISE] ESCALATION {k}: " in " ".join(subjects)
    # …and the contact point it names, when that contact is an e-mail address.
    addresses = [c for c in named if c.kind == "email"]
    assert addresses, "the demo units list an operations mailbox second"
    for c in addresses:
        (m,) = box.to(c.value)
        assert m["Subject"].startswith("[EXERCISE] ESCALATION ")
        assert f"{BASE}/requests/{rid}" in m.get_content()
    assert all(n.email_state == "sent" for n in _rows(db, rid, user_id=None))


def test_quiet_hours_delay_routine_mail_but_never_urgent_mail(
    api_as: Any, db: Session, sink: tuple[Sink, Settings], uow: Any
) -> None:
    box, settings = sink
    duty_de, duty_at = _user(db, "duty.de"), _user(db, "duty.at")
    quiet_end = _quiet_now(db, duty_de)
    _quiet_now(db, duty_at)
    de, at = api_as("duty.de"), api_as("duty.at")
    rid = created(de, submit=True)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    tasks.tick(uow, settings=settings)
    # The new request is urgent: it reaches duty.at in its quiet hours at once.
    assert len(box.to(duty_at.email)) == 1
    r = at.post(
        f"/api/v1/requests/{rid}/answers",
        json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 2}]},
    )
    assert r.status_code == 201, r.text
    tasks.tick(uow, settings=settings)
    # The offer is routine news for the requesting side: commander.de gets it now, duty.de
    # (in quiet hours) when they end.
    assert any("offers assistance" in m["Subject"] for m in box.to(_user(db, "commander.de").email))
    assert box.to(duty_de.email) == []
    (held,) = _rows(db, rid, user_id=duty_de.id, kind="answer.offer")
    assert held.email_state == "pending" and held.email_next_at == quiet_end
    tasks.tick(uow, settings=settings, now=quiet_end - timedelta(seconds=1))
    assert box.to(duty_de.email) == []
    tasks.tick(uow, settings=settings, now=quiet_end)
    (m,) = box.to(duty_de.email)
    assert "offers assistance" in m["Subject"]


def test_a_refusing_server_is_retried_with_backoff_then_parked_visibly(
    api_as: Any, db: Session, sink: tuple[Sink, Settings], uow: Any
) -> None:
    box, settings = sink
    box.refuse = "550 5.1.1 Mailbox unavailable"
    de = api_as("duty.de")
    rid = created(de, submit=True, ack_minutes=60)["id"]  # no escalation during the retries
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    duty_at = _user(db, "duty.at")
    now = utcnow()
    waits = []
    for attempt in range(1, tasks.EMAIL_MAX_ATTEMPTS + 1):
        assert tasks.tick(uow, settings=settings, now=now)["emails"] == 0
        (n,) = _rows(db, rid, user_id=duty_at.id)
        assert n.email_attempts == attempt
        assert "550" in n.email_error and "Mailbox unavailable" in n.email_error
        if attempt < tasks.EMAIL_MAX_ATTEMPTS:
            assert n.email_state == "pending" and n.email_next_at is not None
            wait = n.email_next_at - now
            waits.append(wait.total_seconds())
            # Not retried before its time.
            tasks.tick(uow, settings=settings, now=n.email_next_at - timedelta(seconds=1))
            assert _rows(db, rid, user_id=duty_at.id)[0].email_attempts == attempt
            now = n.email_next_at
    assert waits == [30, 60, 120, 240, 480]
    (n,) = _rows(db, rid, user_id=duty_at.id)
    assert n.email_state == "failed" and n.email_next_at is None
    # Parked: the server recovers, but nothing is sent any more…
    box.refuse = None
    tasks.tick(uow, settings=settings, now=now + timedelta(minutes=30))
    assert box.to(duty_at.email) == []
    # …and the user sees on the notification that its e-mail failed.
    listed = api_as("duty.at").get("/api/v1/notifications").json()["items"]
    mine = [i for i in listed if i["id"] == n.id]
    assert mine and mine[0]["email_state"] == "failed" and mine[0]["email_attempts"] == 6


def test_a_server_that_is_down_is_retried_and_the_mail_goes_once_it_is_up(
    api_as: Any, db: Session, sink: tuple[Sink, Settings], uow: Any
) -> None:
    box, settings = sink
    down = settings.model_copy(update={"smtp_port": _free_port()})  # nothing listens there
    de = api_as("duty.de")
    rid = created(de, submit=True)["id"]
    de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]})
    duty_at = _user(db, "duty.at")
    now = utcnow()
    tasks.tick(uow, settings=down, now=now)
    (n,) = _rows(db, rid, user_id=duty_at.id)
    assert n.email_state == "pending" and n.email_attempts == 1
    assert "Connection" in n.email_error or "refused" in n.email_error.lower()
    assert n.email_next_at == now + timedelta(seconds=30)
    tasks.tick(uow, settings=settings, now=now + timedelta(seconds=30))
    assert len(box.to(duty_at.email)) == 1
    (n,) = _rows(db, rid, user_id=duty_at.id)
    assert n.email_state == "sent" and n.email_attempts == 2 and n.email_error == ""


def test_a_failure_never_causes_a_sent_message_to_go_twice(
    api_as: Any,
    db: Session,
    sink: tuple[Sink, Settings],
    uow: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One message breaks unexpectedly in the middle of a pass: those sent before it stay
    sent (each is committed with its send), the broken one is retried, none goes twice."""
    box, settings = sink
    de = api_as("duty.de")
    rid = created(de, submit=True)["id"]
    de.post(
        f"/api/v1/requests/{rid}/addressees",
        json={"unit_ids": [unit_id(db, "AT-ADLER"), unit_id(db, "NL-REIGER")]},
    )
    real = tasks.send_email
    calls = {"n": 0}

    def flaky(s: Settings, n: Notification) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the mail library broke")
        real(s, n)

    monkeypatch.setattr(tasks, "send_email", flaky)
    now = utcnow()
    first = tasks.tick(uow, settings=settings, now=now)["emails"]
    rows = _rows(db, rid)
    assert first == len(rows) - 1 == len(box.messages)
    broken = [n for n in rows if n.email_state == "pending"]
    assert len(broken) == 1 and "RuntimeError" in broken[0].email_error
    tasks.tick(uow, settings=settings, now=now + timedelta(minutes=1))
    assert len(box.messages) == len(rows)
    assert sorted(str(m["To"]) for m in box.messages) == sorted(n.email_to for n in rows)
    assert {n.email_state for n in _rows(db, rid)} == {"sent"}
