"""Ranking the units that could fill one line of an assistance request (issue 3, item 2).

How it works, with the weights and the ETA model's assumptions: docs/matching.md. In short:

* Every entry of the line's capability type whose unit's entries the matching engine may use
  (``units.matching_groups``, kept by sharing.matching_groups) is scored and checked against the
  hard exclusions, and only the best ``limit`` candidates, the best-placed excluded units and
  the counts go on. By default this runs vectorised (numpy) over a per-process, column-wise copy
  of the type's entries and their units' facts kept under the registry version
  (operations.matching_columns), with SQL only for the request's own facts (deployments
  elsewhere, the legal context). The same choice as one SQL statement (``scoring="sql"``) is
  kept as the reference the equivalence tests compare with. Either way Python recomputes the
  score of every chosen row with :func:`score` and checks that the two agree.
* Only the returned rows are explained: their agreements, entries and transport are loaded in
  bulk, what the viewer may see comes from ``sharing.redact.candidate_view`` and every factor
  text is written from the viewer's visible groups, so a value the viewer may not see (e.g.
  shared with the matching engine only) counts in the rank but never appears.
* With ``routing_url`` configured, road times of the returned candidates are refined with an
  OSRM-compatible service and the candidates re-sorted; on any error the estimate stays.
"""

from __future__ import annotations

import functools
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Float,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    false,
    func,
    not_,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from atlaslink.auth.principal import MATCHING_ENGINE, Principal
from atlaslink.config import get_settings
from atlaslink.db import id_in
from atlaslink.models import (
    AssistanceRequest,
    BilateralAgreement,
    CapabilityEntry,
    CapabilityType,
    Country,
    CountrySettings,
    Offer,
    RequestLine,
    TransportAsset,
    Unit,
    utcnow,
)
from atlaslink.operations import geography, matching_columns, states
from atlaslink.registry import version as registry_version
from atlaslink.registry.taxonomy_seed import display_country
from atlaslink.sharing import matching_groups, redact
from atlaslink.sharing.policy import (
    Agreement,
    Audience,
    FieldGroup,
    Rule,
    can_see,
    load_agreements,
    visible_groups,
)

G = FieldGroup
DASH = "\N{EN DASH}"

# --- The ETA model (docs/matching.md "ETA model"; speeds and overheads are assumptions) -----
# Notice-to-move assumed when the unit did not record it or did not share it with matching:
# pessimistic, so that a unit never ranks higher for hiding it.
DEFAULT_NOTICE_HOURS = 12.0
# Road: great-circle distance x detour factor at a convoy's average speed, plus a fixed
# overhead per border crossing (notification of host police, hand-over of escorts).
ROAD_DETOUR_FACTOR = 1.3
ROAD_KMH = 75.0
BORDER_CROSSING_HOURS = 0.5
# Air: only with an aircraft or helicopter the unit shares with the matching engine.
AIRCRAFT_KMH = 600.0
AIRCRAFT_OVERHEAD_HOURS = 2.0  # overflight/landing clearances, boarding, airfield transfers
HELICOPTER_KMH = 220.0
HELICOPTER_OVERHEAD_HOURS = 1.0
HELICOPTER_MAX_KM = 700.0  # beyond one refuelling stop a helicopter is not the quick option

# --- Scoring weights (points; higher ranks first; docs/matching.md "Score") ---------------
# Level: per level above the line's minimum (0..3 levels, so at most 18).
W_LEVEL = 6.0
# Package: the whole requested quantity covered; pro rata below it (one unit covering the line
# spares the requester coordinating several teams).
W_PACKAGE = 15.0
# ETA: W_ETA * ETA_HALF_HOURS / (ETA_HALF_HOURS + eta): 40 at once, 20 at 8 h, 10 at 24 h.
# The largest weight: this is a rapid-response mechanism. Never flat, so far units still sort.
W_ETA = 40.0
ETA_HALF_HOURS = 8.0
# Expected to arrive after the line's needed-by time (still a candidate).
W_LATE = 10.0
# Working language: a shared language other than English is worth more than English alone
# (English is the network's fallback, a native overlap avoids interpreting under stress).
W_NATIVE_LANGUAGE = 8.0
W_ENGLISH = 4.0
ENGLISH = "en"
# Current deployments on other live requests, per deployment, counted up to three.
W_COMMITMENT = 6.0
MAX_COMMITMENTS_COUNTED = 3
# Capability data not confirmed within settings.stale_after_days.
W_STALE = 5.0

# Best-placed excluded units returned, and how many are read to find them (some may be units
# the viewer may not know hold the capability: those are counted, not named).
MAX_EXCLUDED = 20
_EXCLUDED_READ = 3 * MAX_EXCLUDED
MAX_LIMIT = 100
# All routing calls of one ranking together stop after this many timeouts' worth of time.
ROUTING_BUDGET_TIMEOUTS = 4

INTERVENTION = "intervention"
EXPLOSIVE_BREACHING = "breaching_explosive"
BASIS_2008_617 = "2008/617-art3"
BASIS_BILATERAL = "bilateral"


def _matching_audiences() -> tuple[str, ...]:
    """The audiences whose groups the matching engine may use, asked of the sharing policy
    (rather than listed here) so that the two can never disagree."""
    probe = G.EXISTENCE
    return tuple(
        sorted(
            a.value
            for a in Audience
            if can_see(MATCHING_ENGINE, Agreement(unit_id=0, rules={probe: Rule(a)}), probe)
        )
    )


MATCHING_AUDIENCES = _matching_audiences()


# --- Output models -----------------------------------------------------------------------


class Factor(BaseModel):
    code: str
    verdict: Literal["good", "ok", "weak"]
    text: str


class Candidate(BaseModel):
    rank: int
    unit_id: int
    unit_code: str
    unit_name: str
    country: str
    country_display: str
    # 1 neighbour, 2 same region, 3 rest of the network (geography.ring_of).
    ring: int
    eta_band: str
    arrives_before_needed_by: bool | None
    factors: list[Factor]
    # The unit's fields for this capability that the viewer may see (sharing.redact).
    shown: dict[str, Any]
    committed_elsewhere: int


class Exclusion(BaseModel):
    unit_id: int
    unit_code: str
    unit_name: str
    country: str
    country_display: str
    reasons: list[str]
    shown: dict[str, Any]


class Ranking(BaseModel):
    request_id: int
    line_id: int
    line_no: int
    capability_code: str
    capability_name: str
    min_level: int
    quantity: int
    needed_by: datetime | None
    candidates: list[Candidate]
    # All units that fit (candidates holds the best `limit` of them).
    candidate_count: int
    # The best-placed excluded units whose capability the viewer may know about, with reasons.
    excluded: list[Exclusion]
    excluded_count: int
    # Units not considered at all: the requesting country's own units, units that do not record
    # this capability, or record it for their own unit only. A count; never named.
    not_considered: int
    notes: list[str]
    computed_at: datetime


# --- Legal fit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryFlags:
    may_deploy_abroad: bool
    may_carry_arms_abroad: bool
    may_carry_explosives_abroad: bool


@dataclass(frozen=True)
class AgreementInfo:
    id: int
    name: str
    country_a: str
    country_b: str
    valid_from: date | None
    valid_to: date | None

    def covers(self, x: str, y: str) -> bool:
        return {self.country_a, self.country_b} == {x, y}

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )

    def validity(self) -> str:
        start = self.valid_from.isoformat() if self.valid_from else "…"
        end = self.valid_to.isoformat() if self.valid_to else "…"
        return f"valid {start} to {end}"


@dataclass(frozen=True)
class LegalContext:
    """What the law and the per-country settings say about one request (and, once
    :meth:`for_line` has been applied, one of its lines)."""

    requesting_country: str
    legal_basis: str | None
    on: date
    # The request includes an intervention: officers bring their arms.
    arms_needed: bool
    host_prohibits_arms: bool
    host_prohibits_explosives: bool
    # Countries whose settings require a bilateral agreement for assistance to or from them.
    bilateral_countries: frozenset[str]
    excluded_from_2008_617: frozenset[str]
    # Agreements between the requesting country and each partner country.
    agreements: Mapping[str, tuple[AgreementInfo, ...]]
    # The agreement the request names (legal basis "bilateral").
    named_agreement: AgreementInfo | None
    # Every country the platform knows (for turning country-level reasons into a SQL filter).
    countries: frozenset[str]
    # The line is explosive breaching: officers bring explosives (set by for_line).
    explosives_needed: bool = False

    def for_line(self, capability_code: str) -> LegalContext:
        return replace(self, explosives_needed=capability_code == EXPLOSIVE_BREACHING)

    def bilateral_needed(self, unit_country: str) -> bool:
        return (
            self.legal_basis == BASIS_BILATERAL
            or self.requesting_country in self.bilateral_countries
            or unit_country in self.bilateral_countries
        )


