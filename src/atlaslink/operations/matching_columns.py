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

import itertools
import math
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import bindparam, select
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

    def speaks(self, codes: frozenset[str]) -> Bools:
        """Per unit: declares one of ``codes``."""
        columns = [k for k, c in enumerate(self.language_codes) if c in codes]
        out: Bools = np.asarray(self.languages[:, columns].any(axis=1))
        return out

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
    unit: I64  # index into ``units``
    # Rank of the unit code in Python's order (ties of the score are broken by code).
    code_rank: I64
    country: I64  # index into units.countries
    lat_rad: F64  # NaN when unknown
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
    units: UnitColumns

    def __len__(self) -> int:
        return len(self.entry_id)

    def has(self, group: FieldGroup) -> Bools:
        """Rows whose units share ``group`` with the matching engine."""
        out: Bools = (self.groups & matching_groups.BIT[group]) != 0
        return out

    def facts(self, rows: list[int]) -> list[EntryFacts]:
        """The stored facts of these rows, as Python values."""
        units = self.units
        unit = self.unit[rows]
        level_shared = self.has(FieldGroup.LEVEL)[rows].tolist()

        def optional(values: F64) -> list[float | None]:
            return [None if math.isnan(v) else v for v in values.tolist()]

        def optional_int(values: F64) -> list[int | None]:
            return [None if math.isnan(v) else int(v) for v in values.tolist()]

        levels = optional_int(self.level[rows])
        return list(
            map(
                EntryFacts._make,
                zip(
                    self.entry_id[rows].tolist(),
                    self.unit_id[rows].tolist(),
                    [units.codes[u] for u in unit.tolist()],
                    [units.countries[c] for c in self.country[rows].tolist()],
                    optional(units.lat[unit]),
                    optional(units.lon[unit]),
                    self.groups[rows].tolist(),
                    [v if shared else None for v, shared in zip(levels, level_shared, strict=True)],
                    optional_int(self.package[rows]),
                    optional_int(self.notice[rows]),
                    self.aircraft[rows].astype(np.int64).tolist(),
                    self.helicopter[rows].astype(np.int64).tolist(),
                    self.abroad[rows].tolist(),
                    self.arms[rows].tolist(),
                    self.explosives[rows].tolist(),
                    [date.fromordinal(d) for d in self.confirmed_on[rows].tolist()],
                    strict=True,
                ),
            )
        )


# One value per process and registry version: the units (key None) and each type (its id).
_CACHE: VersionedCache[int | None, UnitColumns | TypeColumns] = VersionedCache(maxsize=256)

_UNITS = select(
    Unit.id,
    Unit.code,
    Unit.country_iso2,
    Unit.latitude,
    Unit.longitude,
    Unit.languages,
    Unit.matching_groups,
).order_by(Unit.id)
_AIR = select(TransportAsset.unit_id, TransportAsset.kind).where(
    TransportAsset.kind.in_(("aircraft", "helicopter"))
)


def units_at(session: Session, version: str) -> UnitColumns:
    """The unit columns at ``version`` (built on first use per version)."""
    cached = _CACHE.get(version, None)
    if isinstance(cached, UnitColumns):
        return cached
    rows = session.execute(_UNITS).all()
    ids, codes, country_of, lat, lon, spoken, groups = (
        list(column) for column in (zip(*rows, strict=True) if rows else [()] * 7)
    )
    countries = tuple(sorted(set(country_of)))
    country_index = {c: i for i, c in enumerate(countries)}
    language_codes = tuple(sorted({c for langs in spoken for c in (langs or [])}))
    code_index = {c: i for i, c in enumerate(language_codes)}
    pairs = [(n, code_index[c]) for n, langs in enumerate(spoken) for c in (langs or [])]
    languages = np.zeros((len(rows), len(language_codes)), dtype=np.bool_)
    if pairs:
        at_row, at_code = zip(*pairs, strict=True)
        languages[list(at_row), list(at_code)] = True
    unit_ids = np.array(ids, dtype=np.int64)
    air: dict[str, set[int]] = {"aircraft": set(), "helicopter": set()}
    for unit_id, kind in session.execute(_AIR).tuples():
        air[kind].add(unit_id)
    value = UnitColumns(
        ids=unit_ids,
        codes=codes,
        country=np.array([country_index[c] for c in country_of], dtype=np.int64),
        countries=countries,
        lat=_floats(lat),
        lon=_floats(lon),
        groups=np.array(groups, dtype=np.int64),
        languages=languages,
        language_codes=language_codes,
        **{
            kind: np.isin(unit_ids, np.array(sorted(having), dtype=np.int64))
            for kind, having in air.items()
        },
    )
    _CACHE.put(version, None, value)
    return value


_ENTRIES = (
    select(
        CapabilityEntry.id,
        CapabilityEntry.unit_id,
        CapabilityEntry.level,
        CapabilityEntry.package_size,
        CapabilityEntry.notice_to_move_hours,
        CapabilityEntry.may_deploy_abroad,
        CapabilityEntry.may_carry_arms_abroad,
        CapabilityEntry.may_carry_explosives_abroad,
        CapabilityEntry.confirmed_on,
    )
    .where(CapabilityEntry.capability_type_id == bindparam("capability_type_id"))
    .order_by(CapabilityEntry.unit_id)
)


def type_at(session: Session, version: str, capability_type_id: int) -> TypeColumns:
    """The columns of one capability type at ``version`` (built on first use per version)."""
    cached = _CACHE.get(version, capability_type_id)
    if isinstance(cached, TypeColumns):
        return cached
    units = units_at(session, version)
    rows = session.execute(_ENTRIES, {"capability_type_id": capability_type_id}).all()
    # Column by column (one transposition, not one Python object per value).
    columns = list(zip(*rows, strict=True)) if rows else [()] * 9
    unit_ids = np.array(columns[1], dtype=np.int64)
    at = np.searchsorted(units.ids, unit_ids)
    found = at < units.count
    found[found] = units.ids[at[found]] == unit_ids[found]
    # A unit written after the units were read is left out: its write gave a new version, so
    # the next ranking reads everything again.
    keep = found & (units.groups[np.minimum(at, units.count - 1)] & _EXISTENCE != 0)
    kept = keep.tolist()
    ids, _, level, package, notice, abroad, arms, explosives, confirmed = (
        list(itertools.compress(column, kept)) for column in columns
    )
    u = at[keep]
    codes = [units.codes[i] for i in u.tolist()]
    order = sorted(range(len(codes)), key=codes.__getitem__)
    code_rank = np.empty(len(codes), dtype=np.int64)
    code_rank[order] = np.arange(len(codes), dtype=np.int64)
    lat_rad = np.radians(units.lat[u])
    value = TypeColumns(
        entry_id=np.array(ids, dtype=np.int64),
        unit_id=unit_ids[keep],
        unit=u,
        code_rank=code_rank,
        country=units.country[u],
        lat_rad=lat_rad,
        lon_rad=np.radians(units.lon[u]),
        cos_lat=np.cos(lat_rad),
        groups=units.groups[u],
        level=_floats(level),
        package=_floats(package),
        notice=_floats(notice),
        abroad=np.array(abroad, dtype=np.bool_),
        arms=np.array(arms, dtype=np.bool_),
        explosives=np.array(explosives, dtype=np.bool_),
        confirmed_on=np.array([d.toordinal() for d in confirmed], dtype=np.int64),
        aircraft=units.aircraft[u],
        helicopter=units.helicopter[u],
        units=units,
    )
    _CACHE.put(version, capability_type_id, value)
    return value


def clear() -> None:
    _CACHE.clear()
