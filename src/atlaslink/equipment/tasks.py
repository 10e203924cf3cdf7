"""The equipment pool's part of the background job (called from ``operations.tasks.tick``).

Deadlines are columns, as for requests: a loan's ``ends_at`` (overdue returns, announced once:
``overdue_notified_at``), an item's ``maintenance_due`` (announced once per due date:
``maintenance_notified_on``) and a requested loan's ``starts_at`` (undecided requests expire
and free their period). What fell due while no process ran fires at the next tick. On
PostgreSQL rows are claimed with ``FOR UPDATE SKIP LOCKED``, so two workers never announce the
same thing twice; SQLite serialises writers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from atlaslink.auth.principal import SYSTEM
from atlaslink.config import get_settings
from atlaslink.equipment import loans, schemas
from atlaslink.equipment.states import OUT, LoanStatus
from atlaslink.models import EquipmentItem, EquipmentLoan
from atlaslink.operations import timeline

BATCH = 100


def _claim(session: Session, stmt: Any) -> Any:
    """Rows a job takes on, skipping those another transaction holds. ``FOR NO KEY UPDATE``
    (the job changes no keys): a plain ``FOR UPDATE`` would also block the key-share lock that
    inserting a row which refers to the item takes (an offer's equipment, a loan). The job goes
    on to take the audit head (its notices and audit entries) while holding these rows, and a
    transaction that holds the head and inserts such a row would then wait for the job: a
    deadlock (ADR 0005)."""
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=True, key_share=True)
    return stmt


def overdue_returns(session: Session, now: datetime) -> int:
    rows = session.scalars(
        _claim(
            session,
            select(EquipmentLoan)
            .where(
                EquipmentLoan.status.in_([s.value for s in OUT]),
                EquipmentLoan.ends_at < now,
                EquipmentLoan.overdue_notified_at.is_(None),
            )
            .order_by(EquipmentLoan.ends_at, EquipmentLoan.id)
            .limit(BATCH),
        )
    ).all()
    for loan in rows:
        loan.overdue_notified_at = now
        item = session.get(EquipmentItem, loan.item_id)
        what = f"{item.model} ({item.ref})" if item else f"item {loan.item_id}"
        for unit_id in (loan.borrower_unit_id, loan.owner_unit_id):
            loans.notify_unit(
                session,
                unit_id,
                loan,
                "loan.overdue",
                f"Return overdue: {what}",
                f"Due back {loan.ends_at:%d %b %Y %H:%M} UTC; the loan is {loan.status}.",
            )
    session.flush()
    return len(rows)


def maintenance_due(session: Session, now: datetime) -> int:
    horizon = now.date() + timedelta(days=get_settings().equipment_maintenance_notice_days)
    rows = session.scalars(
        _claim(
            session,
            select(EquipmentItem)
            .where(
                EquipmentItem.maintenance_due.is_not(None),
                EquipmentItem.maintenance_due <= horizon,
                EquipmentItem.status.in_(("available", "repair")),
                or_(
                    EquipmentItem.maintenance_notified_on.is_(None),
                    EquipmentItem.maintenance_notified_on != EquipmentItem.maintenance_due,
                ),
            )
            .order_by(EquipmentItem.maintenance_due, EquipmentItem.id)
            .limit(BATCH),
        )
    ).all()
    for item in rows:
        item.maintenance_notified_on = item.maintenance_due
        made = timeline.notify_users(
            session,
            timeline.unit_responders(session, [item.unit_id]),
            None,
            "equipment.maintenance_due",
            f"Maintenance due: {item.model} ({item.ref})",
            f"Due on {item.maintenance_due:%d %b %Y}.",
        )
        for n in made:
            n.link = f"/equipment/{item.id}"
    session.flush()
    return len(rows)


def expire_requests(session: Session, now: datetime) -> int:
    rows = session.scalars(
        _claim(
            session,
            select(EquipmentLoan)
            .where(
                EquipmentLoan.status == LoanStatus.REQUESTED.value,
                EquipmentLoan.starts_at < now,
            )
            .order_by(EquipmentLoan.starts_at, EquipmentLoan.id)
            .limit(BATCH),
        )
    ).all()
    for loan in rows:
        loans.step(
            session,
            SYSTEM,
            loan.id,
            schemas.LoanStep(to=LoanStatus.EXPIRED.value, notes="Not decided before it was due."),
        )
    return len(rows)


def tick(session: Session, now: datetime) -> dict[str, int]:
    return {
        "loans_overdue": overdue_returns(session, now),
        "maintenance_due": maintenance_due(session, now),
        "loans_expired": expire_requests(session, now),
    }
