"""Many overlapping loan requests for one item at the same instant: exactly one wins.

Real commits in a database of its own (threads, one connection each). On PostgreSQL the
exclusion constraint decides between transactions that all passed the service's check; on
SQLite ``BEGIN IMMEDIATE`` serialises them (ADR 0005). Both must give one winner and clear
409s for everyone else, and leave exactly one active reservation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.equipment import loans, schemas, service
from atlaslink.errors import Conflict
from atlaslink.models import EquipmentLoan, EquipmentReservation, User
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
