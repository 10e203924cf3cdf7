"""Per-process, column-wise copy of each capability type's entries with their units' matching
facts, kept under the registry version (docs/adr/0004-registry-version-and-process-caches.md).

Ranking one request line scores every entry of the line's capability type (~7,400 of them with
10,000 units): in SQL that was most of a ranking's time, about 2 µs of expression evaluation per
entry (BENCHMARKS.md). What it scores changes a few times a day, so each process keeps it here
as numpy columns and operations.matching scores them vectorised; only per-request facts (the
current deployments elsewhere, the legal context) are read per ranking.

Everything here is stored data, never a viewer's view, and only of what the matching engine may
consider: the entries of units whose ``matching_groups`` (sharing.matching_groups) include the
existence of their capabilities, with those groups per row. Applying them (a hidden level is
NaN, a hidden package scores 0, …) is matching's business, as in its SQL statement.

Values are read *after* the version token, so they are never older than it; tables read here
must all be in ``models.VERSIONED_TABLES`` (units, capability_entries, transport_assets —
migration 0012 added the last).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import CapabilityEntry, TransportAsset, Unit
from atlaslink.registry.version import VersionedCache
from atlaslink.sharing import matching_groups
from atlaslink.sharing.policy import FieldGroup

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_EXISTENCE = matching_groups.BIT[FieldGroup.EXISTENCE]


def _floats(values: list[int | None] | list[float | None]) -> F64:
    """A float column with NaN for NULL."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class UnitColumns:
    """Every unit of the registry (by ascending id) with what ranking needs of it."""

    ids: I64
    codes: list[str]
    # Index into ``countries``.
    country: I64
    countries: tuple[str, ...]
    lat: F64  # degrees, NaN when unknown
    lon: F64
    groups: I64  # units.matching_groups
    # languages[u, k]: unit u declares the working language ``language_codes[k]``.
    languages: Bools
    language_codes: tuple[str, ...]
    aircraft: Bools  # the unit has an aircraft (shared with the engine or not)
    helicopter: Bools

    @property
    def count(self) -> int:
        return len(self.ids)

    def _codes(self, rows: Bools | I64) -> frozenset[str]:
        spoken = self.languages[rows].any(axis=0)
        return frozenset(self.language_codes[int(k)] for k in np.flatnonzero(spoken))

    def languages_of_unit(self, unit_id: int) -> frozenset[str]:
        at = int(np.searchsorted(self.ids, unit_id))
        if at == self.count or self.ids[at] != unit_id:
            return frozenset()
        return self._codes(np.array([at]))

    def languages_of_country(self, iso2: str) -> frozenset[str]:
        if iso2 not in self.countries:
            return frozenset()
        return self._codes(self.country == self.countries.index(iso2))


class EntryFacts(NamedTuple):
    """One row's stored facts, as operations.matching returns them for a chosen row."""

    entry_id: int
    unit_id: int
    code: str
    country: str
    lat: float | None
    lon: float | None
    groups: int
    level: int | None  # None unless the unit shares its level with the engine
    package: int | None  # raw
    notice: int | None  # raw
    plane: int  # 1: the unit has an aircraft (shared with the engine or not)
    heli: int
    abroad: bool
    arms: bool
    explosives: bool
    confirmed_on: date


@dataclass(frozen=True)
class TypeColumns:
    """The entries of one capability type whose units' existence the matching engine may use,
    one row per entry (sorted by unit id), with their units' facts copied alongside."""

    entry_id: I64
    unit_id: I64
    codes: list[str]
    # Rank of the unit code in Python's order (ties of the score are broken by code).
    code_rank: I64
    country: I64  # index into UnitColumns.countries
    lat: F64
    lon: F64
    lat_rad: F64
    lon_rad: F64
    cos_lat: F64
    groups: I64
    level: F64  # raw values, NaN for NULL; matching applies the groups
    package: F64
    notice: F64
    abroad: Bools
    arms: Bools
    explosives: Bools
    confirmed_on: I64  # date.toordinal()
    aircraft: Bools
    helicopter: Bools
    languages: Bools  # [row, language] as UnitColumns.languages
    facts: list[EntryFacts]  # the same, row by row, for the rows chosen
    units: UnitColumns

    def __len__(self) -> int:
        return len(self.entry_id)

    def has(self, group: FieldGroup) -> Bools:
        """Rows whose units share ``group`` with the matching engine."""
        out: Bools = (self.groups & matching_groups.BIT[group]) != 0
        return out


# One value per process and registry version: the units (key None) and each type (its id).
_CACHE: VersionedCache[int | None, UnitColumns | TypeColumns] = VersionedCache(maxsize=256)