# The two reads of the rule book, built once (building a statement costs more than running
# these): every country with its settings, if any; every bilateral agreement.
_COUNTRY_SETTINGS = select(
    Country.iso2,
    CountrySettings.country_iso2.label("has_settings"),
    CountrySettings.requires_bilateral_agreement,
    CountrySettings.prohibits_foreign_arms,
    CountrySettings.prohibits_foreign_explosives,
    CountrySettings.excluded_from_2008_617,
).outerjoin(CountrySettings, CountrySettings.country_iso2 == Country.iso2)
_AGREEMENTS = select(
    BilateralAgreement.id,
    BilateralAgreement.name,
    BilateralAgreement.country_a,
    BilateralAgreement.country_b,
    BilateralAgreement.valid_from,
    BilateralAgreement.valid_to,
).order_by(BilateralAgreement.id)


@dataclass(frozen=True)
class _RuleBook:
    """Every country's rules and every bilateral agreement, as read at one registry version
    (country_settings and bilateral_agreements are versioned tables, migration 0010)."""

    countries: frozenset[str]
    bilateral_countries: frozenset[str]
    excluded_from_2008_617: frozenset[str]
    prohibits_arms: frozenset[str]
    prohibits_explosives: frozenset[str]
    agreements: tuple[AgreementInfo, ...]  # by id


# Per process, under the registry version (ADR 0004): one entry, the current version's.
_RULE_BOOKS: registry_version.VersionedCache[None, _RuleBook] = registry_version.VersionedCache(
    maxsize=1
)


def _rule_book(session: Session, version: str) -> _RuleBook:
    book = _RULE_BOOKS.get(version, None)
    if book is not None:
        return book
    known = session.execute(_COUNTRY_SETTINGS).all()
    ruled = [r for r in known if r.has_settings is not None]
    book = _RuleBook(
        countries=frozenset(r.iso2 for r in known),
        bilateral_countries=frozenset(r.iso2 for r in ruled if r.requires_bilateral_agreement),
        excluded_from_2008_617=frozenset(r.iso2 for r in ruled if r.excluded_from_2008_617),
        prohibits_arms=frozenset(r.iso2 for r in ruled if r.prohibits_foreign_arms),
        prohibits_explosives=frozenset(r.iso2 for r in ruled if r.prohibits_foreign_explosives),
        agreements=tuple(AgreementInfo(*row) for row in session.execute(_AGREEMENTS).tuples()),
    )
    _RULE_BOOKS.put(version, None, book)
    return book


def load_legal_context(
    session: Session,
    request: AssistanceRequest,
    *,
    on: date | None = None,
    version: str | None = None,
) -> LegalContext:
    """The request's legal context on ``on`` (default: today, UTC). Country-wide facts for
    :func:`legal_fit`; call :meth:`LegalContext.for_line` for a line's explosives rule.
    ``version``: the registry version the caller has read (else it is read here); the rules
    come from the per-process rule book of that version."""
    day = on or utcnow().date()
    home = request.requesting_country
    book = _rule_book(session, version or registry_version.current(session))
    agreements: dict[str, list[AgreementInfo]] = {}
    named: AgreementInfo | None = None
    for info in book.agreements:
        if info.id == request.bilateral_agreement_id:
            named = info
        if home in (info.country_a, info.country_b):
            partner = info.country_b if info.country_a == home else info.country_a
            agreements.setdefault(partner, []).append(info)
    return LegalContext(
        requesting_country=home,
        legal_basis=request.legal_basis,
        on=day,
        arms_needed=INTERVENTION in (request.nature or []),
        host_prohibits_arms=home in book.prohibits_arms,
        host_prohibits_explosives=home in book.prohibits_explosives,
        bilateral_countries=book.bilateral_countries,
        excluded_from_2008_617=book.excluded_from_2008_617,
        agreements={c: tuple(v) for c, v in agreements.items()},
        named_agreement=named,
        countries=book.countries,
    )


def legal_fit(ctx: LegalContext, unit_country: str, entry_flags: EntryFlags | None) -> list[str]:
    """Reasons the unit may NOT be used for this request (and line); ``[]`` means it fits.

    Without ``entry_flags`` only the country-level rules are checked (what a whole country's
    units share), which is how the ranking turns them into one SQL filter.
    """
    reasons: list[str] = []
    home = ctx.requesting_country
    pair = f"{display_country(home)}{DASH}{display_country(unit_country)}"
    if unit_country == home:
        reasons.append("unit of the requesting country: not assistance from another state")
    elif ctx.legal_basis == BASIS_BILATERAL:
        named = ctx.named_agreement
        if named is None:
            reasons.append("the request's legal basis is a bilateral agreement, but it names none")
        elif not named.covers(home, unit_country):
            reasons.append(
                f"the request's bilateral agreement “{named.name}” does not cover {pair}"
            )
        elif not named.valid_on(ctx.on):
            reasons.append(
                f"the request's bilateral agreement “{named.name}” is not valid on "
                f"{ctx.on.isoformat()} ({named.validity()})"
            )
    elif ctx.bilateral_needed(unit_country):
        known = ctx.agreements.get(unit_country, ())
        if not any(a.valid_on(ctx.on) for a in known):
            who = sorted(c for c in (home, unit_country) if c in ctx.bilateral_countries)
            needs = " and ".join(display_country(c) for c in who)
            if known:
                # The one whose validity ends last says most about what to renew.
                latest = max(known, key=lambda a: (a.valid_to or date.max, a.id))
                reasons.append(
                    f"{needs} require{'s' if len(who) == 1 else ''} a bilateral agreement for "
                    f"{pair}; “{latest.name}” is not valid on {ctx.on.isoformat()} "
                    f"({latest.validity()})"
                )
            else:
                reasons.append(
                    f"{needs} require{'s' if len(who) == 1 else ''} a bilateral agreement for "
                    f"{pair}, and there is none"
                )
    if ctx.legal_basis == BASIS_2008_617 and unit_country in ctx.excluded_from_2008_617:
        reasons.append(
            f"{display_country(unit_country)} does not take part in Council Decision "
            "2008/617/JHA, the legal basis of this request"
        )
    if entry_flags is not None:
        if not entry_flags.may_deploy_abroad:
            reasons.append("not cleared to deploy abroad")
        if (
            ctx.arms_needed
            and not ctx.host_prohibits_arms
            and not entry_flags.may_carry_arms_abroad
        ):
            reasons.append("may not carry arms abroad, and the request includes an intervention")
        if (
            ctx.explosives_needed
            and not ctx.host_prohibits_explosives
            and not entry_flags.may_carry_explosives_abroad
        ):
            reasons.append("may not carry explosives abroad, which explosive breaching needs")
    return reasons


# --- Scoring -----------------------------------------------------------------------------
#
# One formula, computed from the same inputs for every entry to choose the best rows, with numpy
# (_best_by_columns, the default) or in SQL (_candidate_statement, the reference), each term by
# term in the same order so that the floats agree, and in Python for the rows chosen (to explain
# them). All use only what the matching engine may use of the unit (units.matching_groups): a
# hidden level is NULL, a hidden package scores 0, a hidden notice-to-move counts as
# DEFAULT_NOTICE_HOURS, hidden transport means road only.


def eta_points(eta_hours: float | None) -> float:
    if eta_hours is None:
        return 0.0
    return W_ETA * ETA_HALF_HOURS / (ETA_HALF_HOURS + eta_hours)


def late_points(eta_hours: float | None, hours_left: float | None) -> float:
    if eta_hours is None or hours_left is None or eta_hours <= hours_left:
        return 0.0
    return -W_LATE


_BANDS: tuple[tuple[float, str], ...] = (
    (2, "< 2 h"),
    (4, f"2{DASH}4 h"),
    (8, f"4{DASH}8 h"),
    (12, f"8{DASH}12 h"),
    (24, f"12{DASH}24 h"),
)
UNKNOWN_BAND = "unknown"


def eta_band(eta_hours: float | None) -> str:
    if eta_hours is None:
        return UNKNOWN_BAND
    for upper, label in _BANDS:
        if eta_hours < upper:
            return label
    return "> 24 h"


def road_hours_estimate(distance_km: float, border_crossings: int) -> float:
    return distance_km * ROAD_DETOUR_FACTOR / ROAD_KMH + border_crossings * BORDER_CROSSING_HOURS


@dataclass(frozen=True)
class ScoreInputs:
    """What the engine may use of one entry (``None``: not recorded or not shared with it)."""

    level: int | None
    package: int | None
    notice: int | None
    distance_km: float | None
    border_crossings: int
    aircraft: bool
    helicopter: bool
    language_points: float
    committed: int
    stale: bool


@dataclass(frozen=True)
class Score:
    points: float
    eta: float | None
    notice_hours: float
    road: float | None
    travel: float | None
    # "road", "aircraft", "helicopter"; "" when the ETA is unknown.
    mode: str


