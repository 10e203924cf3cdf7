"""Registry use cases: reads pass through the sharing module, writes are audited, none commits."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.errors import Conflict, Forbidden, Invalid, NotFound
from atlaslink.models import (
    CapabilityEntry,
    CapabilityType,
    Country,
    Network,
    NetworkMember,
    SharingRule,
    SharingTarget,
    TaxonomyVersion,
    TransportAsset,
    Unit,
    UnitContact,
    User,
    utcnow,
)
from atlaslink.registry import repository as repo
from atlaslink.registry import schemas
from atlaslink.registry import version as registry_version
from atlaslink.registry.repository import UnitFilters
from atlaslink.registry.taxonomy_seed import display_country
from atlaslink.sharing import matching_groups, redact
from atlaslink.sharing.policy import Audience, FieldGroup, load_agreements


def today() -> date:
    return utcnow().date()


def stale_cut() -> date:
    return redact.stale_before(today(), get_settings().stale_after_days)


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    settings = get_settings()
    if page < 1:
        raise Invalid("'page' starts at 1.")
    if per_page < 1 or per_page > settings.page_size_max:
        raise Invalid(f"'per_page' must be between 1 and {settings.page_size_max}.")
    return (page - 1) * per_page, per_page


def page_dict(items: list[Any], total: int, page: int, per_page: int) -> dict[str, Any]:
    """The body of every paginated list of the API (``schemas.Page``)."""
    return {
        "items": items,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, math.ceil(total / per_page)),
    }


# --- reads ------------------------------------------------------------------------------------


def list_units_page(
    session: Session, viewer: Principal, f: UnitFilters, page: int = 1, per_page: int = 50
) -> dict[str, Any]:
    """A page of the directory as the viewer may see it: the body of ``schemas.Page[UnitSummary]``
    as plain values (the API serialises it as it is)."""
    viewer.require(Permission.UNITS_READ)
    offset, limit = page_bounds(page, per_page)
    version = registry_version.current(session)
    rows, total = repo.directory_page(session, viewer, f, offset, limit, version=version)
    agreements = load_agreements(session, [r.id for r in rows], version=version)
    items = redact.unit_summaries(viewer, rows, agreements, version=version)
    return page_dict(items, total, page, per_page)


def list_units(
    session: Session, viewer: Principal, f: UnitFilters, page: int = 1, per_page: int = 50
) -> schemas.Page[schemas.UnitSummary]:
    """The same page as typed models (for pages and the matrix)."""
    return schemas.Page[schemas.UnitSummary].model_validate(
        list_units_page(session, viewer, f, page, per_page)
    )


def get_unit(session: Session, viewer: Principal, unit_id: int) -> schemas.UnitDetail:
    details = unit_details(session, viewer, [unit_id])
    if not details:
        raise NotFound(f"There is no unit {unit_id}.")
    return details[0]


def unit_details(
    session: Session, viewer: Principal, unit_ids: list[int]
) -> list[schemas.UnitDetail]:
    """Several units in full, as the viewer may see them, with a fixed number of queries."""
    viewer.require(Permission.UNITS_READ)
    if not unit_ids:
        return []
    found = {
        u.id: (u, n)
        for u, n in session.execute(
            select(Unit, Network.code)
            .join(Network, Network.id == Unit.network_id)
            .where(Unit.id.in_(unit_ids))
        ).tuples()
    }
    agreements = load_agreements(session, unit_ids)
    contacts = repo.contacts_of(session, unit_ids)
    transport = repo.transport_of(session, unit_ids)
    entries = repo.entries_of(session, unit_ids)
    cut = stale_cut()
    # The owners' names, for the viewer's own unit only (redact.unit_detail shows them there).
    own = entries.get(viewer.unit_id, []) if viewer.unit_id is not None else []
    owner_ids = {e.owner_user_id for e, _ in own if e.owner_user_id is not None}
    owners = (
        {
            uid: name
            for uid, name in session.execute(
                select(User.id, User.display_name).where(User.id.in_(sorted(owner_ids)))
            ).tuples()
        }
        if owner_ids
        else {}
    )
    return [
        redact.unit_detail(
            viewer,
            found[i][0],
            agreements[i],
            network_code=found[i][1],
            contacts=contacts[i],
            transport=transport[i],
            entries=entries[i],
            stale_cut=cut,
            owners=owners,
        )
        for i in unit_ids
        if i in found
    ]


def matrix(
    session: Session, viewer: Principal, f: UnitFilters, page: int = 1, per_page: int = 50
) -> schemas.Matrix:
    units = list_units(session, viewer, f, page, per_page)
    ids = [u.id for u in units.items]
    agreements = load_agreements(session, ids)
    entries = repo.entries_of(session, ids, kind=f.environment)
    types = [t for t in repo.current_types(session) if not f.environment or t.kind == f.environment]
    rows = []
    for u in units.items:
        cells = redact.matrix_cells(viewer, u.id, agreements[u.id], entries[u.id])
        if f.min_level is not None:
            cells = {k: v for k, v in cells.items() if v is not None and v >= f.min_level}
        rows.append(schemas.MatrixRow(unit=u, cells=cells))
    return schemas.Matrix(
        types=[_type_out(t) for t in types],
        rows=schemas.Page[schemas.MatrixRow](
            items=rows,
            total=units.total,
            page=units.page,
            per_page=units.per_page,
            pages=units.pages,
        ),
    )


def list_networks(session: Session) -> list[schemas.Network]:
    members: dict[int, list[str]] = {}
    for m in session.scalars(select(NetworkMember).order_by(NetworkMember.country_iso2)):
        members.setdefault(m.network_id, []).append(m.country_iso2)
    return [
        schemas.Network(
            id=n.id,
            code=n.code,
            name=n.name,
            description=n.description,
            countries=members.get(n.id, []),
        )
        for n in session.scalars(select(Network).order_by(Network.id))
    ]


def list_countries(session: Session) -> list[schemas.Country]:
    nets: dict[str, list[str]] = {}
    for iso2, code in session.execute(
        select(NetworkMember.country_iso2, Network.code).join(Network)
    ).tuples():
        nets.setdefault(iso2, []).append(code)
    counts = dict(
        session.execute(select(Unit.country_iso2, func.count(Unit.id)).group_by(Unit.country_iso2))
        .tuples()
        .all()
    )
    return [
        schemas.Country(
            iso2=c.iso2,
            display_code=display_country(c.iso2),
            name=c.name,
            status=c.status,
            networks=sorted(nets.get(c.iso2, [])),
            unit_count=counts.get(c.iso2, 0),
        )
        for c in session.scalars(select(Country).order_by(Country.name))
    ]


def _type_out(t: CapabilityType) -> schemas.CapabilityType:
    return schemas.CapabilityType(
        id=t.id,
        code=t.code,
        kind=t.kind,
        name=t.name,
        description=t.description,
        rtlt_id=t.rtlt_id,
        introduced_in=t.introduced_in,
        retired_in=t.retired_in,
    )


def taxonomy(session: Session, include_retired: bool = False) -> schemas.Taxonomy:
    version = session.scalar(select(func.max(TaxonomyVersion.version))) or 0
    return schemas.Taxonomy(
        version=version,
        types=[_type_out(t) for t in repo.current_types(session, include_retired)],
    )


def paginate(items: list[Any], page: int, per_page: int) -> dict[str, Any]:
    """Pagination of a short list that is assembled in memory (networks, countries)."""
    offset, limit = page_bounds(page, per_page)
    return page_dict(items[offset : offset + limit], len(items), page, per_page)


# --- networks and member countries ------------------------------------------------------------


def create_network(session: Session, actor: Principal, data: schemas.NetworkCreate) -> Network:
    actor.require(Permission.NETWORK_MANAGE)
    if session.scalar(select(Network.id).where(Network.code == data.code)) is not None:
        raise Conflict(f"A network with code '{data.code}' exists already.")
    network = Network(code=data.code, name=data.name, description=data.description)
    session.add(network)
    session.flush()
    audit.append(session, actor, "network.create", "network", network.id, after=data.model_dump())
    return network


def set_member(
    session: Session, actor: Principal, code: str, iso2: str, voting: bool | None
) -> None:
    """Make a country a member of a network (``voting`` given) or remove it (``None``)."""
    actor.require(Permission.NETWORK_MANAGE)
    network = session.scalar(select(Network).where(Network.code == code))
    if network is None:
        raise NotFound(f"There is no network '{code}'.")
    iso2 = iso2.upper()
    if session.get(Country, iso2) is None:
        raise Invalid(f"There is no country '{iso2}'.")
    member = session.scalar(
        select(NetworkMember).where(
            NetworkMember.network_id == network.id, NetworkMember.country_iso2 == iso2
        )
    )
    before = {"member": member is not None, "voting": member.voting if member else None}
    if voting is None:
        if member is None:
            raise NotFound(f"{iso2} is not a member of {code}.")
        session.delete(member)
    elif member is None:
        session.add(NetworkMember(network_id=network.id, country_iso2=iso2, voting=voting))
    else:
        member.voting = voting
    session.flush()
    audit.append(
        session,
        actor,
        "network.member",
        "network",
        network.id,
        before=before,
        after={"country": iso2, "member": voting is not None, "voting": voting},
    )


def create_country(session: Session, actor: Principal, data: schemas.CountryCreate) -> Country:
    actor.require(Permission.NETWORK_MANAGE)
    if session.get(Country, data.iso2) is not None:
        raise Conflict(f"The country '{data.iso2}' exists already.")
    country = Country(iso2=data.iso2, name=data.name, status=data.status)
    session.add(country)
    session.flush()
    audit.append(session, actor, "country.create", "country", data.iso2, after=data.model_dump())
    return country


# --- writes -----------------------------------------------------------------------------------


def _own_unit(session: Session, actor: Principal, unit_id: int, permission: Permission) -> Unit:
    actor.require(permission)
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(f"There is no unit {unit_id}.")
    if actor.kind != "system" and actor.unit_id != unit.id:
        raise Forbidden("You may change only your own unit.")
    return unit


def _unit_snapshot(session: Session, unit: Unit) -> dict[str, Any]:
    return {
        "name": unit.name,
        "base_location": unit.base_location,
        "latitude": unit.latitude,
        "longitude": unit.longitude,
        "languages": list(unit.languages or []),
        "competent_authority": unit.competent_authority,
        "contacts": [
            {"kind": c.kind, "label": c.label, "value": c.value}
            for c in repo.contacts_of(session, [unit.id])[unit.id]
        ],
        "transport": [
            {
                "kind": t.kind,
                "description": t.description,
                "quantity": t.quantity,
                "capacity_persons": t.capacity_persons,
            }
            for t in repo.transport_of(session, [unit.id])[unit.id]
        ],
    }


def create_unit(session: Session, actor: Principal, data: schemas.UnitCreate) -> Unit:
    actor.require(Permission.NETWORK_MANAGE)
    if repo.unit_by_code(session, data.code) is not None:
        raise Invalid(f"A unit with code '{data.code}' exists already.")
    if session.get(Country, data.country) is None:
        raise Invalid(f"There is no member country '{data.country}'.")
    network = session.scalar(select(Network).where(Network.code == data.network))
    if network is None:
        raise Invalid(f"There is no network '{data.network}'.")
    unit = Unit(
        code=data.code,
        name=data.name,
        network_id=network.id,
        country_iso2=data.country,
        base_location=data.base_location,
        latitude=data.latitude,
        longitude=data.longitude,
        languages=data.languages,
        competent_authority=data.competent_authority,
    )
    session.add(unit)
    session.flush()
    # Privacy by default: the directory entry is network-wide, everything else own unit only.
    for group in FieldGroup:
        session.add(
            SharingRule(unit_id=unit.id, field_group=group.value, audience=Audience.OWN_UNIT.value)
        )
    session.flush()
    audit.append(
        session,
        actor,
        "unit.create",
        "unit",
        unit.id,
        unit_id=unit.id,
        after={"code": unit.code, **_unit_snapshot(session, unit)},
    )
    return unit


def update_unit(session: Session, actor: Principal, unit_id: int, data: schemas.UnitUpdate) -> Unit:
    unit = _own_unit(session, actor, unit_id, Permission.UNITS_EDIT_OWN)
    before = _unit_snapshot(session, unit)
    for name in (
        "name",
        "base_location",
        "latitude",
        "longitude",
        "languages",
        "competent_authority",
    ):
        if name in data.model_fields_set:
            value = getattr(data, name)
            if value is None and name not in ("latitude", "longitude"):
                raise Invalid(f"'{name}' cannot be empty.")
            setattr(unit, name, value)
    if data.contacts is not None:
        session.execute(delete(UnitContact).where(UnitContact.unit_id == unit.id))
        for c in data.contacts:
            session.add(UnitContact(unit_id=unit.id, kind=c.kind, label=c.label, value=c.value))
    if data.transport is not None:
        for old_asset in repo.transport_of(session, [unit.id])[unit.id]:
            session.delete(old_asset)
        for t in data.transport:
            session.add(
                TransportAsset(
                    unit_id=unit.id,
                    kind=t.kind,
                    description=t.description,
                    quantity=t.quantity,
                    capacity_persons=t.capacity_persons,
                )
            )
    session.flush()
    after = _unit_snapshot(session, unit)
    if after != before:
        audit.append(
            session,
            actor,
            "unit.update",
            "unit",
            unit.id,
            unit_id=unit.id,
            before=before,
            after=after,
        )
    return unit


def _entry_snapshot(entry: CapabilityEntry, code: str) -> dict[str, Any]:
    return {
        "type": code,
        "level": entry.level,
        "package_size": entry.package_size,
        "notice_to_move_hours": entry.notice_to_move_hours,
        "self_sufficiency_hours": entry.self_sufficiency_hours,
        "may_deploy_abroad": entry.may_deploy_abroad,
        "may_carry_arms_abroad": entry.may_carry_arms_abroad,
        "may_carry_explosives_abroad": entry.may_carry_explosives_abroad,
        "last_validated": entry.last_validated.isoformat() if entry.last_validated else None,
        "validated_exercise": entry.validated_exercise,
        "confirmed_on": entry.confirmed_on.isoformat(),
    }


def put_capability(
    session: Session,
    actor: Principal,
    unit_id: int,
    type_code: str,
    data: schemas.CapabilityWrite,
    *,
    require_own: bool = True,
) -> tuple[CapabilityEntry, str]:
    """Create or replace one capability entry; also says "created", "updated" or "unchanged"."""
    if require_own:
        _own_unit(session, actor, unit_id, Permission.CAPABILITIES_EDIT_OWN)
    ctype = repo.type_by_code(session, type_code)
    if ctype is None or ctype.retired_in is not None:
        raise Invalid(f"'{type_code}' is not a current capability type.")
    entry = session.scalar(
        select(CapabilityEntry).where(
            CapabilityEntry.unit_id == unit_id, CapabilityEntry.capability_type_id == ctype.id
        )
    )
    before = _entry_snapshot(entry, ctype.code) if entry else None
    if entry is None:
        entry = CapabilityEntry(unit_id=unit_id, capability_type_id=ctype.id, confirmed_on=today())
        session.add(entry)
    for name, value in data.model_dump().items():
        setattr(entry, name, value)
    if before is not None:
        after_values = _entry_snapshot(entry, ctype.code)
        if {k: v for k, v in after_values.items() if k != "confirmed_on"} == {
            k: v for k, v in before.items() if k != "confirmed_on"
        }:
            return entry, "unchanged"
    # Saving an entry confirms it, and its editor becomes its owner.
    entry.confirmed_on = today()
    entry.owner_user_id = actor.user_id or entry.owner_user_id
    session.flush()
    after = _entry_snapshot(entry, ctype.code)
    action = "capability.create" if before is None else "capability.update"
    audit.append(
        session, actor, action, "capability", entry.id, unit_id=unit_id, before=before, after=after
    )
    return entry, "created" if before is None else "updated"


def delete_capability(session: Session, actor: Principal, unit_id: int, type_code: str) -> None:
    _own_unit(session, actor, unit_id, Permission.CAPABILITIES_EDIT_OWN)
    ctype = repo.type_by_code(session, type_code)
    entry = (
        session.scalar(
            select(CapabilityEntry).where(
                CapabilityEntry.unit_id == unit_id, CapabilityEntry.capability_type_id == ctype.id
            )
        )
        if ctype
        else None
    )
    if entry is None or ctype is None:
        raise NotFound(f"Unit {unit_id} has no '{type_code}' entry.")
    before = _entry_snapshot(entry, ctype.code)
    session.delete(entry)
    session.flush()
    audit.append(
        session, actor, "capability.delete", "capability", entry.id, unit_id=unit_id, before=before
    )


def confirm_capabilities(session: Session, actor: Principal, unit_id: int) -> int:
    """The unit confirms that all its entries are still correct today."""
    _own_unit(session, actor, unit_id, Permission.CAPABILITIES_EDIT_OWN)
    entries = list(
        session.scalars(select(CapabilityEntry).where(CapabilityEntry.unit_id == unit_id))
    )
    day = today()
    changed = [e.id for e in entries if e.confirmed_on != day]
    for e in entries:
        e.confirmed_on = day
    session.flush()
    if changed:
        audit.append(
            session,
            actor,
            "capability.confirm",
            "unit",
            unit_id,
            unit_id=unit_id,
            after={"confirmed_on": day.isoformat(), "entries": changed},
        )
    return len(changed)


# --- sharing agreements -----------------------------------------------------------------------


def get_sharing(session: Session, actor: Principal, unit_id: int) -> schemas.SharingAgreementIO:
    unit = session.get(Unit, unit_id)
    # Only the unit itself reads its agreement (it reveals whom the unit trusts).
    if unit is None or actor.unit_id != unit_id:
        raise NotFound(f"There is no unit {unit_id}.")
    agreement = load_agreements(session, [unit_id])[unit_id]
    codes = dict(session.execute(select(Unit.id, Unit.code)).tuples().all())
    return schemas.SharingAgreementIO(
        rules={
            g: schemas.SharingRuleIO(
                audience=agreement.rule(g).audience,
                countries=sorted(agreement.rule(g).countries),
                units=sorted(codes[u] for u in agreement.rule(g).units if u in codes),
            )
            for g in FieldGroup
        }
    )


def set_sharing(
    session: Session, actor: Principal, unit_id: int, data: schemas.SharingAgreementIO
) -> schemas.SharingAgreementIO:
    _own_unit(session, actor, unit_id, Permission.SHARING_EDIT_OWN)
    before = get_sharing(session, actor, unit_id) if actor.unit_id == unit_id else None
    errors: list[dict[str, Any]] = []
    resolved: dict[FieldGroup, tuple[Audience, list[str], list[int]]] = {}
    known_countries = set(session.scalars(select(Country.iso2)))
    for group in FieldGroup:
        rule = data.rules.get(group, schemas.SharingRuleIO(audience=Audience.OWN_UNIT))
        countries = sorted({c.strip().upper() for c in rule.countries if c.strip()})
        unit_ids: list[int] = []
        for code in rule.units:
            u = repo.unit_by_code(session, code)
            if u is None:
                errors.append(
                    {"field": f"rules.{group.value}.units", "message": f"unknown unit '{code}'"}
                )
            else:
                unit_ids.append(u.id)
        for c in countries:
            if c not in known_countries:
                errors.append(
                    {"field": f"rules.{group.value}.countries", "message": f"unknown country '{c}'"}
                )
        if rule.audience is Audience.LISTED and not countries and not unit_ids:
            errors.append(
                {"field": f"rules.{group.value}", "message": "list at least one country or unit"}
            )
        if rule.audience is not Audience.LISTED:
            countries, unit_ids = [], []
        resolved[group] = (rule.audience, countries, unit_ids)
    if errors:
        raise Invalid("The sharing agreement has errors; nothing was changed.", errors=errors)
    existing = {
        r.field_group: r
        for r in session.scalars(select(SharingRule).where(SharingRule.unit_id == unit_id))
    }
    for group, (audience, countries, unit_ids) in resolved.items():
        rule_row = existing.get(group.value)
        if rule_row is None:
            rule_row = SharingRule(
                unit_id=unit_id, field_group=group.value, audience=audience.value
            )
            session.add(rule_row)
            session.flush()
        rule_row.audience = audience.value
        for target in session.scalars(
            select(SharingTarget).where(SharingTarget.rule_id == rule_row.id)
        ):
            session.delete(target)
        for c in countries:
            session.add(SharingTarget(rule_id=rule_row.id, country_iso2=c))
        for listed_id in unit_ids:
            session.add(SharingTarget(rule_id=rule_row.id, unit_id=listed_id))
    session.flush()
    matching_groups.refresh(session, [unit_id])
    after = get_sharing(session, actor, unit_id) if actor.unit_id == unit_id else data
    if before is None or after != before:
        audit.append(
            session,
            actor,
            "sharing.update",
            "unit",
            unit_id,
            unit_id=unit_id,
            before=before.model_dump(mode="json") if before else None,
            after=after.model_dump(mode="json"),
        )
    return after


# --- taxonomy ---------------------------------------------------------------------------------


def _new_taxonomy_version(session: Session, actor: Principal, summary: str) -> int:
    version = (session.scalar(select(func.max(TaxonomyVersion.version))) or 0) + 1
    session.add(TaxonomyVersion(version=version, created_by=actor.label, summary=summary))
    session.flush()
    return version


def create_type(
    session: Session, actor: Principal, data: schemas.CapabilityTypeCreate
) -> CapabilityType:
    actor.require(Permission.TAXONOMY_EDIT)
    if repo.type_by_code(session, data.code) is not None:
        raise Invalid(f"The code '{data.code}' is taken.")
    version = _new_taxonomy_version(session, actor, f"added {data.code}")
    order = (session.scalar(select(func.max(CapabilityType.sort_order))) or 0) + 1
    t = CapabilityType(
        code=data.code,
        kind=data.kind,
        name=data.name,
        description=data.description,
        rtlt_id=data.rtlt_id,
        sort_order=order,
        introduced_in=version,
    )
    session.add(t)
    session.flush()
    audit.append(
        session,
        actor,
        "taxonomy.create",
        "capability_type",
        t.id,
        after={**data.model_dump(), "version": version},
    )
    return t


def update_type(
    session: Session, actor: Principal, code: str, data: schemas.CapabilityTypeUpdate
) -> CapabilityType:
    actor.require(Permission.TAXONOMY_EDIT)
    t = repo.type_by_code(session, code)
    if t is None:
        raise NotFound(f"There is no capability type '{code}'.")
    before = _type_out(t).model_dump()
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        return t
    version = _new_taxonomy_version(session, actor, f"changed {code}: {', '.join(sorted(changes))}")
    for name in ("name", "description", "rtlt_id"):
        if name in changes:
            setattr(
                t,
                name,
                changes[name]
                if changes[name] is not None or name == "rtlt_id"
                else getattr(t, name),
            )
    if "retired" in changes:
        t.retired_in = version if changes["retired"] else None
    session.flush()
    audit.append(
        session,
        actor,
        "taxonomy.update",
        "capability_type",
        t.id,
        before=before,
        after={**_type_out(t).model_dump(), "version": version},
    )
    return t
