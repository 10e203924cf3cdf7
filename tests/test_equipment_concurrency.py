"""Many overlapping loan requests for one item at the same instant: exactly one wins.

Real commits in a database of its own (threads, one connection each). On PostgreSQL
bookings of one item queue on the item's row and the exclusion constraint backs that up; on
SQLite ``BEGIN IMMEDIATE`` serialises them (ADR 0005). Both must give one winner and clear
409s for everyone else, and leave exactly one active reservation. The PostgreSQL-only tests
below make each lock ordering happen deterministically (one transaction waits for another,
seen in ``pg_blocking_pids``) and fail without the lock they test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM, Principal
from atlaslink.db import make_engine
from atlaslink.equipment import loans, schemas, service, spreadsheets
from atlaslink.errors import Conflict
from atlaslink.models import EquipmentItem, EquipmentLoan, EquipmentReservation, User
from tests.conftest import create_database, is_postgres, load_demo

BORROWERS = ("duty.de", "commander.de", "commander.nl", "duty.fr")
ATTEMPTS_EACH = 4


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url, drop = create_database(tmp_path_factory.mktemp("eq-race"), "eq-race")
    eng = make_engine(url, **({"pool_size": 20, "max_overflow": 5} if is_postgres() else {}))
    try:
        load_demo(eng)
        yield eng
    finally:
        eng.dispose()
        drop()  # type: ignore[operator]


def test_overlapping_requests_at_the_same_instant_have_one_winner(engine: Engine) -> None:
    with Session(engine) as s:
        item = service.register_item(
            s,
            SYSTEM,
            schemas.ItemCreate(
                ref="RACE-1",
                category="robot",
                model="tEODor",
                unit="AT-ADLER",
                sharing=schemas.Sharing(audience="network"),  # type: ignore[arg-type]
            ),
        )
        s.commit()
        item_id = item.id
        principals = [
            auth.principal_of(u)
            for u in s.scalars(select(User).where(User.username.in_(BORROWERS)))
        ]
    assert len(principals) == len(BORROWERS)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    attempts = [
        (p, start + timedelta(hours=6 * n), start + timedelta(days=3, hours=6 * n))
        for n in range(ATTEMPTS_EACH)
        for p in principals
    ]
    barrier = threading.Barrier(len(attempts))
    won: list[int] = []
    lost: list[str] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        who, begin, end = attempts[n]
        try:
            with Session(engine) as s:
                barrier.wait(timeout=30)
                try:
                    loan = loans.request_loan(
                        s,
                        who,
                        item_id,
                        schemas.LoanCreate(starts_at=begin, ends_at=end, purpose="operation"),
                    )
                    s.commit()
                    with lock:
                        won.append(loan.id)
                except Conflict as exc:
                    s.rollback()
                    with lock:
                        lost.append(exc.detail)
        except BaseException as exc:  # reported below, with the thread's own error
            with lock:
                failed.append(exc)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(attempts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failed, failed
    assert len(won) == 1, (won, lost)
    assert len(lost) == len(attempts) - 1
    assert all("not available" in m or "booked for an overlapping period" in m for m in lost)
    with Session(engine) as s:
        active = s.scalar(
            select(func.count(EquipmentReservation.id)).where(
                EquipmentReservation.item_id == item_id, EquipmentReservation.active.is_(True)
            )
        )
        assert active == 1
        assert s.scalar(select(func.count(EquipmentLoan.id))) == 1  # losers left nothing


@pytest.mark.skipif(not is_postgres(), reason="the exclusion constraint is PostgreSQL's")
def test_the_database_refuses_an_overlap_that_bypasses_the_service(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with Session(engine) as s:
        item_id = s.scalar(select(EquipmentReservation.item_id).limit(1))
        r = s.scalar(select(EquipmentReservation).where(EquipmentReservation.active.is_(True)))
        assert item_id is not None and r is not None
        s.add(
            EquipmentReservation(
                item_id=r.item_id,
                starts_at=r.starts_at + timedelta(hours=1),
                ends_at=r.ends_at + timedelta(days=1),
                kind="maintenance",
                active=True,
            )
        )
        with pytest.raises(IntegrityError, match="ex_equipment_reservations_no_overlap"):
            s.flush()
        s.rollback()


def _new_item(engine: Engine, ref: str) -> int:
    with Session(engine) as s:
        item = service.register_item(
            s,
            SYSTEM,
            schemas.ItemCreate(
                ref=ref,
                category="robot",
                model="tEODor",
                unit="AT-ADLER",
                sharing=schemas.Sharing(audience="network"),  # type: ignore[arg-type]
            ),
        )
        s.commit()
        return item.id


def start_blocked_by(engine: Engine, holder: Session, work: Callable[[], None]) -> threading.Thread:
    """Run ``work`` in a thread and return once it waits for a lock ``holder`` holds."""
    pid = holder.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    t = threading.Thread(target=work)
    t.start()
    _wait_until_blocked_by(engine, pid)
    return t


def _wait_until_blocked_by(engine: Engine, pid: int) -> None:
    """Until some other backend waits for a lock that backend ``pid`` holds."""
    deadline = time.monotonic() + 20
    with engine.connect() as c:
        while time.monotonic() < deadline:
            waiting = c.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": pid},
            )
            c.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("nothing came to wait for the first transaction")


@pytest.mark.skipif(not is_postgres(), reason="row locks are PostgreSQL's")
def test_a_booking_waits_for_one_in_progress_and_is_refused_naming_it(engine: Engine) -> None:
    """Two bookings of one item: the later waits on the item until the earlier commits, then
    is refused with the clash named. (Without the item lock the later one would insert, wait
    in the exclusion constraint's check and fail with the vaguer "a moment ago"; and two that
    had both inserted before either checked would deadlock there, the CI failure.)"""
    item_id = _new_item(engine, "QUEUE-1")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    outcome: dict[str, object] = {}

    def later() -> None:
        try:
            with Session(engine) as b:
                item = b.get(EquipmentItem, item_id)
                assert item is not None
                service.book(
                    b,
                    SYSTEM,
                    item,
                    start + timedelta(hours=2),
                    start + timedelta(hours=5),
                    kind="maintenance",
                )
                b.commit()
                outcome["booked"] = True
        except Conflict as exc:
            outcome["refused"] = exc.detail
        except BaseException as exc:
            outcome["error"] = exc

    with Session(engine) as a:
        item = a.get(EquipmentItem, item_id)
        assert item is not None
        service.book(a, SYSTEM, item, start, start + timedelta(days=1), kind="maintenance")
        t = start_blocked_by(engine, a, later)
        a.commit()
    t.join(timeout=30)
    assert not t.is_alive()
    assert "error" not in outcome and "booked" not in outcome, outcome
    assert f"maintenance from {start:%Y-%m-%d %H:%M}" in str(outcome["refused"]), outcome


@pytest.mark.skipif(not is_postgres(), reason="row locks are PostgreSQL's")
def test_items_are_held_in_one_order_so_crosswise_bookings_queue(engine: Engine) -> None:
    """One transaction holds item X and goes on to Y; another asks for Y and X (an offer
    naming them the other way round). The second must wait at X holding nothing, so the first
    gets Y: no deadlock, whatever order the items were named in."""
    x, y = sorted((_new_item(engine, "CROSS-X"), _new_item(engine, "CROSS-Y")))
    outcome: dict[str, object] = {}

    def crosswise() -> None:
        try:
            with Session(engine) as b:
                service.hold_items(b, [y, x])
                b.commit()
                outcome["held"] = True
        except BaseException as exc:
            outcome["error"] = exc

    with Session(engine) as a:
        a.execute(text("SET LOCAL lock_timeout = '5s'"))
        service.hold_items(a, [x])
        t = start_blocked_by(engine, a, crosswise)
        service.hold_items(a, [y])  # would wait for the other transaction if it held Y
        a.commit()
    t.join(timeout=30)
    assert outcome == {"held": True}, outcome


def _principal(engine: Engine, username: str) -> Principal:
    with Session(engine) as s:
        user = s.scalar(select(User).where(User.username == username))
        assert user is not None
        return auth.principal_of(user)


@pytest.mark.skipif(not is_postgres(), reason="row locks are PostgreSQL's")
def test_an_inventory_import_and_a_booking_of_one_of_its_items_queue(engine: Engine) -> None:
    """A booking holds item B and has not yet written its audit event; an import that changes
    items A and B starts. The import must wait for B before it takes the audit chain's head, or
    the booking's audit event (waiting for the head) and the import (waiting for B) deadlock."""
    a, b = sorted((_new_item(engine, "IMP-A"), _new_item(engine, "IMP-B")))
    commander = _principal(engine, "commander.at")
    file = (
        b"unit_code,ref,category,model,audience\n"
        b"AT-ADLER,IMP-A,robot,tEODor Mk2,network\n"
        b"AT-ADLER,IMP-B,robot,tEODor Mk2,network\n"
    )
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
    outcome: dict[str, object] = {}

    def import_file() -> None:
        try:
            with Session(engine) as s:
                report = spreadsheets.import_inventory(s, commander, "inv.csv", file)
                s.commit()
                outcome["import"] = (report.applied, report.updated, report.errors)
        except BaseException as exc:
            outcome["import_error"] = exc

    with Session(engine) as k:
        item = k.get(EquipmentItem, b)
        assert item is not None
        service.book(k, SYSTEM, item, start, start + timedelta(hours=4), kind="maintenance")
        t = start_blocked_by(engine, k, import_file)
        audit.append(k, SYSTEM, "equipment.maintenance_add", "equipment_item", b)
        k.commit()
    t.join(timeout=30)
    assert outcome == {"import": (True, 2, [])}, outcome
    with Session(engine) as s:
        assert {s.get(EquipmentItem, i).model for i in (a, b)} == {"tEODor Mk2"}  # type: ignore[union-attr]


