"""Availability calendars (per item, per unit) and the unit's iCalendar feed.

The feed is read by calendar clients that cannot log in: its address carries a secret token
(only its SHA-256 is stored; revocable). It answers as the unit itself would see it: the
unit's own items with their reservations and maintenance, and the loans it borrows.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta
from typing import Literal

from icalendar import Calendar, Event
from pydantic import BaseModel
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import ROLE_PERMISSIONS, Permission, Role
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.equipment import operation_links, policy, schemas, views
from atlaslink.equipment import repository as repo
from atlaslink.equipment.states import HOLDING, LABELS, LoanStatus
from atlaslink.errors import Forbidden, NotFound
from atlaslink.models import (
    EquipmentCalendarFeed,
    EquipmentCategory,
    EquipmentItem,
    EquipmentLoan,
    EquipmentReservation,
    Unit,
    utcnow,
)
from atlaslink.registry.schemas import Page
from atlaslink.registry.service import page_bounds, page_dict

DayState = Literal["free", "requested", "reserved", "maintenance"]


class CalendarRow(BaseModel):
    item_id: int
    ref: str
    model: str
    category: str
    owner: str
    borrowed: bool
    days: list[DayState]
    periods: list[schemas.Period]


class UnitCalendar(BaseModel):
    unit: schemas.UnitRef
    start: date
    days: list[date]
    rows: Page[CalendarRow]
    # Loans the unit borrows that overlap the window (for the unit itself only).
    borrowed: list[CalendarRow]


def day_states(periods: list[schemas.Period], start: datetime, days: int) -> list[DayState]:
    out: list[DayState] = []
    for n in range(days):
        d0 = start + timedelta(days=n)
        d1 = d0 + timedelta(days=1)
        state: DayState = "free"
        for p in periods:
            if p.starts_at < d1 and p.ends_at > d0:
                if p.kind == "maintenance":
                    state = "maintenance"
                    break
                state = "requested" if p.status == LoanStatus.REQUESTED.value else "reserved"
        out.append(state)
    return out


def unit_calendar(
    session: Session,
    viewer: Principal,
    unit_id: int,
    start: datetime,
    days: int = 28,
    page: int = 1,
    per_page: int = 25,
) -> UnitCalendar:
    if viewer.kind == "user":
        viewer.require(Permission.EQUIPMENT_READ)
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"There is no unit {unit_id}.")
    end = start + timedelta(days=days)
    offset, limit = page_bounds(page, per_page)
    conds = [EquipmentItem.unit_id == unit_id, policy.readable(viewer)]
    total = session.scalar(select(func.count(EquipmentItem.id)).where(*conds)) or 0
    rows = session.execute(
        select(EquipmentItem, EquipmentCategory)
        .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
        .where(*conds)
        .order_by(EquipmentCategory.sort_order, EquipmentItem.model, EquipmentItem.id)
        .offset(offset)
        .limit(limit)
    ).tuples()
    items = list(rows)
    borrowed_loans: list[tuple[EquipmentLoan, EquipmentItem, EquipmentCategory]] = []
    if policy.is_owner(viewer, unit_id):
        borrowed_loans = [
            (loan, item, cat)
            for loan, item, cat in session.execute(
                select(EquipmentLoan, EquipmentItem, EquipmentCategory)
                .join(EquipmentItem, EquipmentItem.id == EquipmentLoan.item_id)
                .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
                .where(
                    EquipmentLoan.borrower_unit_id == unit_id,
                    EquipmentLoan.status.in_([s.value for s in HOLDING]),
                    EquipmentLoan.starts_at < end,
                    EquipmentLoan.ends_at > start,
                )
                .order_by(EquipmentLoan.starts_at)
                .limit(100)
            ).tuples()
        ]
    ids = [i.id for i, _ in items] + [i.id for _, i, _ in borrowed_loans]
    busy = repo.periods(session, ids, start, end)
    units = repo.units_by_ids(
        session,
        sorted(
            {loan.borrower_unit_id for v in busy.values() for _, loan in v if loan}
            | {i.unit_id for _, i, _ in borrowed_loans}
        ),
    )
    units[unit.id] = unit
    ops = operation_links.operation_refs(
        session, viewer, (loan for v in busy.values() for _, loan in v)
    )

    def row(item: EquipmentItem, cat: EquipmentCategory, borrowed: bool) -> CalendarRow:
        periods = [views.period_out(viewer, r, loan, units, ops) for r, loan in busy[item.id]]
        if borrowed:
            periods = [p for p in periods if p.loan_id is not None]
        return CalendarRow(
            item_id=item.id,
            ref=item.ref,
            model=item.model,
            category=cat.name,
            owner=units[item.unit_id].code if item.unit_id in units else "",
            borrowed=borrowed,
            days=day_states(periods, start, days),
            periods=periods,
        )

    return UnitCalendar(
        unit=views.unit_ref(unit),
        start=start.date(),
        days=[(start + timedelta(days=n)).date() for n in range(days)],
        rows=Page[CalendarRow](
            **page_dict([row(i, c, False) for i, c in items], total, page, per_page)
        ),
        borrowed=[row(i, c, True) for _, i, c in borrowed_loans],
    )


# --- the iCalendar feed -------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _feed_manager(session: Session, actor: Principal, unit_id: int) -> Unit:
    actor.require(Permission.EQUIPMENT_EDIT_OWN)
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"There is no unit {unit_id}.")
    if not policy.is_owner(actor, unit_id):
        raise Forbidden("Only the unit itself manages its calendar feeds.")
    return unit


def _feed_out(f: EquipmentCalendarFeed, url: str | None = None) -> schemas.Feed:
    return schemas.Feed(
        id=f.id,
        label=f.label,
        created_by=f.created_by,
        created_at=f.created_at,
        revoked_at=f.revoked_at,
        url=url,
    )


def feed_url(token: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}/api/v1/equipment/feed/{token}.ics"


def create_feed(session: Session, actor: Principal, unit_id: int, label: str) -> schemas.Feed:
    _feed_manager(session, actor, unit_id)
    token = secrets.token_urlsafe(32)
    feed = EquipmentCalendarFeed(
        unit_id=unit_id, token_hash=_hash(token), label=label, created_by=actor.label
    )
    session.add(feed)
    session.flush()
    audit.append(
        session,
        actor,
        "equipment.feed_create",
        "equipment_feed",
        feed.id,
        unit_id=unit_id,
        after={"label": label},
    )
    return _feed_out(feed, feed_url(token))


def list_feeds(session: Session, actor: Principal, unit_id: int) -> list[schemas.Feed]:
    _feed_manager(session, actor, unit_id)
    return [
        _feed_out(f)
        for f in session.scalars(
            select(EquipmentCalendarFeed)
            .where(EquipmentCalendarFeed.unit_id == unit_id)
            .order_by(EquipmentCalendarFeed.id.desc())
        )
    ]


def revoke_feed(session: Session, actor: Principal, feed_id: int) -> schemas.Feed:
    feed = session.get(EquipmentCalendarFeed, feed_id)
    if feed is None:
        raise NotFound(f"There is no calendar feed {feed_id}.")
    _feed_manager(session, actor, feed.unit_id)
    if feed.revoked_at is None:
        feed.revoked_at = utcnow()
        session.flush()
        audit.append(
            session,
            actor,
            "equipment.feed_revoke",
            "equipment_feed",
            feed.id,
            unit_id=feed.unit_id,
            before={"revoked_at": None},
            after={"revoked_at": feed.revoked_at},
        )
    return _feed_out(feed)


def feed_principal(unit: Unit) -> Principal:
    """The unit as a viewer: sees what its duty desk sees, nothing more."""
    role = Role.DUTY_OFFICER
    return Principal(
        kind="user",
        label=f"calendar-feed:{unit.code}",
        role=role,
        unit_id=unit.id,
        country=unit.country_iso2,
        permissions=ROLE_PERMISSIONS[role],
    )


FEED_PAST_DAYS = 30
FEED_FUTURE_DAYS = 366


def feed_ics(session: Session, token: str) -> bytes:
    feed = session.scalar(
        select(EquipmentCalendarFeed).where(EquipmentCalendarFeed.token_hash == _hash(token))
    )
    if feed is None or feed.revoked_at is not None:
        raise NotFound("There is no such calendar feed (it may have been revoked).")
    unit = session.get(Unit, feed.unit_id)
    assert unit is not None
    viewer = feed_principal(unit)
    now = utcnow()
    start, end = now - timedelta(days=FEED_PAST_DAYS), now + timedelta(days=FEED_FUTURE_DAYS)
    rows = session.execute(
        select(EquipmentReservation, EquipmentItem, EquipmentLoan)
        .join(EquipmentItem, EquipmentItem.id == EquipmentReservation.item_id)
        .outerjoin(EquipmentLoan, EquipmentLoan.id == EquipmentReservation.loan_id)
        .where(
            EquipmentReservation.active.is_(True),
            EquipmentReservation.starts_at < end,
            EquipmentReservation.ends_at > start,
            # The unit's own items (as it sees them), or loans it is party to.
            (EquipmentItem.unit_id == unit.id)
            | and_(EquipmentLoan.id.is_not(None), policy.loans_readable(viewer)),
        )
        .order_by(EquipmentReservation.starts_at, EquipmentReservation.id)
        .limit(5000)
    ).tuples()
    rows_list = list(rows)
    units = repo.units_by_ids(
        session,
        sorted(
            {i.unit_id for _, i, _ in rows_list}
            | {loan.borrower_unit_id for _, _, loan in rows_list if loan}
        ),
    )
    ops = operation_links.operation_refs(session, viewer, (loan for _, _, loan in rows_list))
    cal = Calendar()
    cal.add("prodid", "-//atlaslink//equipment pool//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{unit.code} equipment")
    for r, item, loan in rows_list:
        cal.add_component(_event(viewer, unit, r, item, loan, units, ops, now))
    return bytes(cal.to_ical())


def _event(
    viewer: Principal,
    unit: Unit,
    r: EquipmentReservation,
    item: EquipmentItem,
    loan: EquipmentLoan | None,
    units: dict[int, Unit],
    ops: dict[int, schemas.OperationRef],
    now: datetime,
) -> Event:
    period = views.period_out(viewer, r, loan, units, ops)
    what = f"{item.model} ({item.ref})"
    if period.kind == "maintenance":
        summary = f"Maintenance: {what}"
    elif loan is not None and loan.borrower_unit_id == unit.id:
        owner = units.get(item.unit_id)
        summary = f"Borrowed: {what} from {owner.code if owner else '?'}"
    else:
        who = period.borrower.code if period.borrower else "another unit"
        summary = f"Lent: {what} to {who}"
    if period.operation is not None:
        # Named only when the feed's unit may see the request (operation_links).
        summary += f" for {period.operation.reference}"
    ev = Event()
    ev.add("uid", f"equipment-reservation-{r.id}@atlaslink")
    ev.add("dtstamp", now)
    ev.add("dtstart", r.starts_at)
    ev.add("dtend", r.ends_at)
    ev.add("summary", summary)
    if period.status:
        ev.add(
            "status", "TENTATIVE" if period.status == LoanStatus.REQUESTED.value else "CONFIRMED"
        )
        text = f"Loan {period.loan_id}: {LABELS[LoanStatus(period.status)]}"
        if period.operation is not None:
            text += f" ({period.operation.reference}: {period.operation.title})"
        ev.add("description", text)
    if loan is not None:
        ev.add("url", f"{get_settings().base_url.rstrip('/')}/equipment/loans/{loan.id}")
    return ev
