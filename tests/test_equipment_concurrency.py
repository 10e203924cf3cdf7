"""Many overlapping loan requests for one item at the same instant: exactly one wins.

Real commits in a database of its own (threads, one connection each). On PostgreSQL the
exclusion constraint decides between transactions that all passed the service's check; on
SQLite ``BEGIN IMMEDIATE`` serialises them (ADR 0005). Both must give one winner and clear
409s for everyone else, and leave exactly one active reservation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.equipment import loans, schemas, service
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
    is refused with the clash named. (Without the item lock both insert and each waits for the
    other in the exclusion constraint's check; PostgreSQL then aborts one as a deadlock.)"""
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
        pid = a.scalar(text("SELECT pg_backend_pid()"))
        assert isinstance(pid, int)
        t = threading.Thread(target=later)
        t.start()
        _wait_until_blocked_by(engine, pid)
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
        pid = a.scalar(text("SELECT pg_backend_pid()"))
        assert isinstance(pid, int)
        t = threading.Thread(target=crosswise)
        t.start()
        _wait_until_blocked_by(engine, pid)
        service.hold_items(a, [y])  # would wait for the other transaction if it held Y
        a.commit()
    t.join(timeout=30)
    assert outcome == {"held": True}, outcome
