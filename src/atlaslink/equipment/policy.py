"""Who may see which item of the pool, and who may act on a loan.

An item carries one sharing audience (network, listed countries/units, support office,
matching engine only, own unit), decided by ``sharing.policy.rule_allows`` and, as SQL, by
``sharing.policy.sql_rule_allows``: the same rule as every unit's field groups. Everything
that lists, searches, counts, exports or feeds items filters with :func:`readable`, so an item
a viewer may not see is absent everywhere (a direct address answers 404).

A loan is seen by the two units only (the lender and the borrower), whatever the item's
audience later becomes: a loan agreed between two units stays theirs.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, exists, false, or_, select

from atlaslink.auth.permissions import Permission
from atlaslink.auth.principal import Principal
from atlaslink.models import EquipmentItem, EquipmentLoan, EquipmentShareTarget
from atlaslink.sharing.policy import Audience, Rule, rule_allows, sql_rule_allows


def item_rule(item: EquipmentItem, targets: Iterable[EquipmentShareTarget]) -> Rule:
    listed = list(targets)
    return Rule(
        audience=Audience(item.audience),
        countries=frozenset(t.country_iso2 for t in listed if t.country_iso2),
        units=frozenset(t.unit_id for t in listed if t.unit_id),
    )


def can_read(viewer: Principal, item: EquipmentItem, rule: Rule) -> bool:
    if viewer.kind == "system":
        return True
    if viewer.kind == "user" and not viewer.can(Permission.EQUIPMENT_READ):
        return False
    return rule_allows(viewer, item.unit_id, rule)


def _listed(country: str | None, unit_id: int | None) -> ColumnElement[bool]:
    hits: list[ColumnElement[bool]] = []
    if country is not None:
        hits.append(EquipmentShareTarget.country_iso2 == country)
    if unit_id is not None:
        hits.append(EquipmentShareTarget.unit_id == unit_id)
    return exists(
        select(EquipmentShareTarget.id).where(
            EquipmentShareTarget.item_id == EquipmentItem.id, or_(*hits)
        )
    )


def readable(viewer: Principal) -> ColumnElement[bool]:
    """The items ``viewer`` may see, as a condition on ``EquipmentItem``."""
    if viewer.kind == "system":
        return EquipmentItem.id.is_not(None)
    if viewer.kind == "user" and not viewer.can(Permission.EQUIPMENT_READ):
        return false()
    return sql_rule_allows(
        viewer, owner_unit_id=EquipmentItem.unit_id, audience=EquipmentItem.audience, listed=_listed
    )


def is_owner(viewer: Principal, unit_id: int) -> bool:
    return viewer.kind == "system" or (viewer.kind == "user" and viewer.unit_id == unit_id)


def loan_side(viewer: Principal, loan: EquipmentLoan) -> str | None:
    """ "owner", "borrower", "system", or None for anyone else."""
    if viewer.kind == "system":
        return "system"
    if viewer.kind != "user" or viewer.unit_id is None:
        return None
    if viewer.unit_id == loan.owner_unit_id:
        return "owner"
    if viewer.unit_id == loan.borrower_unit_id:
        return "borrower"
    return None


def loans_readable(viewer: Principal) -> ColumnElement[bool]:
    if viewer.kind == "system":
        return EquipmentLoan.id.is_not(None)
    if viewer.kind != "user" or viewer.unit_id is None:
        return false()
    return or_(
        EquipmentLoan.owner_unit_id == viewer.unit_id,
        EquipmentLoan.borrower_unit_id == viewer.unit_id,
    )
