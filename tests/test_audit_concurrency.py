"""Concurrent listings that read restricted fields each append exactly one read event, and the
chain they form verifies (on PostgreSQL the appends queue on the chain's head row); a read whose
durability cannot be confirmed shows nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from atlaslink.app import create_app
from atlaslink.audit import service as audit
from atlaslink.audit.service import ReadLedger
from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM, Principal
from atlaslink.db import END_SENT, make_engine
from atlaslink.models import AuditEvent, AuditHead, User
from atlaslink.registry import schemas, service
from atlaslink.sharing.policy import Audience, FieldGroup
from tests.conftest import create_database, is_postgres, load_demo, unit_id

TARGET = "NL-REIGER"
VIEWER = "support"  # a support office: sees what TARGET shares with support offices only


@dataclass
class Served:
    url: str
    engine: Engine
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A database of its own, committed to for real, as a server does."""
    url, drop = create_database(tmp_path_factory.mktemp("reads"), "reads")
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
    app: FastAPI, served: Served, request_ids: list[str], *, hold_head: bool = True
) -> list[httpx.Response]:
    """List the directory once per request id, all at the same time. On PostgreSQL another
    transaction holds the chain's head until every request waits for it, so that all their
    appends queue on the lock at once."""
    blocker = served.engine.connect() if is_postgres() and hold_head else None
    if blocker is not None:
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
            if blocker is not None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    waiting = await asyncio.to_thread(_waiting_for_locks, served.engine)
                    if waiting >= len(request_ids):
                        break
                    await asyncio.sleep(0.02)
                assert waiting >= len(request_ids), "the requests did not all wait on the head"
                await asyncio.to_thread(blocker.rollback)
            return await asyncio.gather(*calls)
    finally:
        if blocker is not None:
            await asyncio.to_thread(blocker.close)


