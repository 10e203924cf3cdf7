"""The one place that decides which of a unit's fields a principal may see.

Every way data leaves the platform (API, pages, exports, search, and whatever later issues
add) asks this module. Audiences are nested, from widest to narrowest:

    network  >  listed countries/units  >  support office  >  matching engine  >  own unit

so a group shared with listed countries is also visible to the support office, and so on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import Principal
from atlaslink.db import id_in
from atlaslink.models import SharingRule, SharingTarget
from atlaslink.registry import version as registry_version


class Audience(StrEnum):
    NETWORK = "network"
    LISTED = "listed"
    SUPPORT_OFFICE = "support_office"
    MATCHING = "matching"
    OWN_UNIT = "own_unit"


AUDIENCE_LABELS: dict[Audience, str] = {
    Audience.NETWORK: "Network-wide",
    Audience.LISTED: "Listed countries or units",
    Audience.SUPPORT_OFFICE: "Support office",
    Audience.MATCHING: "Matching engine only (never shown)",
    Audience.OWN_UNIT: "Own unit only",
}


class FieldGroup(StrEnum):
    EXISTENCE = "existence"
    LEVEL = "level"
    PACKAGE = "package"
    NOTICE = "notice"
    TRANSPORT = "transport"
    CONTACTS = "contacts"


FIELD_GROUP_LABELS: dict[FieldGroup, str] = {
    FieldGroup.EXISTENCE: "Existence of each capability (and legal flags, validation dates)",
    FieldGroup.LEVEL: "Capability levels",
    FieldGroup.PACKAGE: "Package size, numbers and self-sufficiency",
    FieldGroup.NOTICE: "Notice-to-move",
    FieldGroup.TRANSPORT: "Transport assets",
    FieldGroup.CONTACTS: "24/7 contact points",
}

# Groups that describe a capability entry: meaningless unless the entry itself may be seen.
ENTRY_GROUPS = frozenset({FieldGroup.LEVEL, FieldGroup.PACKAGE, FieldGroup.NOTICE})

# Roles that make someone part of "the network" for network-wide data.
_NETWORK_ROLES = frozenset(
    {
        Role.SUPPORT_OFFICE,
        Role.UNIT_COMMANDER,
        Role.DUTY_OFFICER,
        Role.NATIONAL_CONTACT,
        Role.OBSERVER,
    }
)


@dataclass(frozen=True)
class Rule:
    audience: Audience = Audience.OWN_UNIT
    countries: frozenset[str] = frozenset()
    units: frozenset[int] = frozenset()


DEFAULT_RULE = Rule()


@dataclass(frozen=True)
class Agreement:
    """A unit's sharing agreement. Groups without a rule are visible to the own unit only."""

    unit_id: int
    rules: Mapping[FieldGroup, Rule] = field(default_factory=dict)

    def rule(self, group: FieldGroup) -> Rule:
        return self.rules.get(group, DEFAULT_RULE)


@functools.lru_cache(maxsize=4096)
def _open_audiences(viewer: Principal) -> frozenset[Audience]:
    """Audiences that include this viewer whatever the unit lists."""
    if viewer.kind == "matching":
        return frozenset(
            {Audience.NETWORK, Audience.LISTED, Audience.SUPPORT_OFFICE, Audience.MATCHING}
        )
    if viewer.kind != "user" or viewer.role not in _NETWORK_ROLES:
        return frozenset()
    if viewer.role is Role.SUPPORT_OFFICE:
        return frozenset({Audience.NETWORK, Audience.LISTED, Audience.SUPPORT_OFFICE})
    return frozenset({Audience.NETWORK})


@functools.lru_cache(maxsize=4096)
def _may_be_listed(viewer: Principal) -> bool:
    return viewer.kind == "user" and viewer.role in _NETWORK_ROLES


def is_own_unit(viewer: Principal, unit_id: int) -> bool:
    return viewer.kind == "user" and viewer.unit_id is not None and viewer.unit_id == unit_id