@pytest.mark.skipif(not is_postgres(), reason="row locks are PostgreSQL's")
def test_an_item_lost_while_a_loan_request_waited_is_not_lent(engine: Engine) -> None:
    """The owner marks the item lost; a loan request for it arrives before that commits. The
    request waits for the item and then sees it lost: 409, no loan."""
    item_id = _new_item(engine, "LOST-1")
    borrower = _principal(engine, "duty.de")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=120)
    outcome: dict[str, object] = {}

    def borrow() -> None:
        try:
            with Session(engine) as s:
                # Loaded (status "available") before the owner's change commits.
                assert service.visible_item(s, borrower, item_id).status == "available"
                loans.request_loan(
                    s,
                    borrower,
                    item_id,
                    schemas.LoanCreate(
                        starts_at=start, ends_at=start + timedelta(days=2), purpose="operation"
                    ),
                )
                s.commit()
                outcome["lent"] = True
        except Conflict as exc:
            outcome["refused"] = exc.detail
        except BaseException as exc:
            outcome["error"] = exc

    with Session(engine) as o:
        service.hold_items(o, [item_id])
        o.execute(update(EquipmentItem).where(EquipmentItem.id == item_id).values(status="lost"))
        t = start_blocked_by(engine, o, borrow)
        o.commit()
    t.join(timeout=30)
    assert "lost" in str(outcome.get("refused")), outcome
    with Session(engine) as s:
        assert not s.scalars(select(EquipmentLoan).where(EquipmentLoan.item_id == item_id)).all()


@pytest.mark.skipif(not is_postgres(), reason="row locks: PostgreSQL")
def test_the_jobs_claim_on_items_does_not_block_rows_that_refer_to_them(engine: Engine) -> None:
    """The equipment jobs hold the rows they claim while their notices take the audit head.
    Inserting a row that refers to an item (an offer's equipment, a loan) takes a key-share
    lock on the item; a transaction that holds the head and does that must not wait for the
    job, or the two deadlock. So the claim is FOR NO KEY UPDATE, never FOR UPDATE."""
    from atlaslink.equipment import tasks

    item_id = _new_item(engine, "CLAIM-1")
    with Session(engine) as job, Session(engine) as other:
        claimed = job.scalars(
            tasks._claim(job, select(EquipmentItem).where(EquipmentItem.id == item_id))
        ).all()
        assert [i.id for i in claimed] == [item_id]  # held by the job until it commits
        other.execute(text("SET LOCAL lock_timeout = '2s'"))
        # What a foreign-key check of an insert referring to the item takes:
        held = other.execute(
            text("SELECT id FROM equipment_items WHERE id = :i FOR KEY SHARE"), {"i": item_id}
        ).scalar_one()
        assert held == item_id
        other.rollback()
        job.rollback()