def _waiting_for_locks(engine: Engine) -> int:
    with engine.connect() as c:
        return int(
            c.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


def test_concurrent_listings_each_record_one_read_event_in_one_chain(served: Served) -> None:
    app = create_app(served.engine)
    # A first listing notes the token's use (a write of its own), so that the listings below
    # write nothing but their read events.
    asyncio.run(_list_at_once(app, served, ["warm-up"]))
    before = _last_seq(served.engine)
    rids = [f"read-at-once-{n:02d}" for n in range(8)]

    responses = asyncio.run(_list_at_once(app, served, rids))

    assert [r.status_code for r in responses] == [200] * len(rids)
    assert all(TARGET in r.text for r in responses)
    with Session(served.engine) as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.seq > before).order_by(AuditEvent.seq)
        ).all()
        reads = [e for e in events if e.action == "read"]
        # Exactly one read event per request, each naming the restricted unit, none lost.
        assert sorted(e.request_id or "" for e in reads) == rids
        assert {e.actor_label for e in reads} == {VIEWER}
        target = str(unit_id(s, TARGET))
        assert all(
            any(o["id"] == target for o in e.after["objects"])  # type: ignore[index]
            for e in reads
        )
    # The chain has no gap: every sequence number after `before` is there, once.
    assert [e.seq for e in events] == list(range(before + 1, before + 1 + len(events)))
    result = subprocess.run(
        [sys.executable, "-c", "from atlaslink.cli import app; app()", "audit", "verify"],
        env={**os.environ, "ATLASLINK_DATABASE_URL": served.url},
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact" in result.stdout


postgres_only = pytest.mark.skipif(not is_postgres(), reason="synchronous_commit is PostgreSQL's")


@dataclass
class Sent:
    """What ``audit.commit_with_reads`` sent in pipeline mode: the statements of each pipeline
    block (one block, one Sync at its end: one round trip), and any Sync asked for inside."""

    blocks: list[list[str]] = field(default_factory=list)
    syncs_inside: int = 0


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    out = Sent()
    execute, enter, sync = psycopg.Cursor.execute, psycopg.Pipeline.__enter__, psycopg.Pipeline.sync

    def recording(self, query, params=None, **kw):  # type: ignore[no-untyped-def]
        if self.connection._pipeline is not None:
            out.blocks[-1].append(str(query))
        return execute(self, query, params, **kw)

    def entering(self):  # type: ignore[no-untyped-def]
        out.blocks.append([])
        return enter(self)

    def syncing(self):  # type: ignore[no-untyped-def]
        out.syncs_inside += 1
        return sync(self)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    monkeypatch.setattr(psycopg.Pipeline, "__enter__", entering)
    monkeypatch.setattr(psycopg.Pipeline, "sync", syncing)
    return out


@postgres_only
def test_a_listing_appends_and_commits_its_read_event_in_one_round_trip(
    served: Served, sent: Sent
) -> None:
    """The append and the (durable) COMMIT go to the server together, whether the request
    wrote something else (here: noted the token's use) or not, so the chain's head is held
    for no more than the append and its commit."""
    app = create_app(served.engine)
    for rid, wrote in (("notes-the-token", True), ("reads-only", False)):
        if wrote:
            with served.engine.begin() as c:  # the next use of the token is noted: a write
                c.execute(text("UPDATE api_tokens SET last_used_at = NULL"))
        sent.blocks.clear()
        (response,) = asyncio.run(_list_at_once(app, served, [rid]))
        assert response.status_code == 200 and TARGET in response.text
        ((append, commit),) = sent.blocks  # one pipeline: the append, COMMIT, one Sync
        assert "INSERT INTO audit_events" in append and commit == "COMMIT"
        assert sent.syncs_inside == 0
        assert "synchronous_commit" not in append  # the default waits for the flush
        with Session(served.engine) as s:  # committed, seen by another session
            (last,) = s.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
            assert (last.action, last.request_id) == ("read", rid)


@postgres_only
def test_not_waiting_for_the_flush_can_be_chosen(served: Served, sent: Sent) -> None:
    actor = Principal(kind="user", label=VIEWER, user_id=None)
    ledger = ReadLedger(actor=actor, wait_for_flush=False)
    ledger.note("unit", 1, 1, ["contacts"])
    before = _last_seq(served.engine)
    with Session(served.engine) as db:
        db.execute(text("SELECT 1"))
        audit.commit_with_reads(db, ledger)
    ((guard, append, commit),) = sent.blocks
    assert guard == audit._ASYNC_IF_READ_ONLY and "INSERT INTO audit_events" in append
    assert commit == "COMMIT" and sent.syncs_inside == 0
    assert _last_seq(served.engine) == before + 1


@postgres_only
def test_a_read_that_cannot_be_recorded_shows_nothing(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the round trip with the read event fails, nothing of the transaction is kept and
    nothing of the page is sent: the answer is a problem document."""
    app = create_app(served.engine)
    before = _last_seq(served.engine)
    monkeypatch.setattr(audit, "_pg_append_pyformat", lambda dialect: "SELECT 1 / 0")
    (response,) = asyncio.run(_list_at_once(app, served, ["not-recorded"], hold_head=False))
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert TARGET not in response.text
    assert "Nothing was shown" in response.json()["detail"]  # not "your change": a page
    assert _last_seq(served.engine) == before


@contextlib.contextmanager
def _holding_the_head(engine: Engine, seconds: float) -> Iterator[None]:
    """Another transaction holds the chain's head, and lets go after ``seconds`` in a thread of
    its own (whatever the code under test waits for)."""
    blocker = engine.connect()
    blocker.execute(text("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE"))
    timer = threading.Timer(seconds, blocker.rollback)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        blocker.close()


@postgres_only
def test_the_listing_sends_its_end_ahead_and_waits_for_it_before_the_response(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing sends its read event and COMMIT before it serialises the page
    (``audit.send_end``), so the WAL flush runs meanwhile; the response still starts only once
    the read is committed. The chain's head is held for 3 s: while the page is
    serialised the append is already on the server, waiting for it; a response that started
    without waiting for the commit would find no event."""
    from atlaslink.registry import endpoints

    rid = "sent-ahead"
    waiting_when_serialised: list[int] = []
    plain_json = endpoints.plain_json

    def serialising(body):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 5
        while (waiting := _waiting_for_locks(served.engine)) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting_when_serialised.append(waiting)
        return plain_json(body)

    monkeypatch.setattr(endpoints, "plain_json", serialising)
    found_at_start: list[bool] = []
    inner = create_app(served.engine)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        async def checking(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                found_at_start.append(await asyncio.to_thread(_read_of, served.engine, rid))
            await send(message)

        await inner(scope, receive, checking)

    with _holding_the_head(served.engine, 3.0):
        (response,) = asyncio.run(_list_at_once(app, served, [rid], hold_head=False))  # type: ignore[arg-type]

    assert response.status_code == 200 and TARGET in response.text
    assert waiting_when_serialised == [1]  # the append was on the server before the page
    assert found_at_start == [True]


def _connection_is_clean(engine: Engine) -> None:
    """The pool's one connection is out of pipeline mode and takes statements again."""
    with engine.connect() as c:
        raw = c.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        assert raw.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
        assert END_SENT not in c.connection.info
        assert c.execute(text("SELECT 1")).scalar() == 1


@postgres_only
@pytest.mark.parametrize("failure", ["append", "append-answered-early", "after-send"])
def test_a_listing_that_fails_after_sending_its_end_leaves_a_clean_connection(
    served: Served, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """On one pooled connection: the append fails (409, nothing kept), whether its error comes
    back only at the response or already while the COMMIT is being sent; or the endpoint fails
    after the end was sent (500; the read was committed: the record errs on its side). Either
    way the connection goes back clean and the next listing is served and recorded."""
    from atlaslink.registry import endpoints

    engine = make_engine(served.url, pool_size=1, max_overflow=0)
    execute = psycopg.Cursor.execute

    def late_commit(self, query, params=None, **kw):  # type: ignore[no-untyped-def]
        if query == "COMMIT":
            time.sleep(0.2)  # the append's error is back before the COMMIT is sent
        return execute(self, query, params, **kw)

    try:
        app = create_app(engine)
        before = _last_seq(engine)
        with monkeypatch.context() as m:
            if failure.startswith("append"):
                m.setattr(audit, "_pg_append_pyformat", lambda dialect: "SELECT 1 / 0")
            if failure == "append-answered-early":
                m.setattr(psycopg.Cursor, "execute", late_commit)
            if failure == "after-send":
                m.setattr(endpoints, "plain_json", lambda body: 1 / 0)
            (failed,) = asyncio.run(
                _list_at_once(app, served, [f"fails-{failure}"], hold_head=False)
            )
        assert failed.status_code == (500 if failure == "after-send" else 409)
        assert TARGET not in failed.text
        assert _last_seq(engine) == before + (1 if failure == "after-send" else 0)
        _connection_is_clean(engine)
        (ok,) = asyncio.run(_list_at_once(app, served, [f"after-{failure}"], hold_head=False))
        assert ok.status_code == 200 and TARGET in ok.text
        assert _read_of(engine, f"after-{failure}")
        _connection_is_clean(engine)
    finally:
        engine.dispose()


def _read_of(engine: Engine, rid: str) -> bool:
    with Session(engine) as s:
        return s.scalar(select(AuditEvent.id).where(AuditEvent.request_id == rid)) is not None


@postgres_only
def test_after_the_end_is_sent_nothing_more_is_read_or_run_until_it_is_waited_for(
    served: Served,
) -> None:
    before = _last_seq(served.engine)
    with audit.read_ledger() as ledger, Session(served.engine) as db:
        ledger.actor = Principal(kind="user", label=VIEWER, user_id=None)
        db.execute(text("SELECT 1"))
        ledger.note("unit", 1, 1, ["contacts"])
        audit.send_end(db)
        assert ledger.sent is not None and ledger.sent.pending
        with pytest.raises(RuntimeError, match="after the request's end was sent"):
            db.execute(text("SELECT 2"))  # would run after that COMMIT, outside the request
        with pytest.raises(RuntimeError, match="after the request's record was sent"):
            ledger.note("unit", 2, 2, ["level"])  # would never be recorded
        ledger.sent.wait()
        assert not ledger.sent.pending
        assert db.execute(text("SELECT 3")).scalar() == 3  # the connection is free again
    assert _last_seq(served.engine) == before + 1


def test_where_the_end_cannot_be_sent_ahead_it_comes_at_the_response(served: Served) -> None:
    """SQLite, or no read to record: send_end leaves the end to the unit of work."""
    before = _last_seq(served.engine)
    with audit.read_ledger() as ledger, Session(served.engine) as db:
        ledger.actor = Principal(kind="user", label=VIEWER, user_id=None)
        db.execute(text("SELECT 1"))
        audit.send_end(db)  # nothing noted: nothing to send
        assert ledger.sent is None
        ledger.note("unit", 1, 1, ["contacts"])
        audit.send_end(db)
        assert (ledger.sent is not None) is is_postgres()
        audit.commit_with_reads(db, ledger)
    assert _last_seq(served.engine) == before + 1


@postgres_only
def test_a_sent_end_never_waited_for_does_not_go_back_into_the_pool(served: Served) -> None:
    """A cancelled request's connection, its end sent but not waited for, is closed at check-in
    rather than handed on in pipeline mode: the next user gets a clean one."""
    engine = make_engine(served.url, pool_size=1, max_overflow=0)
    try:
        with audit.read_ledger() as ledger:
            ledger.actor = Principal(kind="user", label=VIEWER, user_id=None)
            db = Session(engine)
            db.execute(text("SELECT 1"))
            ledger.note("unit", 1, 1, ["contacts"])
            audit.send_end(db)
            assert ledger.sent is not None and ledger.sent.pending
            db.close()  # no wait(): the connection goes back to the pool
        _connection_is_clean(engine)
    finally:
        engine.dispose()


@postgres_only
def test_listings_that_send_their_end_ahead_reuse_their_pooled_connection(served: Served) -> None:
    """The connection goes back to the pool in good order after each listing, and is used
    again: not closed and opened anew per request."""
    engine = make_engine(served.url, pool_size=1, max_overflow=0)
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    try:
        app = create_app(engine)
        for rid in ("reuse-1", "reuse-2", "reuse-3"):
            (response,) = asyncio.run(_list_at_once(app, served, [rid], hold_head=False))
            assert response.status_code == 200 and _read_of(engine, rid)
        assert len(opened) == 1
        _connection_is_clean(engine)
    finally:
        engine.dispose()