def score(
    x: ScoreInputs,
    *,
    min_level: int,
    quantity: int,
    hours_left: float | None,
    road_hours: float | None = None,
) -> Score:
    """The ranking score (docs/matching.md "Score"). ``road_hours`` replaces the road estimate
    (from the routing service, border overheads included)."""
    notice = float(x.notice) if x.notice is not None else DEFAULT_NOTICE_HOURS
    eta = road = travel = None
    mode = ""
    if x.distance_km is not None:
        road = (
            road_hours
            if road_hours is not None
            else road_hours_estimate(x.distance_km, x.border_crossings)
        )
        travel, mode = road, "road"
        if x.aircraft:
            plane = x.distance_km / AIRCRAFT_KMH + AIRCRAFT_OVERHEAD_HOURS
            if plane < travel:
                travel, mode = plane, "aircraft"
        if x.helicopter and x.distance_km <= HELICOPTER_MAX_KM:
            heli = x.distance_km / HELICOPTER_KMH + HELICOPTER_OVERHEAD_HOURS
            if heli < travel:
                travel, mode = heli, "helicopter"
        eta = notice + travel
    points = (
        (0.0 if x.level is None else (x.level - min_level) * W_LEVEL)
        + _package_points(x.package, quantity)
        + eta_points(eta)
        + late_points(eta, hours_left)
        + x.language_points
        - W_COMMITMENT * min(x.committed, MAX_COMMITMENTS_COUNTED)
        - (W_STALE if x.stale else 0.0)
    )
    return Score(points, eta, notice, road, travel, mode)


def _package_points(package: int | None, quantity: int) -> float:
    if package is None:
        return 0.0
    if package >= quantity:
        return W_PACKAGE
    return W_PACKAGE * package / quantity


def _language_points(unit_languages: Sequence[str], requesting: frozenset[str]) -> float:
    theirs = set(unit_languages)
    if theirs & (requesting - {ENGLISH}):
        return W_NATIVE_LANGUAGE
    if ENGLISH in requesting and ENGLISH in theirs:
        return W_ENGLISH
    return 0.0


# --- The candidate statement -------------------------------------------------------------


def _dialect(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"matching does not support {name}")
    return name


def _requesting_languages(session: Session, request: AssistanceRequest) -> frozenset[str]:
    """The requesting side's working languages (the columns path reads the same from
    matching_columns.UnitColumns)."""
    if request.requesting_unit_id is not None:
        query = select(Unit.languages).where(Unit.id == request.requesting_unit_id)
    else:
        query = select(Unit.languages).where(Unit.country_iso2 == request.requesting_country)
    return frozenset(code for langs in session.scalars(query) for code in (langs or []))


def _mentions(column: ColumnElement[Any], codes: Sequence[str]) -> ColumnElement[bool]:
    """The unit's JSON list of language codes contains one of ``codes`` (as text, so that the
    same SQL runs on SQLite and PostgreSQL and no JSON is decoded per row)."""
    if not codes:
        return false()
    # Each pattern in the SQL text (the statement is cached per set of codes anyway): a pattern
    # PostgreSQL knows when planning is compiled once, a parameter once per row.
    return or_(
        *(
            column.like(bindparam(None, f'%"{_like_escape(c)}"%', literal_execute=True), "/")
            for c in sorted(codes)
        )
    )


