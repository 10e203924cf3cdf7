"""Real commits: concurrency on PostgreSQL, and what survives a restart or a killed process.

These tests cannot use the per-test rolled-back transaction: several connections (threads, a
worker or a server in a subprocess) must see each other's commits. They share one fresh
database per module, with the demo network loaded, and each works on requests of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.app import create_app
from atlaslink.auth import service as auth
from atlaslink.config import Settings
from atlaslink.db import make_engine
from atlaslink.models import (
    Arrangement,
    AssistanceRequest,
    AuditEvent,
    EquipmentLoan,
    EquipmentReservation,
    Offer,
    OperationEvent,
    RequestAddressee,
    Unit,
    User,
    utcnow,
)
from atlaslink.operations import tasks, timeline
from tests.conftest import create_database, is_postgres, load_demo
from tests.live_server import free_port
from tests.test_operations_flow import body

F = TypeVar("F", bound=Callable[..., Any])


def postgres_only(fn: F) -> F:
    skip = pytest.mark.skipif(not is_postgres(), reason="row locks and SKIP LOCKED: PostgreSQL")
    return pytest.mark.postgres_only(skip(fn))  # type: ignore[no-any-return]


NO_MAIL = Settings(smtp_host=None)


@dataclass
class Live:
    url: str
    engine: Engine
    app: FastAPI
    tokens: dict[str, str]

    def client(self, username: str) -> TestClient:
        if username not in self.tokens:
            with Session(self.engine) as s:
                user = s.scalar(select(User).where(User.username == username))
                assert user is not None
                self.tokens[username] = auth.create_token(s, user, "test").token
                s.commit()
        c = TestClient(self.app)
        c.headers["Authorization"] = f"Bearer {self.tokens[username]}"
        return c

    def unit(self, code: str) -> int:
        with Session(self.engine) as s:
            uid = s.scalar(select(Unit.id).where(Unit.code == code))
        assert uid is not None
        return uid

    @contextmanager
    def uow(self) -> Iterator[Session]:
        with sessionmaker(bind=self.engine, expire_on_commit=False)() as s, s.begin():
            yield s


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    url, drop = create_database(tmp_path_factory.mktemp("live"), "live")
    engine = make_engine(url)
    load_demo(engine)
    try:
        yield Live(url, engine, create_app(engine), {})
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a call hung"
    for r in results:
        assert not isinstance(r, Exception), r
    return results


def _request(live: Live, units: list[str], **over: Any) -> int:
    de = live.client("duty.de")
    r = de.post(
        "/api/v1/requests", json=body(submit=True, title=f"Test {uuid.uuid4().hex}", **over)
    )
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    r = de.post(
        f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [live.unit(u) for u in units]}
    )
    assert r.status_code == 200, r.text
    return rid


def _offer(live: Live, rid: int) -> int:
    r = live.client("duty.at").post(
        f"/api/v1/requests/{rid}/answers",
        json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 4}]},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["offers"][0]["id"])


def _events(live: Live, rid: int, kind: str) -> list[OperationEvent]:
    with Session(live.engine) as s:
        return list(
            s.scalars(
                select(OperationEvent)
                .where(OperationEvent.request_id == rid, OperationEvent.kind == kind)
                .order_by(OperationEvent.id)
            )
        )


# ---------------------------------------------------------------- concurrency (PostgreSQL)


@postgres_only
def test_two_people_accepting_the_same_offer_at_once(live: Live) -> None:
    rid = _request(live, ["AT-ADLER"])
    oid = _offer(live, rid)
    de, commander = live.client("duty.de"), live.client("commander.de")
    url = f"/api/v1/requests/{rid}/offers/{oid}/accept"
    results = together(lambda: de.post(url, json={}), lambda: commander.post(url, json={}))
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.headers["content-type"].startswith("application/problem+json")
    out = de.get(f"/api/v1/requests/{rid}").json()
    assert out["lines"][0]["coverage"]["committed"] == 4  # counted once
    assert out["status"] == "PARTIALLY_COVERED"
    with Session(live.engine) as s:
        assert s.scalar(select(func.count()).where(Arrangement.offer_id == oid)) == 1
    assert len(_events(live, rid, "offer.accepted")) == 1


@postgres_only
def test_two_ticks_at_once_escalate_each_addressee_once(live: Live) -> None:
    """Several processes tick over the same due deadlines: every addressee is escalated
    exactly once, none twice and none left out (SKIP LOCKED on the request rows)."""
    rids = [_request(live, ["AT-ADLER", "NL-REIGER"], ack_minutes=1) for _ in range(8)]
    at = utcnow() + timedelta(minutes=2)
    results = together(*(lambda: tasks.tick(live.uow, now=at, settings=NO_MAIL) for _ in range(3)))
    assert sum(r["escalated"] for r in results) >= 16
    with Session(live.engine) as s:
        rows = list(
            s.scalars(select(RequestAddressee).where(RequestAddressee.request_id.in_(rids)))
        )
    assert len(rows) == 16 and {a.escalations for a in rows} == {1}
    for rid in rids:
        escalated = _events(live, rid, "addressee.escalated")
        assert sorted(e.unit_id or 0 for e in escalated) == sorted(
            a.unit_id for a in rows if a.request_id == rid
        )


@postgres_only
def test_an_acknowledgement_at_the_deadline_while_the_job_escalates(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unit acknowledges while the job is escalating the same addressee: no deadlock,
    both happen, in order (the job locks the request before the addressee, as the API does)."""
    rid = _request(live, ["AT-ADLER"], ack_minutes=1)
    duty_at = live.client("duty.at")
    acked: dict[str, Any] = {}
    real = timeline.notify_users

    def ack() -> None:
        acked["response"] = duty_at.post(f"/api/v1/requests/{rid}/acknowledge")

    def slow_notify(*args: Any, **kwargs: Any) -> Any:
        if "thread" not in acked and args[3] == "escalation.unit":
            acked["thread"] = threading.Thread(target=ack)
            acked["thread"].start()
            time.sleep(1.5)  # the acknowledgement arrives while the job holds its rows
        return real(*args, **kwargs)

    monkeypatch.setattr(timeline, "notify_users", slow_notify)
    done = tasks.tick(live.uow, now=utcnow() + timedelta(minutes=2), settings=NO_MAIL)
    assert done["escalated"] >= 1
    acked["thread"].join(timeout=60)
    assert acked["response"].status_code == 200, acked["response"].text
    with Session(live.engine) as s:
        a = s.scalar(select(RequestAddressee).where(RequestAddressee.request_id == rid))
    assert a is not None and a.status == "ACKNOWLEDGED" and a.escalations == 1
    assert a.next_check_at is None
    first = _events(live, rid, "addressee.escalated")[0]
    assert first.id < _events(live, rid, "addressee.acknowledged")[0].id


