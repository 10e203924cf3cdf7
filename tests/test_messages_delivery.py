"""Delivery of the outbox to a local receiver: signatures, failures, back-off, parking, a drop
directory, and a worker killed mid-stream losing nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bench.receiver import Receiver
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.config import get_settings
from atlaslink.db import make_engine
from atlaslink.messages import schemas, service
from atlaslink.messages import tasks as delivery
from atlaslink.models import DeliveryAttempt, OutboxMessage, Partner, PartnerEndpoint, utcnow
from tests.conftest import create_database, load_demo, unit_id
from tests.messages_support import ok, principal, request_body

SECRET = "receiver-secret-1"


def _uow(factory: sessionmaker[Session]) -> Any:
    @contextmanager
    def uow() -> Iterator[Session]:
        with factory() as s, s.begin():
            yield s

    return uow


def _partner(db: Session, target: str, kind: str = "http") -> None:
    support = principal(db, "support")
    service.create_partner(
        db,
        support,
        schemas.PartnerCreate(
            code="at-adler",
            name="ADLER command",
            sender_id="at.adler.command",
            unit_code="AT-ADLER",
            topics=["requests", "answers", "deployments", "alerts"],
        ),
    )
    service.add_endpoint(
        db, support, "at-adler", schemas.EndpointCreate(kind=kind, target=target, secret=SECRET)
    )
    db.commit()


def _operation(api_as: Any, db: Session) -> int:
    de = api_as("duty.de")
    rid = ok(de.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
    ok(de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}))
    ok(
        api_as("duty.at").post(
            f"/api/v1/requests/{rid}/answers",
            json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 2}]},
        ),
        201,
    )
    return rid


def test_signed_delivery_after_commit(api_as: Any, db: Session, factory: Any) -> None:
    with Receiver(SECRET) as rx:
        _partner(db, rx.url)
        _operation(api_as, db)
        rows = db.scalars(select(OutboxMessage)).all()
        assert rows and all(r.state == "pending" for r in rows)
        sent = delivery.deliver_messages(_uow(factory))
        assert sent == len(rows)
        assert rx.bad_signatures == 0
        assert set(rx.received) == {r.message_id for r in rows}
        assert all(n == 1 for n in rx.received.values())
        h = rx.headers[0]
        assert h["Content-Type"].startswith("application/xml")
        assert h["X-Atlaslink-Signature"].startswith("sha256=")
    db.expire_all()
    assert {r.state for r in db.scalars(select(OutboxMessage))} == {"sent"}


def test_a_wrong_secret_is_refused_by_the_receiver(api_as: Any, db: Session, factory: Any) -> None:
    with Receiver("another-secret") as rx:
        _partner(db, rx.url)
        _operation(api_as, db)
        assert delivery.deliver_messages(_uow(factory)) == 0
        assert rx.bad_signatures > 0 and not rx.received
    db.expire_all()
    row = db.scalars(select(OutboxMessage)).first()
    assert row is not None and row.state == "pending" and "HTTP 401" in row.last_error


def test_failures_back_off_then_succeed(api_as: Any, db: Session, factory: Any) -> None:
    with Receiver(SECRET, fail_first=1) as rx:
        _partner(db, rx.url)
        de = api_as("duty.de")
        rid = ok(de.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
        ok(
            de.post(
                f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}
            )
        )
        now = utcnow()
        assert delivery.deliver_messages(_uow(factory), now) == 0
        db.expire_all()
        row = db.scalars(select(OutboxMessage)).one()
        assert row.attempts == 1 and row.state == "pending"
        wait = timedelta(seconds=get_settings().delivery_backoff_seconds)
        assert row.next_attempt_at is not None and row.next_attempt_at >= now + wait
        # Not yet due: nothing is sent early.
        assert delivery.deliver_messages(_uow(factory), now + wait / 2) == 0
        assert delivery.deliver_messages(_uow(factory), now + wait) == 1
        assert rx.received[row.message_id] == 1
    log = db.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
    assert [a.ok for a in log] == [False, True] and log[0].status_code == 503


def test_a_message_that_keeps_failing_is_parked_visible_and_retried_by_hand(
    api_as: Any, db: Session, factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "delivery_max_attempts", 3)
    with Receiver(SECRET, always_fail=True) as rx:
        _partner(db, rx.url)
        de = api_as("duty.de")
        rid = ok(de.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
        ok(
            de.post(
                f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}
            )
        )
        at = utcnow()
        for _ in range(3):
            delivery.deliver_messages(_uow(factory), at)
            at += timedelta(hours=2)
        rx.always_fail = False
        assert delivery.deliver_messages(_uow(factory), at) == 0  # parked: not retried alone
        support = api_as("support")
        parked = ok(support.get("/api/v1/outbox", params={"state": "parked"}))
        assert parked["total"] == 1 and "HTTP 503" in parked["items"][0]["last_error"]
        log = ok(support.get("/api/v1/delivery-attempts", params={"failed": True}))
        assert log["total"] == 3
        assert api_as("duty.de").get("/api/v1/outbox").status_code == 403
        oid = parked["items"][0]["id"]
        assert ok(support.post(f"/api/v1/outbox/{oid}/retry"))["state"] == "pending"
        assert delivery.deliver_messages(_uow(factory)) == 1
        assert sum(rx.received.values()) == 1


def test_drop_directory(api_as: Any, db: Session, factory: Any, tmp_path: Path) -> None:
    _partner(db, str(tmp_path / "drop"), kind="directory")
    _operation(api_as, db)
    n = delivery.deliver_messages(_uow(factory))
    files = sorted((tmp_path / "drop").glob("*.xml"))
    assert n == len(files) >= 2
    assert files[0].read_text().startswith("<?xml")


def test_killing_the_worker_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL a worker while it delivers 400 messages to a slow receiver; a new worker
    finishes: every MessageID arrives, duplicates only from the batch in flight."""
    url, drop = create_database(tmp_path, "delivery")
    engine = make_engine(url)
    total = 400
    try:
        load_demo(engine)
        with Receiver(SECRET, delay=0.005) as rx:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            with factory() as s:
                _partner(s, rx.url)
                partner = s.scalars(select(Partner)).one()
                endpoint = s.scalars(select(PartnerEndpoint)).one()
                for i in range(total):
                    s.add(
                        OutboxMessage(
                            message_id=f"test:{i}",
                            message_type="RequestResource",
                            partner_id=partner.id,
                            endpoint_id=endpoint.id,
                            body=f"<x>{i}</x>",
                            next_attempt_at=utcnow(),
                        )
                    )
                s.commit()
            env = {**os.environ, "ATLASLINK_DATABASE_URL": url, "ATLASLINK_DELIVERY_BATCH": "25"}
            proc = subprocess.Popen(
                [sys.executable, "-m", "atlaslink.cli", "worker", "--interval", "0.1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while sum(rx.received.values()) < total // 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            got_before = sum(rx.received.values())
            assert 0 < got_before < total, "the kill did not land mid-stream"
            done = subprocess.run(
                [sys.executable, "-m", "atlaslink.cli", "worker", "--once"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert set(rx.received) == {f"test:{i}" for i in range(total)}
            duplicates = sum(rx.received.values()) - total
            assert duplicates <= 25  # at most the batch that was in flight
        with factory() as s:
            left = s.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state != "sent")
            )
            assert left == 0
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]