def _like_escape(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


# Stands for "no such way of travelling" inside LEAST/min, which must not see NULLs.
_NEVER = 1e9


def _param(name: str, type_: Any) -> Any:
    return bindparam(name, type_=type_)


def _least(dialect: str, *args: Any) -> ColumnElement[Any]:
    """Smallest argument (PostgreSQL LEAST, SQLite's scalar min; arguments must not be NULL:
    the two treat NULL differently)."""
    return func.least(*args) if dialect == "postgresql" else func.min(*args)


def _one_of(dialect: str, column: Any, name: str) -> ColumnElement[bool]:
    """``column`` is in the list parameter ``name``: one array parameter on PostgreSQL (the SQL
    text, and so the prepared statement, does not change with the list's length)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]


def _has(groups: Any, group: FieldGroup) -> ColumnElement[bool]:
    """The unit's ``matching_groups`` include ``group`` (sharing.matching_groups)."""
    return groups.bitwise_and(matching_groups.BIT[group]) != 0  # type: ignore[no-any-return]


def _distance_km(dialect: str, unit: Any) -> ColumnElement[Any]:
    """Great-circle distance from the unit's base to the incident, NULL if either has no
    coordinates: geography.haversine_km in SQL (on SQLite without its math functions,
    db._configure_sqlite registers Python ones under the same names)."""
    lat = func.radians(unit.latitude)
    a = func.power(func.sin((lat - _param("incident_lat_rad", Float)) / 2.0), 2) + _param(
        "incident_cos_lat", Float
    ) * func.cos(lat) * func.power(
        func.sin((func.radians(unit.longitude) - _param("incident_lon_rad", Float)) / 2.0), 2
    )
    # The guard against rounding above 1 (asin's domain) is safe inside the CASE: LEAST and
    # min would turn a NULL into 1 (antipodal) outside it.
    return case(
        (
            or_(
                unit.latitude.is_(None),
                unit.longitude.is_(None),
                # Cast: PostgreSQL cannot type a parameter that is only tested for NULL.
                cast(_param("incident_lat_rad", Float), Float).is_(None),
            ),
            null(),
        ),
        else_=2.0 * geography.EARTH_RADIUS_KM * func.asin(func.sqrt(_least(dialect, a, 1.0))),
    )


def _language_points_sql(langs_text: Any, native: tuple[str, ...], english: bool) -> Any:
    """W_NATIVE_LANGUAGE / W_ENGLISH / 0 from the unit's languages as JSON text (see
    _mentions); the text conversion costs a copy per use, so callers convert once per row."""
    return case(
        (_mentions(langs_text, native), W_NATIVE_LANGUAGE),
        (_mentions(langs_text, [ENGLISH] if english else []), W_ENGLISH),
        else_=0.0,
    )


def _crossings_sql(dialect: str, unit: Any) -> Any:
    return case((_one_of(dialect, unit.country_iso2, "neighbours"), 1), else_=2)


@dataclass(frozen=True)
class _CountryFacts:
    """Per unit's country: border crossings to the requesting country and whether country-level
    rules bar it. On PostgreSQL a table of the other countries from array parameters, joined
    (one hash probe per entry instead of two list searches; it also leaves out the requesting
    country); on SQLite the same from list parameters per row."""

    table: Any
    iso2: Any
    crossings: Any
    barred: Any

    @staticmethod
    def of(dialect: str, unit: Any) -> _CountryFacts:
        if dialect == "postgresql":
            table = (
                func.unnest(
                    bindparam("other_countries", type_=ARRAY(String)),
                    bindparam("other_crossings", type_=ARRAY(Integer)),
                    bindparam("other_barred", type_=ARRAY(Integer)),
                )
                .table_valued("iso2", "crossings", "barred")
                .render_derived(name="other_country")
            )
            return _CountryFacts(table, table.c.iso2, table.c.crossings, table.c.barred)
        return _CountryFacts(
            None,
            unit.country_iso2,
            _crossings_sql(dialect, unit),
            case((_one_of(dialect, unit.country_iso2, "barred"), 1), else_=0),
        )


@functools.lru_cache(maxsize=128)
def _candidate_statement(dialect: str, native: tuple[str, ...], english: bool) -> Any:
    """The line's entries of units of other countries whose entries the matching engine may
    use, each with its score and whether it fits; returns the best ``fit_rows`` fitting and
    ``unfit_rows`` excluded rows with the inputs of their scores, and the counts.

    The score is :func:`score` itself, from what the engine may use of each unit
    (``units.matching_groups``), so the best rows by SQL are the best rows (rank_line checks
    that Python computes the same score for every row returned). Every row is scored in one
    narrow pass; the inputs are read again for the returned rows only.

    Built once per dialect and requesting languages, with every other value a bound parameter
    (:func:`_statement_params`): building this expression costs more than running it.
    """
    pg = dialect == "postgresql"
    min_level = _param("min_level", Integer)
    e, u = CapabilityEntry, Unit
    country = _CountryFacts.of(dialect, u)

    def has_air(kind: str) -> Any:
        # A hashed subplan: one set of unit ids per kind, probed per row.
        return e.unit_id.in_(select(TransportAsset.unit_id).where(TransportAsset.kind == kind))

    deployed = (
        select(Offer.unit_id.label("unit_id"), func.count(Offer.id).label("n"))
        .join(AssistanceRequest, AssistanceRequest.id == Offer.request_id)
        .where(
            Offer.status.in_(sorted(states.DEPLOYED)),
            AssistanceRequest.status.in_(sorted(states.LIVE)),
            Offer.request_id != _param("request_id", Integer),
        )
        .group_by(Offer.unit_id)
        .subquery("deployed")
    )
    groups = u.matching_groups
    transport = _has(groups, G.TRANSPORT)
    # Pass 1: every entry, with what the engine may use of it (hidden: NULL, or the default).
    inputs = (
        select(
            e.id.label("entry_id"),
            u.code.label("code"),
            u.country_iso2.label("country"),
            case((_has(groups, G.LEVEL), e.level)).label("level"),
            case((_has(groups, G.PACKAGE), e.package_size)).label("package"),
            func.coalesce(
                case((_has(groups, G.NOTICE), e.notice_to_move_hours)), DEFAULT_NOTICE_HOURS
            ).label("notice_h"),
            e.may_deploy_abroad.label("abroad"),
            e.may_carry_arms_abroad.label("arms"),
            e.may_carry_explosives_abroad.label("explosives"),
            e.confirmed_on.label("confirmed_on"),
            case((and_(transport, has_air("aircraft")), 1), else_=0).label("plane"),
            case((and_(transport, has_air("helicopter")), 1), else_=0).label("heli"),
            func.coalesce(deployed.c.n, 0).label("committed"),
            _distance_km(dialect, u).label("dist"),
            cast(u.languages, String).label("langs"),
            country.crossings.label("crossings"),
            country.barred.label("barred"),
        )
        .select_from(e)
        .join(u, u.id == e.unit_id)
        .outerjoin(deployed, deployed.c.unit_id == e.unit_id)
        .where(
            e.capability_type_id == _param("capability_type_id", Integer),
            # The entries exist for matching only if their existence is shared beyond the
            # own unit (sharing.policy; the entry groups count only then).
            _has(groups, G.EXISTENCE),
        )
    )
    if country.table is not None:
        inputs = inputs.join(country.table, country.iso2 == u.country_iso2)
    else:
        inputs = inputs.where(u.country_iso2 != _param("requesting_country", String))
    # OFFSET 0 keeps PostgreSQL from inlining a layer into the next, which would compute the
    # distance (trigonometry) and the ETA once per use instead of once per row.
    layer1 = (inputs.offset(0) if pg else inputs).subquery("inputs")
    i = layer1.c
    road = i.dist * ROAD_DETOUR_FACTOR / ROAD_KMH + i.crossings * BORDER_CROSSING_HOURS
    plane = case((i.plane == 1, i.dist / AIRCRAFT_KMH + AIRCRAFT_OVERHEAD_HOURS), else_=_NEVER)
    heli = case(
        (
            and_(i.heli == 1, i.dist <= HELICOPTER_MAX_KM),
            i.dist / HELICOPTER_KMH + HELICOPTER_OVERHEAD_HOURS,
        ),
        else_=_NEVER,
    )
    timed_q = select(
        i.entry_id,
        i.code,
        i.country,
        i.level,
        i.package,
        i.abroad,
        i.arms,
        i.explosives,
        i.confirmed_on,
        i.committed,
        i.barred,
        _language_points_sql(i.langs, native, english).label("lang"),
        case(
            (i.dist.is_(None), null()), else_=i.notice_h + _least(dialect, road, plane, heli)
        ).label("eta"),
    )
    timed = (timed_q.offset(0) if pg else timed_q).subquery("timed")
    t = timed.c
    # Cast: PostgreSQL cannot type a parameter that is only tested for NULL.
    hours_left = cast(_param("hours_left", Float), Float)
    quantity = _param("quantity", Integer)
    # score(), term by term and in the same order (so that the floats agree).
    # (Every term is cheap on purpose: it runs for every entry. A NULL compared is not true, so
    # an unknown ETA or needed-by time is never late.)
    points = (
        func.coalesce((t.level - min_level) * W_LEVEL, 0.0)
        + case(
            (t.package.is_(None), 0.0),
            (t.package >= quantity, W_PACKAGE),
            else_=W_PACKAGE * t.package / _param("quantity_f", Float),
        )
        + func.coalesce(W_ETA * ETA_HALF_HOURS / (ETA_HALF_HOURS + t.eta), 0.0)
        + case((t.eta > hours_left, -W_LATE), else_=0.0)
        + t.lang
        - W_COMMITMENT * _least(dialect, t.committed, MAX_COMMITMENTS_COUNTED)
        - case((t.confirmed_on < _param("stale_cut", Date), W_STALE), else_=0.0)
    )
    # Hard exclusions, the same rules as legal_fit and _Explainer._level_reasons (rank_line
    # checks that they agree on every row it returns). NULL is not true: the CASE below counts
    # an unknown as "not excluded", which is what a NULL level with minimum 0 must be.
    excluded = or_(
        t.level < min_level,
        and_(t.level.is_(None), min_level > 0),
        not_(t.abroad),
        and_(_param("arms_rule", Boolean), not_(t.arms)),
        and_(_param("explosives_rule", Boolean), not_(t.explosives)),
        t.barred == 1,
    )
    # Narrow, so that writing it and reading it four times stays cheap.
    scored = (
        select(
            t.entry_id,
            t.code,
            t.committed,
            points.label("score"),
            case((excluded, 0), else_=1).label("eligible"),
            case((t.eta.is_(None), 1), else_=0).label("eta_unknown"),
        )
        .cte("scored")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    s = scored.c
    order = (s.eta_unknown, s.score.desc(), s.code)
    # Two best-N reads (a bounded heap each) rather than sorting every row under a window.
    fit = (
        select(scored)
        .where(s.eligible == 1)
        .order_by(*order)
        .limit(_param("fit_rows", Integer))
        .subquery("fit")
    )
    unfit = (
        select(scored)
        .where(s.eligible == 0)
        .order_by(*order)
        .limit(_param("unfit_rows", Integer))
        .subquery("unfit")
    )
    best = union_all(select(fit), select(unfit)).subquery("best")
    b = best.c

    # Pass 2, for the returned rows only: the raw inputs (Python applies the groups) and the
    # unit's air assets by its index.
    def has_kind(kind: str) -> Any:
        return (
            select(func.count(TransportAsset.id))
            .where(TransportAsset.unit_id == u.id, TransportAsset.kind == kind)
            .scalar_subquery()
        )

    return (
        select(
            b.entry_id,
            e.unit_id.label("unit_id"),
            b.code,
            u.country_iso2.label("country"),
            u.latitude.label("lat"),
            u.longitude.label("lon"),
            groups.label("groups"),
            case((_has(groups, G.LEVEL), e.level)).label("level"),
            e.package_size.label("package"),
            e.notice_to_move_hours.label("notice"),
            case((has_kind("aircraft") > 0, 1), else_=0).label("plane"),
            case((has_kind("helicopter") > 0, 1), else_=0).label("heli"),
            e.may_deploy_abroad.label("abroad"),
            e.may_carry_arms_abroad.label("arms"),
            e.may_carry_explosives_abroad.label("explosives"),
            e.confirmed_on.label("confirmed_on"),
            _distance_km(dialect, u).label("dist"),
            b.committed,
            _language_points_sql(cast(u.languages, String), native, english).label("lang"),
            _crossings_sql(dialect, u).label("crossings"),
            b.score,
            b.eligible,
            b.eta_unknown,
            select(func.count())
            .select_from(scored)
            .where(s.eligible == 1)
            .scalar_subquery()
            .label("n_fit"),
            select(func.count()).select_from(scored).scalar_subquery().label("n_all"),
            select(func.count(Unit.id)).scalar_subquery().label("n_units"),
        )
        .select_from(best)
        .join(e, e.id == b.entry_id)
        .join(u, u.id == e.unit_id)
        .order_by(b.eligible.desc(), b.eta_unknown, b.score.desc(), b.code)
    )


def _statement_params(
    request: AssistanceRequest,
    line: RequestLine,
    ctx: LegalContext,
    *,
    stale_cut: date,
    hours_left: float | None,
) -> dict[str, Any]:
    home = request.requesting_country
    neighbours = geography.NEIGHBOURS.get(home, frozenset())
    barred = sorted(country for country in ctx.countries if legal_fit(ctx, country, None))
    others = sorted(ctx.countries - {home})
    lat, lon = request.latitude, request.longitude
    known = lat is not None and lon is not None
    return {
        "incident_lat_rad": math.radians(lat) if known and lat is not None else None,
        "incident_lon_rad": math.radians(lon) if known and lon is not None else None,
        "incident_cos_lat": math.cos(math.radians(lat)) if known and lat is not None else None,
        "capability_type_id": line.capability_type_id,
        "requesting_country": home,
        # -1: no offer has it, so a request not yet stored counts every deployment.
        "request_id": request.id if request.id is not None else -1,
        "neighbours": sorted(neighbours),
        "min_level": line.min_level,
        "quantity": line.quantity,
        "quantity_f": float(line.quantity),
        "hours_left": hours_left,
        "stale_cut": stale_cut,
        "arms_rule": ctx.arms_needed and not ctx.host_prohibits_arms,
        "explosives_rule": ctx.explosives_needed and not ctx.host_prohibits_explosives,
        # Country-level rules (bilateral agreements, 2008/617) as one list of barred countries.
        "barred": barred,
        # The same per other country, as _CountryFacts' table on PostgreSQL.
        "other_countries": others,
        "other_crossings": [1 if c in neighbours else 2 for c in others],
        "other_barred": [1 if c in barred else 0 for c in others],
    }


# --- Road times from a routing service ---------------------------------------------------


class RoutingUnavailable(Exception):
    """The service could not be reached (or answered with a server error): stop asking it."""


class RouteFailed(Exception):
    """The service answered, but not with a route for this pair (e.g. no road to an island)."""


# The routing service is an internal one: called directly, never through an HTTP proxy that
# the environment may configure for the outside world.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_MAX_ANSWER_BYTES = 1_000_000


def route_hours(
    base_url: str, timeout: float, lat1: float, lon1: float, lat2: float, lon2: float
) -> float:
    """Driving time in hours from an OSRM-compatible ``/route/v1/driving`` service."""
    if not base_url.startswith(("http://", "https://")):
        raise RoutingUnavailable("routing_url is not an http(s) URL")
    url = (
        f"{base_url.rstrip('/')}/route/v1/driving/"
        f"{lon1:.6f},{lat1:.6f};{lon2:.6f},{lat2:.6f}?overview=false"
    )
    try:
        with _OPENER.open(url, timeout=timeout) as answer:
            body = json.loads(answer.read(_MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as e:
        e.close()
        if e.code >= 500:
            raise RoutingUnavailable(f"HTTP {e.code}") from e
        raise RouteFailed(f"HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:  # refused, unreachable, timed out
        reason = getattr(e, "reason", None) or e
        raise RoutingUnavailable(str(reason) or type(e).__name__) from e
    except ValueError as e:  # not JSON (http.client errors are ValueError/OSError too)
        raise RouteFailed("unreadable answer") from e
    try:
        if body.get("code") != "Ok":
            raise RouteFailed(str(body.get("code") or "no route"))
        seconds = float(body["routes"][0]["duration"])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as e:
        raise RouteFailed("unexpected answer") from e
    if not math.isfinite(seconds) or seconds < 0:
        raise RouteFailed("unexpected duration")
    return seconds / 3600


# --- The best rows: vectorised over the per-process columns, or by the SQL statement --------


@dataclass(frozen=True, slots=True)
class _Row:
    """One entry chosen for the ranking, with the inputs of its score: what both ways of
    choosing return (the columns of the statement's outer SELECT)."""

    entry_id: int
    unit_id: int
    code: str
    country: str
    lat: float | None
    lon: float | None
    groups: int  # units.matching_groups
    level: int | None  # None unless the level is shared with the engine
    package: int | None  # raw: _plan applies the groups
    notice: int | None
    plane: int  # 1: the unit has an aircraft (shared with the engine or not)
    heli: int
    abroad: bool
    arms: bool
    explosives: bool
    confirmed_on: date
    dist: float | None
    committed: int
    lang: float
    crossings: int
    score: float
    eligible: int
    eta_unknown: int


_ROW_FIELDS = tuple(_Row.__dataclass_fields__)
# A row of the columns path is a row's stored facts (matching_columns.EntryFacts, the first
# fields) followed by what the request computes.


@dataclass(frozen=True)
class _Best:
    """The best ``limit`` rows that fit and the best-placed excluded ones (each best first),
    and the counts."""

    fit: list[_Row]
    unfit: list[_Row]
    candidate_count: int
    considered: int
    units_total: int


# Deployments of each unit on other live requests (the statement's ``deployed``).
_DEPLOYED_ELSEWHERE = (
    select(Offer.unit_id, func.count(Offer.id).label("n"))
    .join(AssistanceRequest, AssistanceRequest.id == Offer.request_id)
    .where(
        Offer.status.in_(sorted(states.DEPLOYED)),
        AssistanceRequest.status.in_(sorted(states.LIVE)),
        Offer.request_id != bindparam("request_id", type_=Integer),
    )
    .group_by(Offer.unit_id)
)
# PostgreSQL: the same as one row of two arrays (a third less time than a row per unit).
_DEPLOYED_SUBQUERY = _DEPLOYED_ELSEWHERE.subquery()
_DEPLOYED_ARRAYS = select(
    func.array_agg(_DEPLOYED_SUBQUERY.c.unit_id), func.array_agg(_DEPLOYED_SUBQUERY.c.n)
)


def _deployed_elsewhere(session: Session, request: AssistanceRequest) -> dict[int, int]:
    """Per unit, its teams deployed on other live requests. On the connection, without the
    ORM's per-call work: rank_line's first read (the registry version) has flushed the session
    already. -1: no offer has it, so a request not yet stored counts every deployment."""
    conn = session.connection()
    params = {"request_id": request.id if request.id is not None else -1}
    if conn.dialect.name == "postgresql":
        ids, counts = conn.execute(_DEPLOYED_ARRAYS, params).one()
        return dict(zip(ids or [], counts or [], strict=True))
    return {unit_id: n for unit_id, n in conn.execute(_DEPLOYED_ELSEWHERE, params)}


def _best_by_columns(
    session: Session,
    version: str,
    request: AssistanceRequest,
    line: RequestLine,
    ctx: LegalContext,
    languages: frozenset[str],
    *,
    stale_cut: date,
    hours_left: float | None,
    limit: int,
) -> _Best:
    """:func:`score` and the hard exclusions for every entry of the line's type at once, over
    the per-process columns (operations.matching_columns): the same formula, term by term and
    in the same order as the statement and score(), from what the engine may use of each unit."""
    c = matching_columns.type_at(session, version, line.capability_type_id)
    units = c.units
    home = request.requesting_country
    neighbours = geography.NEIGHBOURS.get(home, frozenset())
    # Per country of the registry, then per row by its country's index.
    country_considered = np.array(
        [x != home and x in ctx.countries for x in units.countries], dtype=np.bool_
    )
    country_barred = np.array(
        [bool(legal_fit(ctx, x, None)) for x in units.countries], dtype=np.bool_
    )
    country_crossings = np.array(
        [1 if x in neighbours else 2 for x in units.countries], dtype=np.int64
    )
    considered = country_considered[c.country]
    crossings = country_crossings[c.country]

    # What the engine may use: a hidden level is NaN, a hidden package scores 0, a hidden
    # notice-to-move counts as the default, hidden transport means road only.
    level = np.where(c.has(G.LEVEL), c.level, np.nan)
    package = np.where(c.has(G.PACKAGE), c.package, np.nan)
    notice = np.where(c.has(G.NOTICE) & ~np.isnan(c.notice), c.notice, DEFAULT_NOTICE_HOURS)
    transport = c.has(G.TRANSPORT)

    lat, lon = request.latitude, request.longitude
    if lat is None or lon is None:
        dist = np.full(len(c), np.nan)
    else:
        # geography.haversine_km as the statement writes it (_distance_km); NaN propagates
        # from a unit without coordinates.
        incident_lat, incident_lon = math.radians(lat), math.radians(lon)
        a = np.sin((c.lat_rad - incident_lat) / 2.0) ** 2 + math.cos(incident_lat) * c.cos_lat * (
            np.sin((c.lon_rad - incident_lon) / 2.0) ** 2
        )
        dist = (2.0 * geography.EARTH_RADIUS_KM) * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    road = dist * ROAD_DETOUR_FACTOR / ROAD_KMH + crossings * BORDER_CROSSING_HOURS
    plane = np.where(transport & c.aircraft, dist / AIRCRAFT_KMH + AIRCRAFT_OVERHEAD_HOURS, _NEVER)
    heli = np.where(
        transport & c.helicopter & (dist <= HELICOPTER_MAX_KM),
        dist / HELICOPTER_KMH + HELICOPTER_OVERHEAD_HOURS,
        _NEVER,
    )
    eta = notice + np.minimum(np.minimum(road, plane), heli)  # NaN: unknown
    eta_unknown = np.isnan(eta)

    speaks_native = units.speaks(languages - {ENGLISH})[c.unit]
    speaks_english = units.speaks(languages & {ENGLISH})[c.unit]
    lang = np.where(speaks_native, W_NATIVE_LANGUAGE, np.where(speaks_english, W_ENGLISH, 0.0))

    committed = np.zeros(len(c), dtype=np.int64)
    deployed = _deployed_elsewhere(session, request)
    if deployed and len(c):
        ids = np.fromiter(deployed, dtype=np.int64, count=len(deployed))
        at = np.minimum(np.searchsorted(c.unit_id, ids), len(c) - 1)
        hit = c.unit_id[at] == ids
        committed[at[hit]] = np.fromiter(deployed.values(), dtype=np.int64)[hit]

    quantity = line.quantity
    min_level = line.min_level
    # score(), term by term and in the same order (so that the floats agree).
    points = (
        np.where(np.isnan(level), 0.0, (level - min_level) * W_LEVEL)
        + np.where(
            np.isnan(package),
            0.0,
            np.where(package >= quantity, W_PACKAGE, W_PACKAGE * package / float(quantity)),
        )
        + np.where(eta_unknown, 0.0, W_ETA * ETA_HALF_HOURS / (ETA_HALF_HOURS + eta))
        + (np.where(eta > hours_left, -W_LATE, 0.0) if hours_left is not None else 0.0)
        + lang
        - W_COMMITMENT * np.minimum(committed, MAX_COMMITMENTS_COUNTED)
        - np.where(c.confirmed_on < stale_cut.toordinal(), W_STALE, 0.0)
    )
    # Hard exclusions: legal_fit and _Explainer._level_reasons (rank_line checks every row).
    level_known = ~np.isnan(level)
    arms_rule = ctx.arms_needed and not ctx.host_prohibits_arms
    explosives_rule = ctx.explosives_needed and not ctx.host_prohibits_explosives
    excluded = (
        (level_known & (level < min_level))
        | (~level_known & (min_level > 0))
        | ~c.abroad
        | (~c.arms if arms_rule else False)
        | (~c.explosives if explosives_rule else False)
        | country_barred[c.country]
    )
    fits = considered & ~excluded

    def best(mask: Any, n: int) -> list[int]:
        """The first ``n`` rows of ``mask`` in the ranking's order: known ETA first, then the
        score, then the unit code."""
        rows = np.flatnonzero(mask)
        known = rows[~eta_unknown[rows]]
        if len(known) > n:
            # Only rows with a known ETA scoring at least the n-th best of them can be first.
            cut = np.partition(-points[known], n - 1)[n - 1]
            rows = known[-points[known] <= cut]
        order = np.lexsort((c.code_rank[rows], -points[rows], eta_unknown[rows]))
        out: list[int] = rows[order[:n]].tolist()
        return out

    chosen_fit, chosen_unfit = best(fits, limit), best(considered & excluded, _EXCLUDED_READ)
    chosen = chosen_fit + chosen_unfit
    computed = zip(
        [None if math.isnan(d) else d for d in dist[chosen].tolist()],
        committed[chosen].tolist(),
        lang[chosen].tolist(),
        crossings[chosen].tolist(),
        points[chosen].tolist(),
        [1] * len(chosen_fit) + [0] * len(chosen_unfit),
        eta_unknown[chosen].astype(np.int64).tolist(),
        strict=True,
    )
    rows = [_Row(*facts, *values) for facts, values in zip(c.facts(chosen), computed, strict=True)]
    return _Best(
        fit=rows[: len(chosen_fit)],
        unfit=rows[len(chosen_fit) :],
        candidate_count=int(np.count_nonzero(fits)),
        considered=int(np.count_nonzero(considered)),
        units_total=units.count,
    )


def _best_by_sql(
    session: Session,
    request: AssistanceRequest,
    line: RequestLine,
    ctx: LegalContext,
    languages: frozenset[str],
    *,
    stale_cut: date,
    hours_left: float | None,
    limit: int,
) -> _Best:
    """The same as :func:`_best_by_columns`, by the ranking statement (the reference: the
    equivalence tests compare the two; nothing else uses it)."""
    statement = _candidate_statement(
        _dialect(session), tuple(sorted(languages - {ENGLISH})), ENGLISH in languages
    )
    params = _statement_params(request, line, ctx, stale_cut=stale_cut, hours_left=hours_left)
    rows = session.execute(
        statement, {**params, "fit_rows": limit, "unfit_rows": _EXCLUDED_READ}
    ).all()
    chosen = [_Row(**{f: getattr(r, f) for f in _ROW_FIELDS}) for r in rows]
    if not rows:
        units_total = session.scalar(select(func.count(Unit.id))) or 0
        return _Best([], [], 0, 0, units_total)
    return _Best(
        fit=[r for r in chosen if r.eligible == 1],
        unfit=[r for r in chosen if r.eligible == 0],  # best-placed first
        candidate_count=rows[0].n_fit,
        considered=rows[0].n_all,
        units_total=rows[0].n_units,
    )


# --- rank_line ---------------------------------------------------------------------------


@dataclass
class _Plan:
    """One row's numbers (internal: the numeric ETA and the score are never shown)."""

    row: _Row
    inputs: ScoreInputs
    score: Score
    road_note: str = ""

    @property
    def key(self) -> tuple[bool, float, str]:
        # Known ETAs first, then the score, then the unit code (deterministic ties).
        return (self.score.eta is None, -self.score.points, self.row.code)


def _plan(
    row: _Row,
    engine: frozenset[FieldGroup],
    line: RequestLine,
    stale_cut: date,
    hours_left: float | None,
) -> _Plan:
    """The row's true score, from what the matching engine may use of the unit."""
    transport = G.TRANSPORT in engine
    inputs = ScoreInputs(
        level=row.level,  # NULL in SQL unless the level is shared with the engine
        package=row.package if G.PACKAGE in engine else None,
        notice=row.notice if G.NOTICE in engine else None,
        distance_km=row.dist,
        border_crossings=row.crossings,
        aircraft=transport and bool(row.plane),
        helicopter=transport and bool(row.heli),
        language_points=float(row.lang),
        committed=row.committed,
        stale=row.confirmed_on < stale_cut,
    )
    return _Plan(
        row,
        inputs,
        score(inputs, min_level=line.min_level, quantity=line.quantity, hours_left=hours_left),
    )


# Float tolerance between the score computed in SQL and the score computed in Python.
_EPSILON = 1e-6


def _checked_plan(row: _Row, line: RequestLine, stale_cut: date, hours_left: float | None) -> _Plan:
    """The row's score in Python, from the groups the statement used; the SQL must agree (one
    formula), or the ranking could have missed its best units."""
    plan = _plan(row, matching_groups.groups(row.groups), line, stale_cut, hours_left)
    if (plan.score.eta is None) != bool(row.eta_unknown) or abs(
        plan.score.points - float(row.score)
    ) > _EPSILON:
        raise RuntimeError(f"ranking SQL and score() disagree on unit {row.unit_id}")
    return plan


def _refine_road_times(
    plans: list[_Plan],
    request: AssistanceRequest,
    line: RequestLine,
    hours_left: float | None,
) -> str | None:
    """Road times of the returned candidates from the routing service, if one is configured.
    Returns a note for the ranking; each plan's road_note says what happened to it."""
    settings = get_settings()
    if not settings.routing_url or request.latitude is None or request.longitude is None:
        return None
    timeout = settings.routing_timeout_seconds
    deadline = time.monotonic() + ROUTING_BUDGET_TIMEOUTS * timeout
    unavailable: str | None = None
    used = asked = 0
    for plan in plans:
        row = plan.row
        if row.dist is None or row.lat is None or row.lon is None:
            continue
        asked += 1
        if unavailable is None and time.monotonic() > deadline:
            unavailable = "did not answer in time"
        if unavailable is not None:
            plan.road_note = f"road time estimated from distance: routing service {unavailable}"
            continue
        try:
            hours = route_hours(
                settings.routing_url, timeout, row.lat, row.lon, request.latitude, request.longitude
            )
        except RoutingUnavailable as e:
            unavailable = f"unavailable ({e})"
            plan.road_note = f"road time estimated from distance: routing service {unavailable}"
            continue
        except RouteFailed as e:
            plan.road_note = (
                f"road time estimated from distance: routing service gave no route ({e})"
            )
            continue
        used += 1
        # The service knows roads and ferries, not police procedures at borders.
        road = hours + row.crossings * BORDER_CROSSING_HOURS
        plan.score = score(
            plan.inputs,
            min_level=line.min_level,
            quantity=line.quantity,
            hours_left=hours_left,
            road_hours=road,
        )
        plan.road_note = "road time from the routing service"
    plans.sort(key=lambda p: p.key)
    if unavailable is not None:
        return f"Routing service {unavailable}: road times estimated from distances."
    return f"Road times of {used} of {asked} candidates from the routing service."


class _ShownEntry(NamedTuple):
    """The columns of an explained entry that redact.candidate_view reads."""

    id: int
    unit_id: int
    level: int
    package_size: int | None
    notice_to_move_hours: int | None
    self_sufficiency_hours: int | None
    may_deploy_abroad: bool
    may_carry_arms_abroad: bool
    may_carry_explosives_abroad: bool
    last_validated: date | None
    validated_exercise: str | None
    confirmed_on: date


class _ShownUnit(NamedTuple):
    id: int
    code: str
    name: str
    country_iso2: str
    base_location: str
    languages: list[str]


class _ShownTransport(NamedTuple):
    unit_id: int
    kind: str
    description: str
    quantity: int
    capacity_persons: int | None


_ENTRY = CapabilityEntry.__table__
_UNIT = Unit.__table__
_TRANSPORT = TransportAsset.__table__
_SHOWN_ROWS = select(
    *(_ENTRY.c[f] for f in _ShownEntry._fields), *(_UNIT.c[f] for f in _ShownUnit._fields)
).join(_UNIT, _UNIT.c.id == _ENTRY.c.unit_id)
_ENTRY_WIDTH = len(_ShownEntry._fields)
_SHOWN_TRANSPORT = select(*(_TRANSPORT.c[f] for f in _ShownTransport._fields)).order_by(
    _TRANSPORT.c.id
)


# Per process, under the registry version: the explained entries with their units, and each
# unit's transport assets (a few hundred rows are explained over and over).
_SHOWN_CACHE: registry_version.VersionedCache[int, tuple[_ShownEntry, _ShownUnit]] = (
    registry_version.VersionedCache(maxsize=20_000)
)
_TRANSPORT_CACHE: registry_version.VersionedCache[int, tuple[_ShownTransport, ...]] = (
    registry_version.VersionedCache(maxsize=10_000)
)


def _shown_rows(
    session: Session, version: str, entry_ids: list[int]
) -> dict[int, tuple[_ShownEntry, _ShownUnit]]:
    """The entries (with their units) of ``entry_ids`` that still exist, by entry id."""
    found, missing = _SHOWN_CACHE.get_many(version, entry_ids)
    if missing:
        loaded = {}
        rows = session.connection().execute(_SHOWN_ROWS.where(id_in(session, _ENTRY.c.id, missing)))
        for cols in rows:
            loaded[cols[0]] = (
                _ShownEntry._make(cols[:_ENTRY_WIDTH]),
                _ShownUnit._make(cols[_ENTRY_WIDTH:]),
            )
        _SHOWN_CACHE.put_many(version, loaded)
        found |= loaded
    return found


def _shown_transport(
    session: Session, version: str, unit_ids: list[int]
) -> dict[int, tuple[_ShownTransport, ...]]:
    """The transport assets of ``unit_ids`` (in id order), by unit id."""
    found, missing = _TRANSPORT_CACHE.get_many(version, unit_ids)
    if missing:
        loaded: dict[int, list[_ShownTransport]] = {u: [] for u in missing}
        rows = session.connection().execute(
            _SHOWN_TRANSPORT.where(id_in(session, _TRANSPORT.c.unit_id, missing))
        )
        for t in rows:
            loaded[t.unit_id].append(_ShownTransport._make(t))
        assets = {u: tuple(v) for u, v in loaded.items()}
        _TRANSPORT_CACHE.put_many(version, assets)
        found |= assets
    return found


def rank_line(
    session: Session,
    viewer: Principal,
    request: AssistanceRequest,
    line: RequestLine,
    *,
    now: datetime,
    limit: int = 25,
    scoring: Literal["columns", "sql"] = "columns",
) -> Ranking:
    """Rank the units of other countries for one line of ``request``, as ``viewer`` sees it.

    Reads only; appends nothing. Values beyond network-wide that the viewer receives are noted
    for the read audit (through ``sharing.redact.candidate_view``). ``scoring="sql"`` chooses
    the best rows with the ranking statement instead of the per-process columns: the reference
    the equivalence tests compare with (the result is the same).
    """
    if line.request_id != request.id:
        raise ValueError("the line does not belong to the request")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    settings = get_settings()
    # Read first: every registry value used below is at least as new as this version.
    version = registry_version.current(session)
    ctype = session.get(CapabilityType, line.capability_type_id)
    if ctype is None:
        raise ValueError("the line's capability type does not exist")
    today = now.date()
    ctx = load_legal_context(session, request, on=today, version=version).for_line(ctype.code)
    if scoring == "columns":
        units = matching_columns.units_at(session, version)
        languages = (
            units.languages_of_unit(request.requesting_unit_id)
            if request.requesting_unit_id is not None
            else units.languages_of_country(request.requesting_country)
        )
    else:
        languages = _requesting_languages(session, request)
    stale_cut = redact.stale_before(today, settings.stale_after_days)
    hours_left = (
        (line.needed_by - now).total_seconds() / 3600 if line.needed_by is not None else None
    )

    if scoring == "columns":
        best = _best_by_columns(
            session,
            version,
            request,
            line,
            ctx,
            languages,
            stale_cut=stale_cut,
            hours_left=hours_left,
            limit=limit,
        )
    else:
        best = _best_by_sql(
            session,
            request,
            line,
            ctx,
            languages,
            stale_cut=stale_cut,
            hours_left=hours_left,
            limit=limit,
        )
    fit, unfit = best.fit, best.unfit
    # Agreements: of every candidate, and of excluded units in order until MAX_EXCLUDED of
    # them may be named to the viewer (most may: usually the first batch suffices).
    agreements = load_agreements(
        session, [r.unit_id for r in fit + unfit[:MAX_EXCLUDED]], version=version
    )
    seen: dict[int, frozenset[FieldGroup]] = {}  # what the viewer may see of each unit

    def usable(unit_id: int) -> bool:
        """Whether the engine may still use the unit's entries (a unit whose sharing changed
        since the statement, in another transaction, is dropped, never named); notes what the
        viewer may see of it."""
        agreement = agreements[unit_id]
        seen[unit_id] = visible_groups(viewer, agreement)
        return G.EXISTENCE in visible_groups(MATCHING_ENGINE, agreement)

    plans = sorted(
        (_checked_plan(r, line, stale_cut, hours_left) for r in fit if usable(r.unit_id)),
        key=lambda p: p.key,
    )
    candidate_count = best.candidate_count
    excluded_count = best.considered - candidate_count
    units_total = best.units_total
    engine = {r.unit_id: matching_groups.groups(r.groups) for r in fit + unfit}
    # Best-placed first (by the score they would have had), and named only to a viewer who may
    # know that the unit holds this capability at all.
    named: list[_Row] = []
    for n, r in enumerate(unfit):
        if len(named) == MAX_EXCLUDED:
            break
        if r.unit_id not in agreements:
            batch = [x.unit_id for x in unfit[n : n + MAX_EXCLUDED]]
            agreements.update(load_agreements(session, batch, version=version))
        if usable(r.unit_id) and G.EXISTENCE in seen[r.unit_id]:
            named.append(r)
    misfits = sorted(
        (_checked_plan(r, line, stale_cut, hours_left) for r in named), key=lambda p: p.key
    )

    notes: list[str] = []
    if request.latitude is None or request.longitude is None:
        notes.append("The incident has no coordinates: no arrival time can be estimated.")
    routing_note = _refine_road_times(plans, request, line, hours_left)
    if routing_note:
        notes.append(routing_note)

    # The explained rows' units and entries, and their transport where it is shown: registry
    # data, kept per process under the version read above (ADR 0004); what is missing, in one
    # read each.
    entries = _shown_rows(
        session, version, [p.row.entry_id for p in plans] + [p.row.entry_id for p in misfits]
    )
    transport = _shown_transport(
        session,
        version,
        sorted({e.unit_id for e, _ in entries.values() if G.TRANSPORT in seen[e.unit_id]}),
    )
    explain = _Explainer(ctx, line, languages, settings.stale_after_days, hours_left)

    candidates: list[Candidate] = []
    for plan in plans:
        row = plan.row
        if row.entry_id not in entries:  # deleted since the statement
            continue
        entry, unit = entries[row.entry_id]
        explain.check_fits(row)
        agreement = agreements[unit.id]
        shown = redact.candidate_view(viewer, unit, agreement, entry, transport.get(unit.id, ()))
        eta = plan.score.eta
        candidates.append(
            Candidate(
                rank=len(candidates) + 1,
                unit_id=unit.id,
                unit_code=unit.code,
                unit_name=unit.name,
                country=unit.country_iso2,
                country_display=display_country(unit.country_iso2),
                ring=geography.ring_of(request.requesting_country, unit.country_iso2),
                eta_band=eta_band(eta),
                arrives_before_needed_by=(
                    None if eta is None or hours_left is None else eta <= hours_left
                ),
                factors=explain.factors(plan, request, seen[unit.id], engine[unit.id], shown),
                shown=shown,
                committed_elsewhere=row.committed,
            )
        )

    excluded: list[Exclusion] = []
    for plan in misfits:
        row = plan.row
        if row.entry_id not in entries:
            continue
        entry, unit = entries[row.entry_id]
        agreement = agreements[unit.id]
        shown = redact.candidate_view(viewer, unit, agreement, entry, transport.get(unit.id, ()))
        excluded.append(
            Exclusion(
                unit_id=unit.id,
                unit_code=unit.code,
                unit_name=unit.name,
                country=unit.country_iso2,
                country_display=display_country(unit.country_iso2),
                reasons=explain.reasons(row, shown),
                shown=shown,
            )
        )

    return Ranking(
        request_id=request.id,
        line_id=line.id,
        line_no=line.line_no,
        capability_code=ctype.code,
        capability_name=ctype.name,
        min_level=line.min_level,
        quantity=line.quantity,
        needed_by=line.needed_by,
        candidates=candidates,
        candidate_count=candidate_count,
        excluded=excluded,
        excluded_count=excluded_count,
        not_considered=max(0, units_total - candidate_count - excluded_count),
        notes=notes,
        computed_at=now,
    )


# --- Explanations ------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class _Explainer:
    """Writes the factors and reasons of the returned rows. Every value it prints comes from
    the viewer's ``shown`` (sharing.redact); a value the viewer may not see is only ever
    compared with what the request asks ("meets the minimum level (… not shared with you)")."""

    ctx: LegalContext
    line: RequestLine
    languages: frozenset[str]
    stale_days: int
    hours_left: float | None

    def _level_reasons(self, row: _Row, shown: Mapping[str, Any]) -> list[str]:
        minimum = self.line.min_level
        if row.level is None:
            if minimum > 0:
                return [
                    "level not shared with the matching engine, so the minimum level "
                    f"{minimum} cannot be checked"
                ]
            return []
        if row.level >= minimum:
            return []
        if "level" in shown:
            return [f"level {shown['level']} is below the minimum {minimum}"]
        return [f"below the minimum level {minimum} (level not shared with you)"]

    def _flags(self, row: _Row) -> EntryFlags:
        return EntryFlags(bool(row.abroad), bool(row.arms), bool(row.explosives))

    def check_fits(self, row: _Row) -> None:
        """The SQL decided this row fits; the Python rules must agree (one set of rules)."""
        if self._level_reasons(row, {}) or legal_fit(self.ctx, row.country, self._flags(row)):
            raise RuntimeError(f"ranking SQL and legal_fit disagree on unit {row.unit_id}")

    def reasons(self, row: _Row, shown: Mapping[str, Any]) -> list[str]:
        reasons = self._level_reasons(row, shown) + legal_fit(
            self.ctx, row.country, self._flags(row)
        )
        if not reasons:
            raise RuntimeError(f"ranking SQL and legal_fit disagree on unit {row.unit_id}")
        return reasons

    def factors(
        self,
        plan: _Plan,
        request: AssistanceRequest,
        groups: frozenset[FieldGroup],
        engine: frozenset[FieldGroup],
        shown: Mapping[str, Any],
    ) -> list[Factor]:
        row = plan.row
        # Numbers the engine used come from plan.inputs (what it may use); numbers printed come
        # from shown (what the viewer may see).
        out = [
            self._level(plan.inputs.level, shown),
            self._package(plan.inputs.package, engine, shown),
        ]
        out += self._eta(plan, request, groups, engine, shown)
        out.append(self._languages(shown))
        n = row.committed
        out.append(
            Factor(
                code="commitments",
                verdict="weak",
                text=f"deployed on {_plural(n, 'other live request')}",
            )
            if n
            else Factor(code="commitments", verdict="good", text="no current deployment elsewhere")
        )
        out.append(self._freshness(plan.inputs.stale, shown))
        out += self._legal(row, shown)
        return out

    def _level(self, used: int | None, shown: Mapping[str, Any]) -> Factor:
        minimum = self.line.min_level
        if used is None:
            return Factor(
                code="level",
                verdict="weak",
                text="level not shared with the matching engine (the line asks for no minimum)",
            )
        if "level" in shown:
            level = shown["level"]
            return Factor(
                code="level",
                verdict="good" if level > minimum else "ok",
                text=f"level {level} (minimum {minimum})",
            )
        # The verdict is the same whatever the margin: a "good" would tell the level.
        return Factor(
            code="level",
            verdict="ok",
            text=f"meets the minimum level {minimum} (level not shared with you)",
        )

    def _package(
        self, used: int | None, engine: frozenset[FieldGroup], shown: Mapping[str, Any]
    ) -> Factor:
        quantity = self.line.quantity
        if used is None:
            why = "not recorded" if G.PACKAGE in engine else "not shared with the matching engine"
            return Factor(code="package", verdict="weak", text=f"package size {why}")
        covers = used >= quantity
        if "package_size" in shown and shown["package_size"] is not None:
            size = shown["package_size"]
            text = (
                f"package of {size} covers the {quantity} requested"
                if covers
                else f"package of {size} covers {size} of the {quantity} requested"
            )
        else:
            text = (
                "covers the whole requested quantity"
                if covers
                else "covers part of the requested quantity"
            ) + " (package size not shared with you)"
        return Factor(code="package", verdict="good" if covers else "ok", text=text)

    def _eta(
        self,
        plan: _Plan,
        request: AssistanceRequest,
        groups: frozenset[FieldGroup],
        engine: frozenset[FieldGroup],
        shown: Mapping[str, Any],
    ) -> list[Factor]:
        used_notice = plan.inputs.notice
        out: list[Factor] = []
        if used_notice is None:
            why = "not recorded" if G.NOTICE in engine else "not shared with the matching engine"
            out.append(
                Factor(
                    code="notice",
                    verdict="weak",
                    text=f"notice-to-move {why}: {DEFAULT_NOTICE_HOURS:g} h assumed",
                )
            )
        eta = plan.score.eta
        if eta is None:
            where = (
                "the incident has no coordinates"
                if request.latitude is None or request.longitude is None
                else "the unit's base has no coordinates"
            )
            out.append(Factor(code="eta", verdict="weak", text=f"arrival time unknown: {where}"))
            return out
        parts: list[str] = []
        if G.TRANSPORT in groups and plan.score.mode:
            parts.append(f"by {plan.score.mode}")
        if shown.get("notice_to_move_hours") is not None:
            parts.append(f"notice-to-move {shown['notice_to_move_hours']} h")
        elif used_notice is not None:
            parts.append("notice-to-move not shared with you")
        if plan.road_note:
            parts.append(plan.road_note)
        verdict: Literal["good", "ok", "weak"] = "good" if eta < 4 else "ok" if eta < 12 else "weak"
        detail = f" ({'; '.join(parts)})" if parts else ""
        out.append(
            Factor(code="eta", verdict=verdict, text=f"estimated arrival {eta_band(eta)}{detail}")
        )
        if self.hours_left is not None:
            out.append(
                Factor(code="needed_by", verdict="good", text="expected before the time needed")
                if eta <= self.hours_left
                else Factor(
                    code="needed_by",
                    verdict="weak",
                    text="may arrive after the time needed (still a candidate)",
                )
            )
        return out

    def _languages(self, shown: Mapping[str, Any]) -> Factor:
        theirs = set(shown.get("languages") or [])
        if not self.languages:
            return Factor(
                code="languages",
                verdict="weak",
                text="the requesting side declares no working language",
            )
        common = sorted(theirs & self.languages)
        native = [c for c in common if c != ENGLISH]
        if native:
            plural = "s" if len(common) > 1 else ""
            return Factor(
                code="languages",
                verdict="good",
                text=f"shared working language{plural}: {', '.join(common)}",
            )
        if common:
            return Factor(code="languages", verdict="ok", text="shared working language: en only")
        return Factor(code="languages", verdict="weak", text="no shared working language")

    def _freshness(self, stale: bool, shown: Mapping[str, Any]) -> Factor:
        confirmed = shown.get("confirmed_on")
        if stale:
            text = (
                f"capability data last confirmed on {confirmed.isoformat()}, more than "
                f"{self.stale_days} days ago"
                if confirmed is not None
                else f"capability data not confirmed for more than {self.stale_days} days"
            )
            return Factor(code="freshness", verdict="weak", text=text)
        text = (
            f"capability data confirmed on {confirmed.isoformat()}"
            if confirmed is not None
            else f"capability data confirmed within {self.stale_days} days"
        )
        return Factor(code="freshness", verdict="good", text=text)

    def _legal(self, row: _Row, shown: Mapping[str, Any]) -> list[Factor]:
        ctx = self.ctx
        out: list[Factor] = []
        host = display_country(ctx.requesting_country)
        pair = f"{host}{DASH}{display_country(row.country)}"
        if ctx.bilateral_needed(row.country):
            named = ctx.named_agreement
            valid = (
                named
                if ctx.legal_basis == BASIS_BILATERAL
                else next(
                    (a for a in ctx.agreements.get(row.country, ()) if a.valid_on(ctx.on)), None
                )
            )
            if valid is not None:
                out.append(
                    Factor(
                        code="legal",
                        verdict="good",
                        text=f"bilateral agreement “{valid.name}” covers {pair}",
                    )
                )
        if ctx.arms_needed:
            if ctx.host_prohibits_arms:
                out.append(
                    Factor(
                        code="host_arms",
                        verdict="ok",
                        text=f"the host ({host}) prohibits foreign officers' arms: the team "
                        "comes without them",
                    )
                )
            elif shown.get("may_carry_arms_abroad"):
                out.append(Factor(code="arms", verdict="good", text="cleared to carry arms abroad"))
        if ctx.explosives_needed:
            if ctx.host_prohibits_explosives:
                out.append(
                    Factor(
                        code="host_explosives",
                        verdict="ok",
                        text=f"the host ({host}) prohibits foreign explosives: breaching "
                        "charges must come from the host",
                    )
                )
            elif shown.get("may_carry_explosives_abroad"):
                out.append(
                    Factor(
                        code="explosives", verdict="good", text="cleared to carry explosives abroad"
                    )
                )
        return out
