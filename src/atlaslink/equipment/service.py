"""Equipment pool use cases: categories, items and their sharing, search, reservations and
maintenance windows. Every change is audited with before/after; nothing commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.equipment import operation_links, policy, schemas, views
from atlaslink.equipment import repository as repo
from atlaslink.equipment.places import find_place
from atlaslink.equipment.repository import Search
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound
from atlaslink.models import (
    Country,
    EquipmentCategory,
    EquipmentCategoryVersion,
    EquipmentItem,
    EquipmentLoan,
    EquipmentReservation,
    EquipmentShareTarget,
    Unit,
    utcnow,
)
from atlaslink.registry.service import page_bounds, page_dict

# --- categories (data, versioned) -------------------------------------------------------------


def _category_out(c: EquipmentCategory) -> schemas.Category:
    return schemas.Category(
        code=c.code,
        name=c.name,
        description=c.description,
        retired=c.retired_in is not None,
        introduced_in=c.introduced_in,
    )


def categories(session: Session, include_retired: bool = False) -> schemas.Categories:
    stmt = select(EquipmentCategory).order_by(EquipmentCategory.sort_order, EquipmentCategory.id)
    if not include_retired:
        stmt = stmt.where(EquipmentCategory.retired_in.is_(None))
    version = session.scalar(select(func.max(EquipmentCategoryVersion.version))) or 0
    return schemas.Categories(
        version=version, categories=[_category_out(c) for c in session.scalars(stmt)]
    )


def _new_version(session: Session, actor: Principal, summary: str) -> int:
    version = (session.scalar(select(func.max(EquipmentCategoryVersion.version))) or 0) + 1
    session.add(EquipmentCategoryVersion(version=version, created_by=actor.label, summary=summary))
    session.flush()
    return version


def create_category(
    session: Session, actor: Principal, data: schemas.CategoryCreate
) -> EquipmentCategory:
    actor.require(Permission.TAXONOMY_EDIT)
    if repo.category_by_code(session, data.code) is not None:
        raise Invalid(f"The category code '{data.code}' is taken.")
    version = _new_version(session, actor, f"added {data.code}")
    order = (session.scalar(select(func.max(EquipmentCategory.sort_order))) or 0) + 1
    c = EquipmentCategory(
        code=data.code,
        name=data.name,
        description=data.description,
        sort_order=order,
        introduced_in=version,
    )
    session.add(c)
    session.flush()
    audit.append(
        session,
        actor,
        "equipment_category.create",
        "equipment_category",
        c.id,
        after={**data.model_dump(), "version": version},
    )
    return c


def update_category(
    session: Session, actor: Principal, code: str, data: schemas.CategoryUpdate
) -> EquipmentCategory:
    actor.require(Permission.TAXONOMY_EDIT)
    c = repo.category_by_code(session, code)
    if c is None:
        raise NotFound(f"There is no equipment category '{code}'.")
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        return c
    before = _category_out(c).model_dump()
    version = _new_version(session, actor, f"changed {code}: {', '.join(sorted(changes))}")
    if "name" in changes:
        c.name = changes["name"]
    if "description" in changes:
        c.description = changes["description"]
    if "retired" in changes:
        c.retired_in = version if changes["retired"] else None
    session.flush()
    audit.append(
        session,
        actor,
        "equipment_category.update",
        "equipment_category",
        c.id,
        before=before,
        after={**_category_out(c).model_dump(), "version": version},
    )
    return c


# --- items ------------------------------------------------------------------------------------


def snapshot(item: EquipmentItem, sharing: schemas.Sharing, category: str) -> dict[str, Any]:
    return {
        "ref": item.ref,
        "category": category,
        "model": item.model,
        "quantity": item.quantity,
        "serial_numbers": list(item.serial_numbers or []),
        "location_name": item.location_name,
        "latitude": item.latitude,
        "longitude": item.longitude,
        "weight_kg": item.weight_kg,
        "length_cm": item.length_cm,
        "width_cm": item.width_cm,
        "height_cm": item.height_cm,
        "air_transportable": item.air_transportable,
        "needs_vehicle": item.needs_vehicle,
        "operator_training": item.operator_training,
        "restrictions": item.restrictions,
        "maintenance_due": item.maintenance_due,
        "status": item.status,
        "notes": item.notes,
        "sharing": sharing.model_dump(mode="json"),
    }


def _owning_unit(session: Session, actor: Principal, code: str | None) -> Unit:
    actor.require(Permission.EQUIPMENT_EDIT_OWN)
    if code is None:
        if actor.unit_id is None:
            raise Invalid("Name the unit that owns the item.")
        unit = session.get(Unit, actor.unit_id)
    else:
        unit = session.scalar(select(Unit).where(Unit.code == code.upper()))
    if unit is None:
        raise Invalid(f"There is no unit '{code}'.")
    if not policy.is_owner(actor, unit.id):
        raise Forbidden("You may register and change only your own unit's equipment.")
    return unit


def _category(session: Session, code: str) -> EquipmentCategory:
    c = repo.category_by_code(session, code)
    if c is None or c.retired_in is not None:
        raise Invalid(f"There is no current equipment category '{code}'.")
    return c


def _apply_sharing(session: Session, item: EquipmentItem, sharing: schemas.Sharing) -> None:
    countries = set(sharing.countries)
    if countries:
        known = set(session.scalars(select(Country.iso2).where(Country.iso2.in_(countries))))
        if countries - known:
            raise Invalid(f"Unknown countries: {', '.join(sorted(countries - known))}.")
    unit_ids: list[int] = []
    if sharing.units:
        found = dict(
            session.execute(select(Unit.code, Unit.id).where(Unit.code.in_(sharing.units)))
            .tuples()
            .all()
        )
        missing = sorted(set(sharing.units) - set(found))
        if missing:
            raise Invalid(f"Unknown units: {', '.join(missing)}.")
        unit_ids = [found[c] for c in sharing.units]
    item.audience = sharing.audience.value
    session.execute(delete(EquipmentShareTarget).where(EquipmentShareTarget.item_id == item.id))
    for c in sorted(countries):
        session.add(EquipmentShareTarget(item_id=item.id, country_iso2=c))
    for uid in unit_ids:
        session.add(EquipmentShareTarget(item_id=item.id, unit_id=uid))
    session.flush()


def current_sharing(session: Session, item: EquipmentItem) -> schemas.Sharing:
    targets = repo.targets_of(session, [item.id])[item.id]
    units = repo.units_by_ids(session, [t.unit_id for t in targets if t.unit_id])
    return views.sharing_of(item, targets, units)


_FIELDS = (
    "model",
    "quantity",
    "serial_numbers",
    "location_name",
    "latitude",
    "longitude",
    "weight_kg",
    "length_cm",
    "width_cm",
    "height_cm",
    "air_transportable",
    "needs_vehicle",
    "operator_training",
    "restrictions",
    "maintenance_due",
    "notes",
)


def register_item(session: Session, actor: Principal, data: schemas.ItemCreate) -> EquipmentItem:
    unit = _owning_unit(session, actor, data.unit)
    category = _category(session, data.category)
    if repo.item_by_ref(session, unit.id, data.ref) is not None:
        raise Conflict(f"{unit.code} already has an item '{data.ref}'.")
    item = EquipmentItem(
        unit_id=unit.id,
        ref=data.ref,
        category_id=category.id,
        country_iso2=unit.country_iso2,
        status="available",
        **{f: getattr(data, f) for f in _FIELDS},
    )
    if item.latitude is None:
        # Kept at the unit's base unless said otherwise.
        item.latitude, item.longitude = unit.latitude, unit.longitude
        item.location_name = item.location_name or unit.base_location
    session.add(item)
    session.flush()
    _apply_sharing(session, item, data.sharing)
    audit.append(
        session,
        actor,
        "equipment.create",
        "equipment_item",
        item.id,
        unit_id=unit.id,
        after=snapshot(item, data.sharing, category.code),
    )
    return item


def _own_item(session: Session, actor: Principal, item_id: int) -> EquipmentItem:
    actor.require(Permission.EQUIPMENT_EDIT_OWN)
    item = session.get(EquipmentItem, item_id)
    if item is None or not _visible(session, actor, item):
        raise NotFound(f"There is no equipment item {item_id}.")
    if not policy.is_owner(actor, item.unit_id):
        raise Forbidden("You may change only your own unit's equipment.")
    return item


def update_item(
    session: Session, actor: Principal, item_id: int, data: schemas.ItemUpdate
) -> tuple[EquipmentItem, bool]:
    """Apply the given fields; returns the item and whether anything changed."""
    item = _own_item(session, actor, item_id)
    category = session.get(EquipmentCategory, item.category_id)
    assert category is not None
    sharing = current_sharing(session, item)
    before = snapshot(item, sharing, category.code)
    changes = data.model_dump(exclude_unset=True)
    if "category" in changes and changes["category"] is not None:
        category = _category(session, changes["category"])
        item.category_id = category.id
    for f in (*_FIELDS, "status"):
        if f in changes and (changes[f] is not None or f in _NULLABLE):
            setattr(item, f, changes[f])
    if item.serial_numbers and len(item.serial_numbers) != item.quantity:
        raise Invalid("Give one serial number per piece, or none.")
    if (item.latitude is None) != (item.longitude is None):
        raise Invalid("Give both latitude and longitude, or neither.")
    if data.sharing is not None:
        _apply_sharing(session, item, data.sharing)
        sharing = data.sharing
    session.flush()
    after = snapshot(item, sharing, category.code)
    if after == before:
        return item, False
    audit.append(
        session,
        actor,
        "equipment.update",
        "equipment_item",
        item.id,
        unit_id=item.unit_id,
        before=before,
        after=after,
    )
    return item, True


_NULLABLE = frozenset(
    {
        "latitude",
        "longitude",
        "weight_kg",
        "length_cm",
        "width_cm",
        "height_cm",
        "maintenance_due",
    }
)


def _visible(session: Session, viewer: Principal, item: EquipmentItem) -> bool:
    targets = repo.targets_of(session, [item.id])[item.id]
    return policy.can_read(viewer, item, policy.item_rule(item, targets))


def item_actions(viewer: Principal, item: EquipmentItem) -> list[str]:
    if policy.is_owner(viewer, item.unit_id):
        return ["edit", "maintenance"] if viewer.can(Permission.EQUIPMENT_EDIT_OWN) else []
    if viewer.can(Permission.LOANS_REQUEST) and viewer.unit_id is not None:
        return ["request_loan"] if item.status == "available" else []
    return []


def get_item(session: Session, viewer: Principal, item_id: int) -> schemas.Item:
    """One item as the viewer may see it; an item they may not see answers 404."""
    found = repo.item_with_refs(session, item_id)
    if found is None or not _visible(session, viewer, found[0]):
        raise NotFound(f"There is no equipment item {item_id}.")
    item, unit, category = found
    targets = repo.targets_of(session, [item.id])[item.id]
    units = repo.units_by_ids(session, [t.unit_id for t in targets if t.unit_id])
    return views.item_out(
        viewer,
        item,
        unit,
        category,
        targets=targets,
        units=units,
        actions=item_actions(viewer, item),
    )


def visible_item(session: Session, viewer: Principal, item_id: int) -> EquipmentItem:
    item = session.get(EquipmentItem, item_id)
    if item is None or not _visible(session, viewer, item):
        raise NotFound(f"There is no equipment item {item_id}.")
    return item


# --- search -----------------------------------------------------------------------------------


def build_search(
    *,
    category: str | None = None,
    q: str | None = None,
    unit: str | None = None,
    unit_id: int | None = None,
    available_from: datetime | None = None,
    available_to: datetime | None = None,
    near: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    max_km: float | None = None,
    max_eta_hours: float | None = None,
    air_transportable: bool | None = None,
    no_vehicle_needed: bool = False,
    max_weight_kg: float | None = None,
    include_out_of_service: bool = False,
    session: Session | None = None,
) -> Search:
    """Checks and normalises search parameters (shared by the API, the pages and the CLI)."""
    country = None
    if near:
        place = find_place(near)
        if place is None:
            raise Invalid(f"Unknown place '{near}'. Give latitude and longitude instead.")
        latitude, longitude, country = place.latitude, place.longitude, place.country
    if (latitude is None) != (longitude is None):
        raise Invalid("Give both latitude and longitude, or a named place.")
    if (max_km is not None or max_eta_hours is not None) and latitude is None:
        raise Invalid("A distance or travel-time limit needs a place to measure from.")
    if (available_from is None) != (available_to is None):
        raise Invalid("Give both ends of the availability window.")
    if available_from is not None and available_to is not None:
        _check_period(available_from, available_to, allow_past=True)
    if unit and session is not None:
        unit_id = session.scalar(select(Unit.id).where(Unit.code == unit.upper()))
        if unit_id is None:
            raise Invalid(f"There is no unit '{unit}'.")
    return Search(
        category=category or None,
        q=q or None,
        unit_id=unit_id,
        available_from=available_from,
        available_to=available_to,
        latitude=latitude,
        longitude=longitude,
        country=country,
        max_km=max_km,
        max_eta_hours=max_eta_hours,
        air_transportable=air_transportable,
        no_vehicle_needed=no_vehicle_needed,
        max_weight_kg=max_weight_kg,
        in_service_only=not include_out_of_service,
    )


def search(
    session: Session, viewer: Principal, s: Search, page: int = 1, per_page: int = 50
) -> dict[str, Any]:
    """Items the viewer may see that match; nothing else is counted (``policy.readable``)."""
    if viewer.kind == "user":
        viewer.require(Permission.EQUIPMENT_READ)
    offset, limit = page_bounds(page, per_page)
    rows, total = repo.search_page(session, viewer, s, utcnow(), offset, limit)
    # Sharing settings are shown to the owning unit only: load them for its items alone.
    owned = [item.id for item, *_ in rows if policy.is_owner(viewer, item.unit_id)]
    targets = repo.targets_of(session, owned)
    listed_units = repo.units_by_ids(
        session, sorted({t.unit_id for ts in targets.values() for t in ts if t.unit_id})
    )
    items = [
        views.item_out(
            viewer,
            item,
            unit,
            cat,
            targets=targets.get(item.id, ()),
            units=listed_units,
            distance_km=d,
            eta_hours=e,
            actions=item_actions(viewer, item),
        )
        for item, unit, cat, d, e in rows
    ]
    return page_dict(items, total, page, per_page)


# --- reservations: the one place that books a period (ADR 0005) -------------------------------


def _check_period(start: datetime, end: datetime, *, allow_past: bool = False) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("Give times with a time zone (UTC: a trailing 'Z').")
    if end <= start:
        raise Invalid("The period must end after it starts.")
    if end - start > timedelta(days=get_settings().equipment_max_period_days):
        raise Invalid(f"A period may last at most {get_settings().equipment_max_period_days} days.")
    if not allow_past and end <= utcnow():
        raise Invalid("The period is over already.")


def _busy_message(clashes: list[EquipmentReservation]) -> str:
    first = clashes[0]
    what = "maintenance" if first.kind == "maintenance" else "a reservation"
    return (
        f"The item is not available then: {what} from {first.starts_at:%Y-%m-%d %H:%M} to "
        f"{first.ends_at:%Y-%m-%d %H:%M} UTC overlaps."
    )


def _is_overlap_violation(exc: IntegrityError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code == "23P01" or "ex_equipment_reservations_no_overlap" in str(exc.orig)


def availability_problem(
    session: Session, item: EquipmentItem, start: datetime, end: datetime
) -> str | None:
    """Why the item cannot be held for [start, end), or None if it is free then (a check
    only: ``book`` makes the reservation, under the database's guarantee)."""
    clashes = repo.overlapping(session, item.id, start, end)
    return _busy_message(clashes) if clashes else None


def hold_items(session: Session, item_ids: list[int]) -> None:
    """Lock these items' rows until the transaction ends (PostgreSQL; on SQLite the
    transaction already holds the database's write lock), in id order, so two transactions
    booking several items never wait for each other crosswise. The items are read again under
    the lock (``populate_existing``): a status checked after this is the committed one, not one
    loaded before another transaction retired the item. A transaction that holds an item may
    lock it again. Ordinary updates of the item wait for it too.

    The rule that keeps this free of deadlocks: a transaction takes the items it will book or
    change before the audit chain's head (``audit.append`` locks the head until commit)."""
    if item_ids and session.get_bind().dialect.name == "postgresql":
        session.scalars(
            select(EquipmentItem)
            .where(EquipmentItem.id.in_(sorted(set(item_ids))))
            .order_by(EquipmentItem.id)
            # FOR NO KEY UPDATE: rows that refer to the item (a loan, a reservation) take
            # FOR KEY SHARE on it, which this does not wait for; FOR UPDATE would, and two
            # transactions that had each inserted a loan would deadlock upgrading.
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        ).all()


def book(
    session: Session,
    actor: Principal,
    item: EquipmentItem,
    start: datetime,
    end: datetime,
    *,
    kind: str,
    loan_id: int | None = None,
    note: str = "",
) -> EquipmentReservation:
    """Hold [start, end) for the item, or refuse with a 409 if any active period overlaps.

    On SQLite the transaction began with ``BEGIN IMMEDIATE`` and holds the database's write
    lock, so nothing can slip in between this check and the insert. On PostgreSQL the item's
    row is locked first (``hold_items``), so bookings of one item queue: the later one checks
    after the earlier committed and is refused with the message naming the clash. Without the
    lock both would insert and then each wait for the other in the exclusion constraint's
    check, a deadlock PostgreSQL breaks by aborting one of them. The constraint stays the
    guarantee for any path that does not come through here (SQLSTATE 23P01, the same 409)."""
    hold_items(session, [item.id])
    problem = availability_problem(session, item, start, end)
    if problem is not None:
        raise Conflict(problem)
    r = EquipmentReservation(
        item_id=item.id,
        starts_at=start,
        ends_at=end,
        kind=kind,
        loan_id=loan_id,
        active=True,
        note=note,
        created_by=actor.label,
    )
    try:
        with session.begin_nested():
            session.add(r)
            session.flush()
    except IntegrityError as exc:
        if _is_overlap_violation(exc):
            raise Conflict(
                "The item was booked for an overlapping period a moment ago. Choose another period."
            ) from None
        raise
    return r


def add_maintenance(
    session: Session, actor: Principal, item_id: int, data: schemas.MaintenanceCreate
) -> EquipmentReservation:
    item = _own_item(session, actor, item_id)
    _check_period(data.starts_at, data.ends_at)
    r = book(session, actor, item, data.starts_at, data.ends_at, kind="maintenance", note=data.note)
    audit.append(
        session,
        actor,
        "equipment.maintenance_add",
        "equipment_item",
        item.id,
        unit_id=item.unit_id,
        after={"reservation": r.id, "starts_at": r.starts_at, "ends_at": r.ends_at, "note": r.note},
    )
    return r


def remove_maintenance(
    session: Session, actor: Principal, item_id: int, reservation_id: int
) -> None:
    item = _own_item(session, actor, item_id)
    r = session.get(EquipmentReservation, reservation_id)
    if r is None or r.item_id != item.id or r.kind != "maintenance" or not r.active:
        raise NotFound(f"There is no maintenance window {reservation_id} of this item.")
    r.active = False
    session.flush()
    audit.append(
        session,
        actor,
        "equipment.maintenance_remove",
        "equipment_item",
        item.id,
        unit_id=item.unit_id,
        before={"reservation": r.id, "starts_at": r.starts_at, "ends_at": r.ends_at},
    )


def item_periods(
    session: Session, viewer: Principal, item_id: int, start: datetime, end: datetime
) -> list[schemas.Period]:
    item = visible_item(session, viewer, item_id)
    rows = repo.periods(session, [item.id], start, end)[item.id]
    units = repo.units_by_ids(session, sorted({loan.borrower_unit_id for _, loan in rows if loan}))
    ops = operation_links.operation_refs(session, viewer, (loan for _, loan in rows))
    return [views.period_out(viewer, r, loan, units, ops) for r, loan in rows]


def loans_of_item(session: Session, item_id: int) -> list[EquipmentLoan]:
    return list(
        session.scalars(
            select(EquipmentLoan)
            .where(EquipmentLoan.item_id == item_id)
            .order_by(EquipmentLoan.starts_at.desc())
        )
    )