@postgres_only
def test_the_same_idempotency_key_posted_twice_at_once_creates_one_request(live: Live) -> None:
    de1, de2 = live.client("duty.de"), live.client("duty.de")
    title = f"Idempotent {uuid.uuid4().hex}"
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    payload = body(title=title)
    results = together(
        lambda: de1.post("/api/v1/requests", json=payload, headers=headers),
        lambda: de2.post("/api/v1/requests", json=payload, headers=headers),
    )
    codes = sorted(r.status_code for r in results)
    assert codes in ([201, 201], [201, 409]), [r.text for r in results]
    ok = [r.json()["id"] for r in results if r.status_code == 201]
    assert len(set(ok)) == 1  # a replay names the same request
    with Session(live.engine) as s:
        assert s.scalar(select(func.count()).where(AssistanceRequest.title == title)) == 1
    # Afterwards the key replays the one request.
    again = de1.post("/api/v1/requests", json=payload, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == ok[0]


@postgres_only
def test_two_answers_of_the_same_unit_at_once(live: Live) -> None:
    rid = _request(live, ["AT-ADLER"])
    duty, commander = live.client("duty.at"), live.client("commander.at")
    answer = {"answer": "accept", "lines": [{"line_no": 1, "quantity": 3}]}
    results = together(
        lambda: duty.post(f"/api/v1/requests/{rid}/answers", json=answer),
        lambda: commander.post(f"/api/v1/requests/{rid}/answers", json=answer),
    )
    assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert "open offer" in loser.json()["detail"]
    out = live.client("duty.de").get(f"/api/v1/requests/{rid}").json()
    assert len(out["offers"]) == 1 and out["offers"][0]["status"] == "OFFERED"
    assert out["addressees"][0]["status"] == "ACCEPTED"
    assert out["lines"][0]["coverage"]["offered"] == 3  # not 6
    assert len(_events(live, rid, "answer.offer")) == 1


# ---------------------------------------------------------------- restarts (both databases)


def _cli(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATLASLINK_DATABASE_URL": live.url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "atlaslink.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_escalation_timers_survive_a_restart(live: Live) -> None:
    """A deadline set through one server instance fires in a worker process started later."""
    engine = make_engine(live.url)
    app = create_app(engine)
    with Session(engine) as s:
        user = s.scalar(select(User).where(User.username == "duty.de"))
        assert user is not None
        token = auth.create_token(s, user, "restart").token
        s.commit()
    de = TestClient(app)
    de.headers["Authorization"] = f"Bearer {token}"
    r = de.post("/api/v1/requests", json=body(submit=True, ack_minutes=1))
    rid = r.json()["id"]
    r = de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [live.unit("AT-ADLER")]})
    assert r.status_code == 200, r.text
    start = utcnow()
    de.close()
    engine.dispose()  # the first process is gone; only the database remembers the deadline

    def worker(minutes: int) -> str:
        at = start + timedelta(minutes=minutes)
        done = _cli(live, "worker", "--once", "--now", at.strftime("%Y-%m-%dT%H:%M:%S"))
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def addressee() -> RequestAddressee:
        with Session(live.engine) as s:
            a = s.scalar(select(RequestAddressee).where(RequestAddressee.request_id == rid))
        assert a is not None
        return a

    worker(0)
    assert addressee().escalations == 0  # not due yet
    assert "escalated 1" in worker(2)
    assert addressee().escalations == 1
    worker(2)  # the same moment again: nothing escalates twice
    assert addressee().escalations == 1
    worker(4)
    worker(6)
    a = addressee()
    assert a.escalations == 2 and a.status == "NO_RESPONSE" and a.support_office_alerted_at
    assert [e.kind for e in _events(live, rid, "addressee.escalated")] == [
        "addressee.escalated"
    ] * 2
    assert len(_events(live, rid, "addressee.no_response")) == 1
    assert live.client("support").get(f"/api/v1/requests/{rid}").status_code == 200


