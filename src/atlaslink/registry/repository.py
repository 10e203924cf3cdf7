"""Queries of the registry. Filters on shared fields use the sharing policy's SQL conditions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, exists, func, or_, select
from sqlalchemy.orm import Session

from atlaslink.auth.principal import Principal
from atlaslink.db import id_in
from atlaslink.models import (
    CapabilityEntry,
    CapabilityType,
    Network,
    TransportAsset,
    Unit,
    UnitContact,
)
from atlaslink.registry import version as registry_version
from atlaslink.registry.taxonomy_seed import display_country
from atlaslink.sharing.policy import FieldGroup, sql_can_see


@dataclass(frozen=True)
class UnitFilters:
    q: str | None = None
    country: str | None = None
    network: str | None = None
    language: str | None = None
    capability: str | None = None  # capability type code
    min_level: int | None = None
    environment: str | None = None  # matrix: restrict columns to one kind ("environment"/"skill")


def _unit_conditions(viewer: Principal | None, f: UnitFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.q:
        like = f"%{f.q.strip().lower()}%"
        conds.append(
            or_(
                func.lower(Unit.name).like(like),
                func.lower(Unit.code).like(like),
                func.lower(Unit.base_location).like(like),
            )
        )
    if f.country:
        conds.append(Unit.country_iso2 == f.country.upper())
    if f.network:
        conds.append(Unit.network_id.in_(select(Network.id).where(Network.code == f.network)))
    if f.language:
        # Languages are a short JSON list; match the quoted code inside it.
        conds.append(func.lower(func.cast(Unit.languages, Text)).like(f'%"{f.language.lower()}"%'))
    if f.capability or f.min_level is not None:
        entry_conds: list[ColumnElement[bool]] = [CapabilityEntry.unit_id == Unit.id]
        if f.capability:
            entry_conds.append(
                CapabilityEntry.capability_type_id.in_(
                    select(CapabilityType.id).where(CapabilityType.code == f.capability)
                )
            )
        if f.min_level is not None:
            entry_conds.append(CapabilityEntry.level >= f.min_level)
        conds.append(exists(select(CapabilityEntry.id).where(*entry_conds)))
        # A filter must never reveal what the viewer may not see.
        if viewer is not None:
            group = FieldGroup.LEVEL if f.min_level is not None else FieldGroup.EXISTENCE
            conds.append(sql_can_see(viewer, group, Unit.id))
    return conds


UNIT_COLUMNS = (
    Unit.id,
    Unit.code,
    Unit.name,
    Unit.country_iso2,
    Unit.base_location,
    Unit.latitude,
    Unit.longitude,
    Unit.languages,
    Unit.competent_authority,
)


def units_page(
    session: Session, viewer: Principal | None, f: UnitFilters, offset: int, limit: int
) -> tuple[list[tuple[Any, str]], int]:
    """A page of directory rows (plain rows, not ORM objects: listings are hot) and the total."""
    conds = _unit_conditions(viewer, f)
    total = session.scalar(select(func.count(Unit.id)).where(*conds)) or 0
    stmt = (
        select(*UNIT_COLUMNS, Network.code.label("network_code"))
        .join(Network, Network.id == Unit.network_id)
        .where(*conds)
        .order_by(Unit.country_iso2, Unit.name, Unit.id)
        .offset(offset)
        .limit(limit)
    )
    return [(row, row.network_code) for row in session.execute(stmt)], total


@dataclass(frozen=True, slots=True)
class DirectoryRow:
    """A unit's directory entry as stored, before any sharing is applied: what a listing shows
    network-wide (``fields``, in the order of ``schemas.UnitSummary``) and the values that
    sharing may withhold. Shared between requests: never modified."""

    id: int
    fields: dict[str, Any]
    capability_count: int
    contacts: tuple[dict[str, str], ...]


# Directory pages read by viewers of every kind and rebuilt only when the registry changes:
# (filters, offset, limit) -> (rows, total). Filters on shared fields depend on the viewer and
# are never cached.
_PAGES: registry_version.VersionedCache[
    tuple[UnitFilters, int, int], tuple[tuple[DirectoryRow, ...], int]
] = registry_version.VersionedCache(maxsize=2048)


def _viewer_independent(f: UnitFilters) -> bool:
    return not f.capability and f.min_level is None


def directory_page(
    session: Session,
    viewer: Principal | None,
    f: UnitFilters,
    offset: int,
    limit: int,
    *,
    version: str,
) -> tuple[tuple[DirectoryRow, ...], int]:
    """A page of the directory in its order, and the total, as of the registry ``version``."""
    key = (f, offset, limit)
    cacheable = _viewer_independent(f)
    if cacheable and (hit := _PAGES.get(version, key)) is not None:
        return hit
    rows, total = units_page(session, viewer, f, offset, limit)
    ids = [u.id for u, _ in rows]
    counts = capability_counts(session, ids)
    contacts = contacts_of(session, ids)
    page = (
        tuple(
            DirectoryRow(
                id=u.id,
                fields={
                    "id": u.id,
                    "code": u.code,
                    "name": u.name,
                    "country": u.country_iso2,
                    "country_display": display_country(u.country_iso2),
                    "network": network_code,
                    "base_location": u.base_location,
                    "latitude": u.latitude,
                    "longitude": u.longitude,
                    "languages": tuple(u.languages or ()),
                    "competent_authority": u.competent_authority,
                },
                capability_count=counts.get(u.id, 0),
                contacts=tuple(
                    {"kind": c.kind, "label": c.label, "value": c.value} for c in contacts[u.id]
                ),
            )
            for u, network_code in rows
        ),
        total,
    )
    if cacheable:
        _PAGES.put(version, key, page)
    return page


def get_unit(session: Session, unit_id: int) -> tuple[Unit, str] | None:
    row = session.execute(
        select(Unit, Network.code)
        .join(Network, Network.id == Unit.network_id)
        .where(Unit.id == unit_id)
    ).first()
    return None if row is None else (row[0], row[1])


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code.strip().upper()))


def capability_counts(session: Session, unit_ids: Sequence[int]) -> dict[int, int]:
    if not unit_ids:
        return {}
    rows = session.execute(
        select(CapabilityEntry.unit_id, func.count(CapabilityEntry.id))
        .where(id_in(session, CapabilityEntry.unit_id, unit_ids))
        .group_by(CapabilityEntry.unit_id)
    ).tuples()
    return dict(rows.all())


def contacts_of(session: Session, unit_ids: Sequence[int]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {i: [] for i in unit_ids}
    if unit_ids:
        for c in session.execute(
            select(UnitContact.unit_id, UnitContact.kind, UnitContact.label, UnitContact.value)
            .where(id_in(session, UnitContact.unit_id, unit_ids))
            .order_by(UnitContact.id)
        ):
            out[c.unit_id].append(c)
    return out


def transport_of(session: Session, unit_ids: Sequence[int]) -> dict[int, list[TransportAsset]]:
    out: dict[int, list[TransportAsset]] = {i: [] for i in unit_ids}
    if unit_ids:
        for t in session.scalars(
            select(TransportAsset)
            .where(id_in(session, TransportAsset.unit_id, unit_ids))
            .order_by(TransportAsset.id)
        ):
            out[t.unit_id].append(t)
    return out


def entries_of(
    session: Session, unit_ids: Sequence[int], kind: str | None = None
) -> dict[int, list[tuple[CapabilityEntry, CapabilityType]]]:
    out: dict[int, list[tuple[CapabilityEntry, CapabilityType]]] = {i: [] for i in unit_ids}
    if not unit_ids:
        return out
    stmt = (
        select(CapabilityEntry, CapabilityType)
        .join(CapabilityType, CapabilityType.id == CapabilityEntry.capability_type_id)
        .where(id_in(session, CapabilityEntry.unit_id, unit_ids))
        .order_by(CapabilityType.sort_order, CapabilityType.id)
    )
    if kind:
        stmt = stmt.where(CapabilityType.kind == kind)
    for e, t in session.execute(stmt).tuples():
        out[e.unit_id].append((e, t))
    return out


def current_types(session: Session, include_retired: bool = False) -> list[CapabilityType]:
    stmt = select(CapabilityType).order_by(CapabilityType.sort_order, CapabilityType.id)
    if not include_retired:
        stmt = stmt.where(CapabilityType.retired_in.is_(None))
    return list(session.scalars(stmt))


def type_by_code(session: Session, code: str) -> CapabilityType | None:
    return session.scalar(select(CapabilityType).where(CapabilityType.code == code))