def can_see(viewer: Principal, agreement: Agreement, group: FieldGroup) -> bool:
    if is_own_unit(viewer, agreement.unit_id):
        return True
    rule = agreement.rule(group)
    if rule.audience in _open_audiences(viewer):
        return True
    if rule.audience is Audience.LISTED and _may_be_listed(viewer):
        return (viewer.country is not None and viewer.country in rule.countries) or (
            viewer.unit_id is not None and viewer.unit_id in rule.units
        )
    return False


_GROUPS = tuple(FieldGroup)
_GROUP_OF = {g.value: g for g in FieldGroup}
_AUDIENCE_OF = {a.value: a for a in Audience}


_ALL = frozenset(FieldGroup)


def audience_key(viewer: Principal) -> tuple[object, ...]:
    """Everything of a viewer that :func:`can_see` and :func:`visible_groups` read: two viewers
    with the same key see the same groups of every unit. Caches of redacted values are keyed by
    it (``redact.unit_summaries``); a decision that reads anything more of the viewer must add
    it here."""
    return (viewer.kind, viewer.role, viewer.unit_id, viewer.country)


def visible_groups(viewer: Principal, agreement: Agreement) -> frozenset[FieldGroup]:
    """``can_see`` for every group at once (listings call this for every unit on the page)."""
    if is_own_unit(viewer, agreement.unit_id):
        return _ALL
    open_audiences = _open_audiences(viewer)
    listed_ok = _may_be_listed(viewer)
    seen = set()
    for group in _GROUPS:
        rule = agreement.rules.get(group, DEFAULT_RULE)
        if rule.audience in open_audiences or (
            listed_ok
            and rule.audience is Audience.LISTED
            and (viewer.country in rule.countries or viewer.unit_id in rule.units)
        ):
            seen.add(group)
    if FieldGroup.EXISTENCE not in seen:
        seen -= ENTRY_GROUPS
    return frozenset(seen)


def beyond_network(agreement: Agreement, groups: Iterable[FieldGroup]) -> list[FieldGroup]:
    """The groups among ``groups`` that are not visible network-wide (their reads are audited)."""
    return [
        g for g in _GROUPS if g in groups and agreement.rule(g).audience is not Audience.NETWORK
    ]