def test_worker_now_needs_once(live: Live) -> None:
    done = _cli(live, "worker", "--now", "2030-01-01T00:00")
    assert done.returncode == 1 and "--once" in done.stderr


def test_killing_the_server_mid_operation_loses_nothing(live: Live, tmp_path: Path) -> None:
    """SIGKILL `atlaslink serve` while requests are being created: every request whose call
    returned 201 is in the database, whole, and the audit chain verifies."""
    with Session(live.engine) as s:
        user = s.scalar(select(User).where(User.username == "duty.de"))
        assert user is not None
        token = auth.create_token(s, user, "kill").token
        s.commit()
    port = free_port()
    env = {
        **os.environ,
        "ATLASLINK_DATABASE_URL": live.url,
        "ATLASLINK_TICK_SECONDS": "0.2",  # the background job runs too
    }
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "atlaslink.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    marker = f"Kill {uuid.uuid4().hex[:8]}"
    confirmed: list[tuple[int, str]] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")

        def create(worker_no: int) -> None:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=20
            ) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        r = c.post(
                            "/api/v1/requests",
                            json=body(submit=True, title=f"{marker} {worker_no}-{n}"),
                        )
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 201:
                        confirmed.append((r.json()["id"], r.json()["reference"]))

        threads = [threading.Thread(target=create, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        until = time.monotonic() + 30
        while len(confirmed) < 15 and time.monotonic() < until:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-operation: calls are in flight
        proc.wait(timeout=20)
        stop.set()
        for t in threads:
            t.join(timeout=30)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
        log.close()
    assert len(confirmed) >= 15, (tmp_path / "serve.log").read_text()[-3000:]
    with Session(live.engine) as s:
        stored = dict(
            s.execute(
                select(AssistanceRequest.id, AssistanceRequest.reference).where(
                    AssistanceRequest.title.like(f"{marker}%")
                )
            )
            .tuples()
            .all()
        )
        for rid, ref in confirmed:
            assert stored.get(rid) == ref, f"request {rid} answered 201 but is not stored"
        # Whatever was committed is whole: each stored request has its timeline and audit.
        for rid in stored:
            kinds = set(
                s.scalars(select(OperationEvent.kind).where(OperationEvent.request_id == rid))
            )
            assert {"request.created", "request.submitted"} <= kinds, rid
        audited = set(
            s.scalars(
                select(AuditEvent.object_id).where(
                    AuditEvent.action == "request.created", AuditEvent.object_type == "request"
                )
            )
        )
        assert {str(rid) for rid in stored} <= audited
    verify = _cli(live, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout


def _own_item(live: Live, prefix: str) -> int:
    """A new item of AT-ADLER's inventory (own unit only), registered by its commander."""
    r = live.client("commander.at").post(
        "/api/v1/equipment",
        json={
            "ref": f"{prefix}-{uuid.uuid4().hex[:8]}",
            "category": "counter_drone",
            "model": "Skywall 100",
            "sharing": {"audience": "own_unit"},
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@postgres_only
def test_one_item_offered_to_two_requests_accepted_at_once(live: Live) -> None:
    """The same item offered in two operations, both offers accepted at the same instant: the
    database lets exactly one booking through (exclusion constraint, ADR 0005); the other
    acceptance is a 409 naming the item and writes nothing (offer still open, no loan, no
    arrangements record)."""
    item = _own_item(live, "RACE")
    rids = [_request(live, ["AT-ADLER"]) for _ in range(2)]
    offers = []
    for rid in rids:
        r = live.client("duty.at").post(
            f"/api/v1/requests/{rid}/answers",
            json={
                "answer": "accept",
                "lines": [{"line_no": 1, "quantity": 2}],
                "equipment": [item],
            },
        )
        assert r.status_code == 201, r.text
        offers.append(int(r.json()["offers"][0]["id"]))
    de, commander = live.client("duty.de"), live.client("commander.de")
    results = together(
        lambda: de.post(f"/api/v1/requests/{rids[0]}/offers/{offers[0]}/accept", json={}),
        lambda: commander.post(f"/api/v1/requests/{rids[1]}/offers/{offers[1]}/accept", json={}),
    )
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.headers["content-type"].startswith("application/problem+json")
    assert f"Item {item} (" in loser.json()["detail"]
    lost = offers[[r.status_code for r in results].index(409)]
    with Session(live.engine) as s:
        loans = list(s.scalars(select(EquipmentLoan).where(EquipmentLoan.item_id == item)))
        assert len(loans) == 1 and loans[0].status == "RESERVED"
        held = s.scalar(
            select(func.count())
            .select_from(EquipmentReservation)
            .where(EquipmentReservation.item_id == item, EquipmentReservation.active.is_(True))
        )
        assert held == 1
        offer = s.get(Offer, lost)
        assert offer is not None and offer.status == "OFFERED"
        assert s.scalar(select(func.count()).where(Arrangement.offer_id == lost)) == 0


@postgres_only
def test_two_offers_naming_the_same_items_the_other_way_round_queue(live: Live) -> None:
    """Item X is held by a transaction that goes on to take Y (as a booking of X, then Y,
    would); meanwhile an offer naming Y then X is accepted. The acceptance must wait at X
    holding nothing (the items of an offer are locked together, in id order, before any is
    booked), so the first transaction gets Y and both end: no deadlock, whatever the order the
    offer named them in."""
    from sqlalchemy import text

    from atlaslink.equipment import service as equipment
    from tests.test_equipment_concurrency import start_blocked_by

    x, y = sorted(_own_item(live, "CROSS") for _ in range(2))
    rid = _request(live, ["AT-ADLER"])
    r = live.client("duty.at").post(
        f"/api/v1/requests/{rid}/answers",
        json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 2}], "equipment": [y, x]},
    )
    assert r.status_code == 201, r.text
    offer = int(r.json()["offers"][0]["id"])
    accepted: list[httpx.Response] = []
    de = live.client("duty.de")

    with Session(live.engine) as holder:
        holder.execute(text("SET LOCAL lock_timeout = '10s'"))
        equipment.hold_items(holder, [x])
        t = start_blocked_by(
            live.engine,
            holder,
            lambda: accepted.append(
                de.post(f"/api/v1/requests/{rid}/offers/{offer}/accept", json={})
            ),
        )
        equipment.hold_items(holder, [y])  # waits, and deadlocks, if the acceptance holds Y
        holder.commit()
    t.join(timeout=30)
    assert len(accepted) == 1 and accepted[0].status_code == 200, [a.text for a in accepted]
    with Session(live.engine) as s:
        loans = s.scalars(select(EquipmentLoan).where(EquipmentLoan.item_id.in_([x, y]))).all()
        assert sorted(loan.item_id for loan in loans) == [x, y]
