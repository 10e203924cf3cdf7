"""Queries of the equipment pool. Every query that returns or counts items applies
``policy.readable``; distances and road-time estimates are computed in the database so that
filtering, ordering and paging happen in one query."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from atlaslink.auth.principal import Principal
from atlaslink.db import id_in
from atlaslink.equipment import policy
from atlaslink.equipment.states import HOLDING, OUT
from atlaslink.models import (
    EquipmentCategory,
    EquipmentItem,
    EquipmentLoan,
    EquipmentReservation,
    EquipmentShareTarget,
    Unit,
)
from atlaslink.operations import geography

# Road travel, with the matching engine's assumptions (docs/matching.md): great-circle distance
# times a detour factor at a convoy's average speed, plus an overhead per border crossing
# (0 in the same country, 1 to a neighbour, 2 otherwise).
from atlaslink.operations.matching import BORDER_CROSSING_HOURS, ROAD_DETOUR_FACTOR, ROAD_KMH

KM_PER_DEGREE_LAT = 111.0  # a little under the real 111.2: the box is never too small


def road_hours(distance_km: float, crossings: int) -> float:
    return distance_km * ROAD_DETOUR_FACTOR / ROAD_KMH + crossings * BORDER_CROSSING_HOURS


def crossings(from_country: str | None, to_country: str) -> int:
    if from_country is None or from_country == to_country:
        return 0
    return 1 if to_country in geography.NEIGHBOURS.get(from_country, frozenset()) else 2


@dataclass(frozen=True)
class Search:
    category: str | None = None
    q: str | None = None
    unit_id: int | None = None
    available_from: datetime | None = None
    available_to: datetime | None = None
    latitude: float | None = None
    longitude: float | None = None
    country: str | None = None  # of the place searched from (border crossings)
    max_km: float | None = None
    max_eta_hours: float | None = None
    air_transportable: bool | None = None
    no_vehicle_needed: bool = False
    max_weight_kg: float | None = None
    in_service_only: bool = True


_SQLITE_KM = "atlaslink_equipment_km"


def _sqlite_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> float | None:
    if lat1 is None or lon1 is None or lat2 is None or lon2 is None:
        return None
    return geography.haversine_km(float(lat1), float(lon1), float(lat2), float(lon2))


def _dialect(session: Session) -> str:
    conn = session.connection()
    name = conn.dialect.name
    if name == "sqlite" and not conn.info.get(_SQLITE_KM):
        # SQLite's math functions are a compile-time option: register the Python haversine.
        raw: Any = conn.connection.dbapi_connection
        raw.create_function(_SQLITE_KM, 4, _sqlite_km, deterministic=True)
        conn.info[_SQLITE_KM] = True
    return name


def _distance(dialect: str, lat: float, lon: float) -> ColumnElement[float]:
    """Great-circle km from (lat, lon) to each item (NULL without coordinates)."""
    if dialect == "postgresql":
        ilat = func.radians(EquipmentItem.latitude)
        ilon = func.radians(EquipmentItem.longitude)
        plat = bindparam("p_lat_rad", math.radians(lat), type_=Float)
        plon = bindparam("p_lon_rad", math.radians(lon), type_=Float)
        pcos = bindparam("p_cos_lat", math.cos(math.radians(lat)), type_=Float)
        a = func.power(func.sin((ilat - plat) / 2.0), 2) + pcos * func.cos(ilat) * func.power(
            func.sin((ilon - plon) / 2.0), 2
        )
        root = func.sqrt(a)
        return 2.0 * geography.EARTH_RADIUS_KM * func.asin(case((root > 1.0, 1.0), else_=root))
    return func.atlaslink_equipment_km(
        EquipmentItem.latitude,
        EquipmentItem.longitude,
        bindparam("p_lat", lat, type_=Float),
        bindparam("p_lon", lon, type_=Float),
    )


def _crossings_sql(country: str | None) -> ColumnElement[int]:
    if country is None:
        return literal(0)
    neighbours = sorted(geography.NEIGHBOURS.get(country, frozenset()))
    whens: list[tuple[ColumnElement[bool], int]] = [(EquipmentItem.country_iso2 == country, 0)]
    if neighbours:
        whens.append((EquipmentItem.country_iso2.in_(neighbours), 1))
    return case(*whens, else_=2)


def free_between(start: datetime, end: datetime, now: datetime) -> ColumnElement[bool]:
    """No active reservation overlaps [start, end), and the item is not out past its loan."""
    busy = exists(
        select(EquipmentReservation.id).where(
            EquipmentReservation.item_id == EquipmentItem.id,
            EquipmentReservation.active.is_(True),
            EquipmentReservation.starts_at < end,
            EquipmentReservation.ends_at > start,
        )
    )
    overdue = exists(
        select(EquipmentLoan.id).where(
            EquipmentLoan.item_id == EquipmentItem.id,
            EquipmentLoan.status.in_([s.value for s in OUT]),
            EquipmentLoan.ends_at < now,
        )
    )
    return and_(not_(busy), not_(overdue))


def search_query(
    session: Session, viewer: Principal, s: Search, now: datetime
) -> tuple[Select[Any], ColumnElement[float] | None, ColumnElement[float] | None]:
    """The filtered query (items, unit, category), and the distance and ETA columns."""
    conds: list[ColumnElement[bool]] = [policy.readable(viewer)]
    if s.category:
        conds.append(
            EquipmentItem.category_id
            == select(EquipmentCategory.id)
            .where(EquipmentCategory.code == s.category)
            .scalar_subquery()
        )
    if s.unit_id is not None:
        conds.append(EquipmentItem.unit_id == s.unit_id)
    if s.q:
        like = f"%{s.q.strip().lower()}%"
        conds.append(
            or_(
                func.lower(EquipmentItem.model).like(like),
                func.lower(EquipmentItem.ref).like(like),
                func.lower(EquipmentItem.location_name).like(like),
            )
        )
    if s.in_service_only:
        conds.append(EquipmentItem.status == "available")
    if s.air_transportable:
        conds.append(EquipmentItem.air_transportable.is_(True))
    if s.no_vehicle_needed:
        conds.append(EquipmentItem.needs_vehicle.is_(False))
    if s.max_weight_kg is not None:
        conds.append(EquipmentItem.weight_kg <= s.max_weight_kg)
    if s.available_from is not None and s.available_to is not None:
        conds.append(free_between(s.available_from, s.available_to, now))
    distance: ColumnElement[float] | None = None
    eta: ColumnElement[float] | None = None
    if s.latitude is not None and s.longitude is not None:
        dialect = _dialect(session)
        distance = _distance(dialect, s.latitude, s.longitude)
        eta = distance * ROAD_DETOUR_FACTOR / ROAD_KMH + _crossings_sql(s.country) * literal(
            BORDER_CROSSING_HOURS
        )
        reach = s.max_km
        if s.max_eta_hours is not None:
            by_eta = s.max_eta_hours * ROAD_KMH / ROAD_DETOUR_FACTOR
            reach = by_eta if reach is None else min(reach, by_eta)
        if reach is not None:
            # A bounding box first (indexed latitude band), then the exact distance.
            dlat = reach / KM_PER_DEGREE_LAT
            conds.append(EquipmentItem.latitude.between(s.latitude - dlat, s.latitude + dlat))
            edge = min(89.0, abs(s.latitude) + dlat)
            cos_edge = math.cos(math.radians(edge))
            if cos_edge > 0.05:
                dlon = reach / (KM_PER_DEGREE_LAT * cos_edge)
                if dlon < 180:
                    conds.append(
                        EquipmentItem.longitude.between(s.longitude - dlon, s.longitude + dlon)
                    )
        if s.max_km is not None:
            conds.append(distance <= s.max_km)
        if s.max_eta_hours is not None:
            conds.append(eta <= s.max_eta_hours)
    stmt = (
        select(EquipmentItem, Unit, EquipmentCategory)
        .join(Unit, Unit.id == EquipmentItem.unit_id)
        .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
        .where(*conds)
    )
    return stmt, distance, eta


def search_page(
    session: Session, viewer: Principal, s: Search, now: datetime, offset: int, limit: int
) -> tuple[list[tuple[EquipmentItem, Unit, EquipmentCategory, float | None, float | None]], int]:
    stmt, distance, eta = search_query(session, viewer, s, now)
    total = session.scalar(
        select(func.count()).select_from(stmt.with_only_columns(EquipmentItem.id).subquery())
    )
    if distance is not None and eta is not None:
        page_stmt = stmt.add_columns(distance.label("distance"), eta.label("eta")).order_by(
            distance.is_(None), distance, EquipmentItem.id
        )
    else:
        page_stmt = stmt.add_columns(literal(None).label("d"), literal(None).label("e")).order_by(
            EquipmentCategory.sort_order, EquipmentItem.model, EquipmentItem.id
        )
    rows = session.execute(page_stmt.offset(offset).limit(limit)).tuples().all()
    return [(i, u, c, d, e) for i, u, c, d, e in rows], int(total or 0)


def item_with_refs(
    session: Session, item_id: int
) -> tuple[EquipmentItem, Unit, EquipmentCategory] | None:
    row = session.execute(
        select(EquipmentItem, Unit, EquipmentCategory)
        .join(Unit, Unit.id == EquipmentItem.unit_id)
        .join(EquipmentCategory, EquipmentCategory.id == EquipmentItem.category_id)
        .where(EquipmentItem.id == item_id)
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def targets_of(session: Session, item_ids: Sequence[int]) -> dict[int, list[EquipmentShareTarget]]:
    out: dict[int, list[EquipmentShareTarget]] = {i: [] for i in item_ids}
    if not item_ids:
        return out
    for t in session.scalars(
        select(EquipmentShareTarget)
        .where(id_in(session, EquipmentShareTarget.item_id, list(item_ids)))
        .order_by(EquipmentShareTarget.id)
    ):
        out[t.item_id].append(t)
    return out


def overlapping(
    session: Session, item_id: int, start: datetime, end: datetime, *, exclude_id: int | None = None
) -> list[EquipmentReservation]:
    stmt = select(EquipmentReservation).where(
        EquipmentReservation.item_id == item_id,
        EquipmentReservation.active.is_(True),
        EquipmentReservation.starts_at < end,
        EquipmentReservation.ends_at > start,
    )
    if exclude_id is not None:
        stmt = stmt.where(EquipmentReservation.id != exclude_id)
    return list(session.scalars(stmt.order_by(EquipmentReservation.starts_at)))


def periods(
    session: Session, item_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[tuple[EquipmentReservation, EquipmentLoan | None]]]:
    """Active reservations of these items that overlap [start, end), with their loans."""
    out: dict[int, list[tuple[EquipmentReservation, EquipmentLoan | None]]] = {
        i: [] for i in item_ids
    }
    if not item_ids:
        return out
    rows = session.execute(
        select(EquipmentReservation, EquipmentLoan)
        .outerjoin(EquipmentLoan, EquipmentLoan.id == EquipmentReservation.loan_id)
        .where(
            id_in(session, EquipmentReservation.item_id, list(item_ids)),
            EquipmentReservation.active.is_(True),
            EquipmentReservation.starts_at < end,
            EquipmentReservation.ends_at > start,
        )
        .order_by(EquipmentReservation.starts_at, EquipmentReservation.id)
    ).tuples()
    for r, loan in rows:
        out[r.item_id].append((r, loan))
    return out


def loan_reservation(session: Session, loan_id: int) -> EquipmentReservation | None:
    return session.scalar(
        select(EquipmentReservation).where(
            EquipmentReservation.loan_id == loan_id, EquipmentReservation.active.is_(True)
        )
    )


def loans_page(
    session: Session,
    viewer: Principal,
    *,
    side: str | None,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[list[EquipmentLoan], int]:
    conds: list[ColumnElement[bool]] = [policy.loans_readable(viewer)]
    if side == "owner" and viewer.unit_id is not None:
        conds.append(EquipmentLoan.owner_unit_id == viewer.unit_id)
    elif side == "borrower" and viewer.unit_id is not None:
        conds.append(EquipmentLoan.borrower_unit_id == viewer.unit_id)
    if status == "open":
        conds.append(EquipmentLoan.status.in_([s.value for s in HOLDING]))
    elif status:
        conds.append(EquipmentLoan.status == status)
    total = session.scalar(select(func.count(EquipmentLoan.id)).where(*conds)) or 0
    rows = session.scalars(
        select(EquipmentLoan)
        .where(*conds)
        .order_by(EquipmentLoan.starts_at.desc(), EquipmentLoan.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), int(total)


def units_by_ids(session: Session, ids: Sequence[int]) -> dict[int, Unit]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(Unit).where(id_in(session, Unit.id, ids)))}


def category_by_code(session: Session, code: str) -> EquipmentCategory | None:
    return session.scalar(select(EquipmentCategory).where(EquipmentCategory.code == code))


def item_by_ref(session: Session, unit_id: int, ref: str) -> EquipmentItem | None:
    return session.scalar(
        select(EquipmentItem).where(EquipmentItem.unit_id == unit_id, EquipmentItem.ref == ref)
    )
