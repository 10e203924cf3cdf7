"""Read events in groups (PostgreSQL): concurrent listings each get exactly one read event in a
chain that verifies; a batch that fails fails every request waiting on it, which then shows
nothing. Appending several events at once is checked on both databases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from atlaslink.app import create_app
from atlaslink.audit import service as audit
from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.models import AuditEvent, AuditHead, User
from atlaslink.registry import schemas, service
from atlaslink.sharing.policy import Audience, FieldGroup
from tests.conftest import create_database, is_postgres, load_demo, unit_id

TARGET = "NL-REIGER"
VIEWER = "support"  # a support office: sees what TARGET shares with support offices only

postgres_only = pytest.mark.skipif(
    not is_postgres(), reason="group commit is for PostgreSQL; SQLite serialises writers"
)


@dataclass
class Served:
    url: str
    engine: Engine
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A database of its own, committed to for real, as a server does."""
    url, drop = create_database(tmp_path_factory.mktemp("batch"), "batch")
    engine = make_engine(url)
    try:
        load_demo(engine)
        with Session(engine) as s:
            rules = {g: schemas.SharingRuleIO(audience=Audience.SUPPORT_OFFICE) for g in FieldGroup}
            service.set_sharing(
                s, SYSTEM, unit_id(s, TARGET), schemas.SharingAgreementIO(rules=rules)
            )
            user = s.scalar(select(User).where(User.username == VIEWER))
            assert user is not None
            token = auth.create_token(s, user, "test").token
            s.commit()
        yield Served(url, engine, token)
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def _last_seq(engine: Engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(AuditHead.seq)) or 0


async def _list_at_once(
    app: FastAPI, served: Served, request_ids: list[str]
) -> list[httpx.Response]:
    """List the directory once per request id, all at the same time. The chain's head is held
    by another transaction until every read event is waiting, so that they are recorded in
    two batches: the first (waiting for the head) and all the others."""
    batcher = app.state.read_batcher
    blocker = served.engine.connect()
    await asyncio.to_thread(
        blocker.execute, text("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            calls = [
                asyncio.create_task(
                    client.get(
                        "/api/v1/units",
                        params={"per_page": 100},
                        headers={"Authorization": f"Bearer {served.token}", "X-Request-ID": rid},
                    )
                )
                for rid in request_ids
            ]
            deadline = time.monotonic() + 30
            while batcher.waiting < len(request_ids) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert batcher.waiting == len(request_ids)
            await asyncio.to_thread(blocker.rollback)
            return await asyncio.gather(*calls)
    finally:
        await asyncio.to_thread(blocker.close)


def _warm_up(app: FastAPI, served: Served) -> None:
    """A first listing: it also notes the token's use (a write), so its read event goes into
    its own transaction, the path a request that changes something takes."""

    async def once() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(
                "/api/v1/units", headers={"Authorization": f"Bearer {served.token}"}
            )

    before = _last_seq(served.engine)
    assert asyncio.run(once()).status_code == 200
    assert _last_seq(served.engine) == before + 1


def _verify_with_the_cli(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from atlaslink.cli import app; app()", "audit", "verify"],
        env={**os.environ, "ATLASLINK_DATABASE_URL": url},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


@postgres_only
def test_concurrent_listings_each_record_one_read_event_in_order(served: Served) -> None:
    app = create_app(served.engine, group_reads=True)
    assert app.state.read_batcher is not None
    _warm_up(app, served)
    before = _last_seq(served.engine)
    rids = [f"batch-read-{n:02d}" for n in range(12)]

    responses = asyncio.run(_list_at_once(app, served, rids))

    assert [r.status_code for r in responses] == [200] * len(rids)
    assert all(TARGET in r.text for r in responses)
    with Session(served.engine) as s:
        rows = s.execute(
            select(AuditEvent, text("audit_events.xmin::text"))
            .where(AuditEvent.seq > before)
            .order_by(AuditEvent.id)
        ).all()
    events = [e for e, _ in rows]
    # Exactly one read event per request, no other event, and nothing lost.
    assert sorted(e.request_id or "" for e in events) == rids
    assert {(e.action, e.actor_label) for e in events} == {("read", VIEWER)}
    # In order: sequence numbers follow the insertion order without a gap, and so do the times.
    assert [e.seq for e in events] == list(range(before + 1, before + 1 + len(rids)))
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    # Two transactions: the first batch, which waited for the head, and all the others.
    assert len({xmin for _, xmin in rows}) == 2
    result = _verify_with_the_cli(served.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout


@postgres_only
def test_a_failed_batch_fails_every_waiting_request_and_shows_nothing(served: Served) -> None:
    app = create_app(served.engine, group_reads=True)
    _warm_up(app, served)
    with served.engine.begin() as c:
        c.execute(
            text(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'the audit log is out of space'; END $$"
            )
        )
        c.execute(
            text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                "FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit()"
            )
        )
    before = _last_seq(served.engine)
    try:
        responses = asyncio.run(_list_at_once(app, served, [f"batch-fail-{n}" for n in range(6)]))
    finally:
        with served.engine.begin() as c:
            c.execute(text("DROP TRIGGER refuse_audit ON audit_events"))
            c.execute(text("DROP FUNCTION refuse_audit()"))

    for r in responses:
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["status"] == 503 and body["request_id"] == r.headers["x-request-id"]
        assert "items" not in body and TARGET not in r.text
    assert _last_seq(served.engine) == before
    # The next batch is written again.
    after = asyncio.run(_list_at_once(app, served, ["batch-again-1", "batch-again-2"]))
    assert [r.status_code for r in after] == [200, 200]
    assert _last_seq(served.engine) == before + 2
    assert _verify_with_the_cli(served.url).returncode == 0


def test_several_events_appended_at_once_form_one_chain(db: Session) -> None:
    """``append_events`` (one head lock, one INSERT) on either database, between appends of
    the other kinds; tampering with one of its events is named."""
    audit.append(db, SYSTEM, "test.before", "unit", 1)
    events = []
    for n in range(3):
        ledger = audit.ReadLedger(actor=SYSTEM)
        ledger.note("unit", n + 1, n + 1, ["contacts"])
        event = audit.take_read_event(ledger)
        assert event is not None and not ledger.objects
        events.append(event)
    audit.append_events(db.connection(), events)
    audit.append(db, SYSTEM, "test.after", "unit", 1)
    db.flush()
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    stored = db.scalars(
        select(AuditEvent).where(AuditEvent.seq.in_(seqs)).order_by(AuditEvent.seq)
    ).all()
    assert [(e.action, e.before, e.after["objects"][0]["id"]) for e in stored] == [  # type: ignore[index]
        ("read", None, "1"),
        ("read", None, "2"),
        ("read", None, "3"),
    ]
    assert audit.verify(db).ok
    if is_postgres():
        db.execute(text("DROP TRIGGER audit_events_no_change ON audit_events"))
    else:
        db.execute(text("DROP TRIGGER audit_events_no_update"))
    db.execute(
        text("UPDATE audit_events SET actor_label = 'mallory' WHERE seq = :s"), {"s": seqs[1]}
    )
    db.expire_all()
    result = audit.verify(db)
    assert not result.ok and result.first_bad_seq == seqs[1]
