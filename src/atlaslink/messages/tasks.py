"""Delivering the outbox, after the commit of the events that wrote it.

Each pass claims a batch of due rows (on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several
workers share the work; SQLite serialises writers), sends them and records the outcome in
the same transaction. A crash or kill mid-batch rolls the batch back: those rows are still
pending and go again at the next pass. So every message is delivered at least once; a
receiver de-duplicates by MessageID (``X-Atlaslink-Message-Id``). A failure is retried with
exponential back-off (state in the database, so restarts keep the schedule); after
``ATLASLINK_DELIVERY_MAX_ATTEMPTS`` the row is parked: visible in the outbox, on the page and
by CLI, retried only by hand.

HTTP delivery: ``POST`` of the XML with
``X-Atlaslink-Timestamp`` (Unix seconds), ``X-Atlaslink-Signature: sha256=<hex>`` where the
hex is HMAC-SHA256 with the endpoint's secret over ``<timestamp>.<body>``, and
``X-Atlaslink-Message-Id``. Any 2xx is a delivery. A drop directory receives
``<message id>.xml`` written atomically (temporary file, then rename).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.config import Settings, get_settings
from atlaslink.models import DeliveryAttempt, OutboxMessage, PartnerEndpoint, utcnow

log = logging.getLogger(__name__)

UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, max_skew: int = 300
) -> bool:
    """What a receiver checks (used by the tests' receiver; partners do the same)."""
    try:
        skew = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return skew <= max_skew and hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Wait after ``attempts`` failed tries: base, 2x, 4x, … capped at one hour."""
    seconds = settings.delivery_backoff_seconds * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, 3600))


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""


def _send_http(client: httpx.Client, endpoint: PartnerEndpoint, m: OutboxMessage) -> Outcome:
    body = m.body.encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/xml; charset=utf-8",
        "X-Atlaslink-Message-Id": m.message_id,
        "X-Atlaslink-Message-Type": m.message_type,
        "X-Atlaslink-Timestamp": ts,
        "X-Atlaslink-Signature": sign(endpoint.secret, ts, body),
        "X-Atlaslink-Delivery": f"{m.id}.{m.attempts + 1}",
    }
    try:
        r = client.post(endpoint.target, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= r.status_code < 300:
        return Outcome(True, r.status_code)
    return Outcome(False, r.status_code, f"HTTP {r.status_code}: {r.text[:300]}")


def _send_directory(endpoint: PartnerEndpoint, m: OutboxMessage) -> Outcome:
    folder = Path(endpoint.target)
    name = UNSAFE_NAME.sub("_", m.message_id)[:200] + ".xml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(m.body, encoding="utf-8")
        os.replace(tmp, folder / name)
    except OSError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    return Outcome(True)


def send(client: httpx.Client, endpoint: PartnerEndpoint, m: OutboxMessage) -> Outcome:
    if endpoint.kind == "directory":
        return _send_directory(endpoint, m)
    return _send_http(client, endpoint, m)


def _claim(session: Session, now: datetime, limit: int) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.state == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def deliver_batch(
    session: Session, client: httpx.Client, now: datetime, settings: Settings, limit: int
) -> tuple[int, int]:
    """Send one batch of due messages; returns (claimed, delivered)."""
    rows = _claim(session, now, limit)
    endpoints = {
        e.id: e
        for e in session.scalars(
            select(PartnerEndpoint).where(PartnerEndpoint.id.in_({m.endpoint_id for m in rows}))
        )
    }
    delivered = 0
    for m in rows:
        endpoint = endpoints.get(m.endpoint_id)
        started = time.monotonic()
        if endpoint is None or not endpoint.active:
            # Held while its endpoint is off: back in line when it is enabled again.
            m.next_attempt_at = now + backoff(settings, 1)
            continue
        outcome = send(client, endpoint, m)
        m.attempts += 1
        session.add(
            DeliveryAttempt(
                outbox_id=m.id,
                at=utcnow(),
                ok=outcome.ok,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
        )
        if outcome.ok:
            m.state = "sent"
            m.delivered_at = utcnow()
            m.next_attempt_at = None
            m.last_error = ""
            delivered += 1
        elif m.attempts >= settings.delivery_max_attempts:
            m.state = "parked"
            m.next_attempt_at = None
            m.last_error = outcome.error
            log.error(
                "message %s to endpoint %s parked: %s", m.message_id, m.endpoint_id, outcome.error
            )
        else:
            m.next_attempt_at = now + backoff(settings, m.attempts)
            m.last_error = outcome.error
            log.warning(
                "message %s to endpoint %s failed: %s", m.message_id, m.endpoint_id, outcome.error
            )
    session.flush()
    return len(rows), delivered


def deliver_messages(
    unit_of_work: Callable[[], AbstractContextManager[Session]],
    now: datetime | None = None,
    settings: Settings | None = None,
    *,
    max_batches: int = 50,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Deliver what is due, one transaction per batch; returns how many were delivered."""
    settings = settings or get_settings()
    delivered = 0
    with httpx.Client(timeout=settings.delivery_timeout_seconds) as client:
        for _ in range(max_batches):
            at = now or utcnow()
            with unit_of_work() as session:
                claimed, went = deliver_batch(
                    session, client, at, settings, settings.delivery_batch
                )
            delivered += went
            if progress is not None:
                progress(went)
            if claimed < settings.delivery_batch:
                break
    return delivered