def units_at(session: Session, version: str) -> UnitColumns:
    cached = _CACHE.get(version, None)
    if isinstance(cached, UnitColumns):
        return cached
    rows = session.execute(
        select(
            Unit.id,
            Unit.code,
            Unit.country_iso2,
            Unit.latitude,
            Unit.longitude,
            Unit.languages,
            Unit.matching_groups,
        ).order_by(Unit.id)
    ).all()
    countries = tuple(sorted({r.country_iso2 for r in rows}))
    country_index = {c: i for i, c in enumerate(countries)}
    codes = tuple(sorted({c for r in rows for c in (r.languages or [])}))
    code_index = {c: i for i, c in enumerate(codes)}
    languages = np.zeros((len(rows), len(codes)), dtype=np.bool_)
    for n, r in enumerate(rows):
        for c in r.languages or []:
            languages[n, code_index[c]] = True
    ids = np.array([r.id for r in rows], dtype=np.int64)
    air: dict[str, Bools] = {}
    for kind in ("aircraft", "helicopter"):
        having = np.array(
            sorted(
                set(
                    session.scalars(
                        select(TransportAsset.unit_id).where(TransportAsset.kind == kind)
                    )
                )
            ),
            dtype=np.int64,
        )
        air[kind] = np.isin(ids, having)
    value = UnitColumns(
        ids=ids,
        codes=[r.code for r in rows],
        country=np.array([country_index[r.country_iso2] for r in rows], dtype=np.int64),
        countries=countries,
        lat=_floats([r.latitude for r in rows]),
        lon=_floats([r.longitude for r in rows]),
        groups=np.array([r.matching_groups for r in rows], dtype=np.int64),
        languages=languages,
        language_codes=codes,
        aircraft=air["aircraft"],
        helicopter=air["helicopter"],
    )
    _CACHE.put(version, None, value)
    return value


def type_at(session: Session, version: str, capability_type_id: int) -> TypeColumns:
    """The columns of one capability type at ``version`` (built on first use per version)."""
    cached = _CACHE.get(version, capability_type_id)
    if isinstance(cached, TypeColumns):
        return cached
    units = units_at(session, version)
    e = CapabilityEntry
    rows = session.execute(
        select(
            e.id,
            e.unit_id,
            e.level,
            e.package_size,
            e.notice_to_move_hours,
            e.may_deploy_abroad,
            e.may_carry_arms_abroad,
            e.may_carry_explosives_abroad,
            e.confirmed_on,
        )
        .where(e.capability_type_id == capability_type_id)
        .order_by(e.unit_id)
    ).all()
    unit_ids = np.array([r.unit_id for r in rows], dtype=np.int64)
    at = np.searchsorted(units.ids, unit_ids)
    found = at < units.count
    found[found] = units.ids[at[found]] == unit_ids[found]
    # A unit written after the units were read is left out: its write gave a new version, so
    # the next ranking reads everything again.
    keep = found & (units.groups[np.minimum(at, units.count - 1)] & _EXISTENCE != 0)
    taken = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
    u = at[keep]
    codes = [units.codes[i] for i in u.tolist()]
    order = sorted(range(len(codes)), key=codes.__getitem__)
    code_rank = np.empty(len(codes), dtype=np.int64)
    code_rank[order] = np.arange(len(codes), dtype=np.int64)
    lat, lon = units.lat[u], units.lon[u]
    lat_rad = np.radians(lat)
    confirmed: list[date] = [r.confirmed_on for r in taken]
    groups = units.groups[u]
    level_bit = matching_groups.BIT[FieldGroup.LEVEL]
    facts = [
        EntryFacts(
            r.id,
            r.unit_id,
            code,
            units.countries[country],
            None if math.isnan(y) else y,
            None if math.isnan(x) else x,
            g,
            r.level if g & level_bit else None,
            r.package_size,
            r.notice_to_move_hours,
            int(plane),
            int(heli),
            bool(r.may_deploy_abroad),
            bool(r.may_carry_arms_abroad),
            bool(r.may_carry_explosives_abroad),
            r.confirmed_on,
        )
        for r, code, country, y, x, g, plane, heli in zip(
            taken,
            codes,
            units.country[u].tolist(),
            lat.tolist(),
            lon.tolist(),
            groups.tolist(),
            units.aircraft[u].tolist(),
            units.helicopter[u].tolist(),
            strict=True,
        )
    ]
    value = TypeColumns(
        entry_id=np.array([r.id for r in taken], dtype=np.int64),
        unit_id=unit_ids[keep],
        codes=codes,
        code_rank=code_rank,
        country=units.country[u],
        lat=lat,
        lon=lon,
        lat_rad=lat_rad,
        lon_rad=np.radians(lon),
        cos_lat=np.cos(lat_rad),
        groups=groups,
        level=_floats([r.level for r in taken]),
        package=_floats([r.package_size for r in taken]),
        notice=_floats([r.notice_to_move_hours for r in taken]),
        abroad=np.array([bool(r.may_deploy_abroad) for r in taken], dtype=np.bool_),
        arms=np.array([bool(r.may_carry_arms_abroad) for r in taken], dtype=np.bool_),
        explosives=np.array([bool(r.may_carry_explosives_abroad) for r in taken], dtype=np.bool_),
        confirmed_on=np.array([d.toordinal() for d in confirmed], dtype=np.int64),
        aircraft=units.aircraft[u],
        helicopter=units.helicopter[u],
        languages=units.languages[u],
        facts=facts,
        units=units,
    )
    _CACHE.put(version, capability_type_id, value)
    return value


def unit_count(session: Session, version: str) -> int:
    return units_at(session, version).count


def clear() -> None:
    _CACHE.clear()