def sql_can_see(
    viewer: Principal,
    group: FieldGroup,
    unit_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> ColumnElement[bool]:
    """The same decision as :func:`can_see`, as a SQL condition on a unit id column.

    Used wherever the database filters or searches on shared fields, so that a filter never
    reveals a value the viewer may not see.
    """
    rule = aliased(SharingRule)
    target = aliased(SharingTarget)
    options: list[ColumnElement[bool]] = []
    open_audiences = _open_audiences(viewer)
    if open_audiences:
        options.append(rule.audience.in_(sorted(open_audiences)))
    if _may_be_listed(viewer):
        hits: list[ColumnElement[bool]] = []
        if viewer.country is not None:
            hits.append(target.country_iso2 == viewer.country)
        if viewer.unit_id is not None:
            hits.append(target.unit_id == viewer.unit_id)
        if hits:
            options.append(
                and_(
                    rule.audience == Audience.LISTED.value,
                    exists(select(target.id).where(target.rule_id == rule.id, or_(*hits))),
                )
            )
    shared: ColumnElement[bool] = (
        exists(
            select(rule.id).where(
                rule.unit_id == unit_id, rule.field_group == group.value, or_(*options)
            )
        )
        if options
        else false()
    )
    own: ColumnElement[bool] = (
        unit_id == viewer.unit_id
        if viewer.kind == "user" and viewer.unit_id is not None
        else false()
    )
    condition = or_(own, shared)
    if group in ENTRY_GROUPS:
        return and_(condition, sql_can_see(viewer, FieldGroup.EXISTENCE, unit_id))
    return condition


# Agreements are read on every listing and change rarely: each process keeps those it has read,
# for the current registry version (see registry/version.py).
_AGREEMENTS: registry_version.VersionedCache[int, Agreement] = registry_version.VersionedCache(
    maxsize=100_000
)


def load_agreements(
    session: Session, unit_ids: Iterable[int], *, version: str | None = None
) -> dict[int, Agreement]:
    """The agreements of these units, as of the registry ``version`` (read now if not given)."""
    ids = sorted(set(unit_ids))
    if not ids:
        return {}
    if version is None:
        version = registry_version.current(session)
    found, missing = _AGREEMENTS.get_many(version, ids)
    if missing:
        loaded = _read_agreements(session, missing)
        _AGREEMENTS.put_many(version, loaded)
        found.update(loaded)
    return {i: found[i] for i in ids}


def _read_agreements(session: Session, ids: list[int]) -> dict[int, Agreement]:
    rules = session.execute(
        select(
            SharingRule.id, SharingRule.unit_id, SharingRule.field_group, SharingRule.audience
        ).where(id_in(session, SharingRule.unit_id, ids))
    ).all()
    listed_ids = [r[0] for r in rules if r[3] == Audience.LISTED.value]
    countries: dict[int, set[str]] = {}
    units: dict[int, set[int]] = {}
    if listed_ids:
        for t in session.execute(
            select(SharingTarget.rule_id, SharingTarget.country_iso2, SharingTarget.unit_id).where(
                id_in(session, SharingTarget.rule_id, listed_ids)
            )
        ):
            if t.country_iso2:
                countries.setdefault(t.rule_id, set()).add(t.country_iso2)
            if t.unit_id:
                units.setdefault(t.rule_id, set()).add(t.unit_id)
    by_unit: dict[int, dict[FieldGroup, Rule]] = {i: {} for i in ids}
    empty: frozenset[Any] = frozenset()
    for rule_id, unit_id, group, audience in rules:
        by_unit[unit_id][_GROUP_OF[group]] = Rule(
            audience=_AUDIENCE_OF[audience],
            countries=frozenset(countries[rule_id]) if rule_id in countries else empty,
            units=frozenset(units[rule_id]) if rule_id in units else empty,
        )
    return {i: Agreement(unit_id=i, rules=by_unit[i]) for i in ids}


# --- one rule for a whole record (equipment items) ------------------------------------------
# Items of the equipment pool carry one audience each (the same audiences as a unit's field
# groups), decided here with the same rule as can_see/sql_can_see, so the pool cannot drift
# from the registry's sharing.


def rule_allows(viewer: Principal, owner_unit_id: int, rule: Rule) -> bool:
    """May ``viewer`` see a record of ``owner_unit_id`` shared under ``rule``? (The record's
    rule stands in for a group of an agreement, so ``can_see`` decides it.)"""
    group = FieldGroup.EXISTENCE
    return can_see(viewer, Agreement(owner_unit_id, {group: rule}), group)


def sql_rule_allows(
    viewer: Principal,
    *,
    owner_unit_id: ColumnElement[int] | InstrumentedAttribute[int],
    audience: ColumnElement[str] | InstrumentedAttribute[str],
    listed: Callable[[str | None, int | None], ColumnElement[bool]],
) -> ColumnElement[bool]:
    """:func:`rule_allows` as a SQL condition on a record's owner and audience columns.

    ``listed(country, unit_id)`` builds the condition "the record lists this country or this
    unit" (either may be ``None``: then it must not match on it)."""
    options: list[ColumnElement[bool]] = []
    open_audiences = _open_audiences(viewer)
    if open_audiences:
        options.append(audience.in_(sorted(open_audiences)))
    if _may_be_listed(viewer) and (viewer.country is not None or viewer.unit_id is not None):
        options.append(
            and_(audience == Audience.LISTED.value, listed(viewer.country, viewer.unit_id))
        )
    if viewer.kind == "user" and viewer.unit_id is not None:
        options.append(owner_unit_id == viewer.unit_id)
    return or_(*options) if options else false()
