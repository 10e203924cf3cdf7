"""Field-level sharing applied to registry records. The only place that turns stored unit data
into what a viewer receives; every way out (API, pages, exports, search) goes through here, and
every value returned beyond network-wide is noted for the read audit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple, Protocol

from atlaslink.audit.service import current_ledger, note_read
from atlaslink.auth.principal import Principal
from atlaslink.models import CapabilityEntry, CapabilityType, TransportAsset, Unit, UnitContact
from atlaslink.registry import schemas
from atlaslink.registry import version as registry_version
from atlaslink.registry.repository import DirectoryRow
from atlaslink.registry.taxonomy_seed import display_country
from atlaslink.sharing.policy import (
    Agreement,
    FieldGroup,
    audience_key,
    beyond_network,
    visible_groups,
)

G = FieldGroup


def stale_before(today: date, stale_after_days: int) -> date:
    return today - timedelta(days=stale_after_days)


def capability(
    entry: CapabilityEntry,
    ctype: CapabilityType,
    groups: frozenset[FieldGroup],
    stale_cut: date,
    owner: str | None = None,
) -> schemas.Capability:
    return schemas.Capability(
        id=entry.id,
        type_code=ctype.code,
        type_name=ctype.name,
        kind=ctype.kind,
        may_deploy_abroad=entry.may_deploy_abroad,
        may_carry_arms_abroad=entry.may_carry_arms_abroad,
        may_carry_explosives_abroad=entry.may_carry_explosives_abroad,
        last_validated=entry.last_validated,
        validated_exercise=entry.validated_exercise,
        confirmed_on=entry.confirmed_on,
        stale=entry.confirmed_on < stale_cut,
        level=entry.level if G.LEVEL in groups else None,
        package_size=entry.package_size if G.PACKAGE in groups else None,
        self_sufficiency_hours=entry.self_sufficiency_hours if G.PACKAGE in groups else None,
        notice_to_move_hours=entry.notice_to_move_hours if G.NOTICE in groups else None,
        owner=owner,
    )


_ORDER = {g: i for i, g in enumerate(FieldGroup)}


def _sorted(groups: frozenset[FieldGroup]) -> list[FieldGroup]:
    return sorted(groups, key=_ORDER.__getitem__)


def _contacts(rows: Sequence[UnitContact]) -> list[schemas.Contact]:
    # Stored values were validated on the way in; constructing skips validating them again.
    # (model_construct's signature repeats the field types; kinds are checked on write.)
    build: Any = schemas.Contact.model_construct
    return [build(kind=c.kind, label=c.label, value=c.value) for c in rows]


def _directory(unit: Unit, network_code: str, groups: frozenset[FieldGroup]) -> dict[str, Any]:
    """The directory entry, visible network-wide, and which groups the viewer sees."""
    return {
        "id": unit.id,
        "code": unit.code,
        "name": unit.name,
        "country": unit.country_iso2,
        "country_display": display_country(unit.country_iso2),
        "network": network_code,
        "base_location": unit.base_location,
        "latitude": unit.latitude,
        "longitude": unit.longitude,
        "languages": list(unit.languages or []),
        "competent_authority": unit.competent_authority,
        "visible_groups": _sorted(groups),
    }


def _group_values(groups: frozenset[FieldGroup]) -> list[str]:
    return [g.value for g in _sorted(groups)]


class _Listed(NamedTuple):
    item: dict[str, Any]  # the listing item as one class of viewer sees it; never mutated
    read: list[str]  # the groups beyond network-wide that it shows (the read audit's note)


# Listing items as each class of viewer (policy.audience_key) sees each unit, for the registry
# version they were built at: directory rows and agreements are themselves kept per version,
# so an item is a pure function of (version, audience key, unit). The read note is still made
# for every request that returns the item.
_LISTED: registry_version.VersionedCache[tuple[tuple[object, ...], int], _Listed] = (
    registry_version.VersionedCache(maxsize=50_000)
)


def unit_summaries(
    viewer: Principal,
    rows: Sequence[DirectoryRow],
    agreements: Mapping[int, Agreement],
    *,
    version: str,
) -> list[dict[str, Any]]:
    """The listing items of ``rows`` as the viewer may see them, as plain values in the order of
    ``schemas.UnitSummary`` (listings are hot: serialised once, never re-validated), with the
    read of every group beyond network-wide noted. ``rows`` and ``agreements`` must be those of
    the registry ``version``."""
    key = audience_key(viewer)
    ledger = current_ledger()
    items = []
    for row in rows:
        listed = _LISTED.get(version, (key, row.id))
        if listed is None:
            listed = _listed(viewer, row, agreements[row.id])
            _LISTED.put(version, (key, row.id), listed)
        if ledger is not None:
            ledger.note("unit", row.id, row.id, listed.read)
        items.append(listed.item)
    return items


def _listed(viewer: Principal, row: DirectoryRow, agreement: Agreement) -> _Listed:
    groups = visible_groups(viewer, agreement)
    existence = G.EXISTENCE in groups
    contacts = G.CONTACTS in groups
    shown = [G.EXISTENCE] if existence else []
    if contacts and row.contacts:
        shown.append(G.CONTACTS)
    item = dict(row.fields)
    item["visible_groups"] = _group_values(groups)
    item["capability_count"] = row.capability_count if existence else None
    item["contacts"] = [dict(c) for c in row.contacts] if contacts else None
    return _Listed(item, [g.value for g in beyond_network(agreement, shown)])


def unit_detail(
    viewer: Principal,
    unit: Unit,
    agreement: Agreement,
    *,
    network_code: str,
    contacts: Sequence[UnitContact],
    transport: Sequence[TransportAsset],
    entries: Sequence[tuple[CapabilityEntry, CapabilityType]],
    stale_cut: date,
    owners: Mapping[int, str] | None = None,
) -> schemas.UnitDetail:
    """``owners``: the display names of the entries' owners, by user id; shown only to the
    unit's own people (who keeps an entry confirmed is the unit's internal business)."""
    groups = visible_groups(viewer, agreement)
    own = viewer.unit_id is not None and viewer.unit_id == unit.id
    caps = (
        [
            capability(
                e,
                t,
                groups,
                stale_cut,
                (owners or {}).get(e.owner_user_id) if own and e.owner_user_id else None,
            )
            for e, t in entries
        ]
        if G.EXISTENCE in groups
        else []
    )
    shown: list[FieldGroup] = (
        [g for g in groups if g not in (G.CONTACTS, G.TRANSPORT)] if caps else []
    )
    if G.CONTACTS in groups and contacts:
        shown.append(G.CONTACTS)
    if G.TRANSPORT in groups and transport:
        shown.append(G.TRANSPORT)
    note_read("unit", unit.id, unit.id, [g.value for g in beyond_network(agreement, shown)])
    return schemas.UnitDetail(
        **_directory(unit, network_code, groups),
        capability_count=len(caps) if G.EXISTENCE in groups else None,
        contacts=_contacts(contacts) if G.CONTACTS in groups else None,
        transport=[
            schemas.Transport(
                kind=t.kind,
                description=t.description,
                quantity=t.quantity,
                capacity_persons=t.capacity_persons,
            )
            for t in transport
        ]
        if G.TRANSPORT in groups
        else None,
        capabilities=caps,
        stale_count=sum(1 for c in caps if c.stale) if G.EXISTENCE in groups else None,
    )


def matrix_cells(
    viewer: Principal,
    unit_id: int,
    agreement: Agreement,
    entries: Sequence[tuple[CapabilityEntry, CapabilityType]],
) -> dict[str, int | None]:
    groups = visible_groups(viewer, agreement)
    if G.EXISTENCE not in groups:
        return {}
    cells = {t.code: (e.level if G.LEVEL in groups else None) for e, t in entries}
    if cells:
        shown = [G.EXISTENCE] + ([G.LEVEL] if G.LEVEL in groups else [])
        note_read("unit", unit_id, unit_id, [g.value for g in beyond_network(agreement, shown)])
    return cells


class CandidateUnit(Protocol):
    """What :func:`candidate_view` reads of a unit (a ``Unit``, or a row of its columns)."""

    @property
    def id(self) -> int: ...
    @property
    def base_location(self) -> str: ...
    @property
    def languages(self) -> list[str]: ...


class CandidateEntry(Protocol):
    """What :func:`candidate_view` reads of a capability entry."""

    @property
    def level(self) -> int: ...
    @property
    def package_size(self) -> int | None: ...
    @property
    def notice_to_move_hours(self) -> int | None: ...
    @property
    def self_sufficiency_hours(self) -> int | None: ...
    @property
    def may_deploy_abroad(self) -> bool: ...
    @property
    def may_carry_arms_abroad(self) -> bool: ...
    @property
    def may_carry_explosives_abroad(self) -> bool: ...
    @property
    def last_validated(self) -> date | None: ...
    @property
    def validated_exercise(self) -> str | None: ...
    @property
    def confirmed_on(self) -> date: ...


class CandidateTransport(Protocol):
    """What :func:`candidate_view` reads of a transport asset."""

    @property
    def kind(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def quantity(self) -> int: ...
    @property
    def capacity_persons(self) -> int | None: ...


def candidate_view(
    viewer: Principal,
    unit: CandidateUnit,
    agreement: Agreement,
    entry: CandidateEntry,
    transport: Sequence[CandidateTransport],
) -> dict[str, Any]:
    """What a viewer of a ranking sees of one candidate unit's entry for the ranked capability.

    Only keys the viewer may see are present (a hidden field is absent, not ``None``), and
    values beyond network-wide are noted for the read audit, as for the unit's profile.
    """
    groups = visible_groups(viewer, agreement)
    out: dict[str, Any] = {
        "base_location": unit.base_location,
        "languages": list(unit.languages or []),
    }
    shown: list[FieldGroup] = []
    if G.EXISTENCE in groups:
        shown.append(G.EXISTENCE)
        out |= {
            "may_deploy_abroad": entry.may_deploy_abroad,
            "may_carry_arms_abroad": entry.may_carry_arms_abroad,
            "may_carry_explosives_abroad": entry.may_carry_explosives_abroad,
            "last_validated": entry.last_validated,
            "validated_exercise": entry.validated_exercise,
            "confirmed_on": entry.confirmed_on,
        }
    if G.LEVEL in groups:
        shown.append(G.LEVEL)
        out["level"] = entry.level
    if G.PACKAGE in groups:
        shown.append(G.PACKAGE)
        out["package_size"] = entry.package_size
        out["self_sufficiency_hours"] = entry.self_sufficiency_hours
    if G.NOTICE in groups:
        shown.append(G.NOTICE)
        out["notice_to_move_hours"] = entry.notice_to_move_hours
    if G.TRANSPORT in groups:
        out["transport"] = [
            {
                "kind": t.kind,
                "description": t.description,
                "quantity": t.quantity,
                "capacity_persons": t.capacity_persons,
            }
            for t in transport
        ]
        if transport:
            shown.append(G.TRANSPORT)
    note_read("unit", unit.id, unit.id, [g.value for g in beyond_network(agreement, shown)])
    return out


def unit_ref(unit: Unit) -> dict[str, Any]:
    """The directory fields by which other domains (requests, offers, maps) name a unit.
    They are visible network-wide (see :func:`_directory`), so no read is noted."""
    return {
        "id": unit.id,
        "code": unit.code,
        "name": unit.name,
        "country": display_country(unit.country_iso2),
        "base_location": unit.base_location,
        "latitude": unit.latitude,
        "longitude": unit.longitude,
    }
