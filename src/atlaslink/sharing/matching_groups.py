"""What the matching engine may use of each unit, kept on the unit row (``units.matching_groups``).

Ranking one request line scores every entry of a capability type in one SQL statement
(operations.matching). Deciding there, for each of ~7,000 entries, which of its unit's groups
the engine may use meant joining ``sharing_rules`` twice per ranking, the largest cost of the
statement (BENCHMARKS.md). So that decision, ``policy.visible_groups(MATCHING_ENGINE, …)``, is
stored with the unit as one bit per field group and rewritten whenever the unit's agreement is
written: :func:`refresh`, called by ``registry.service.set_sharing``. A new unit's agreement is
own unit only, which is 0, the column's default. Code that writes ``sharing_rules`` by other
means (the demo loader, bulk loads) calls :func:`refresh` afterwards.

The value is derived, never edited: the agreement stays the one source, and this module the
only writer of the column.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from atlaslink.auth.principal import MATCHING_ENGINE
from atlaslink.models import Unit
from atlaslink.sharing.policy import FieldGroup, load_agreements, visible_groups

BIT: dict[FieldGroup, int] = {g: 1 << i for i, g in enumerate(FieldGroup)}


def mask(groups: Iterable[FieldGroup]) -> int:
    return sum(BIT[g] for g in set(groups))


@functools.lru_cache(maxsize=128)
def groups(value: int) -> frozenset[FieldGroup]:
    return frozenset(g for g, bit in BIT.items() if value & bit)


def refresh(session: Session, unit_ids: Iterable[int] | None = None) -> None:
    """Rewrite ``matching_groups`` of these units (all units with ``None``) from their
    agreements as the session sees them (flush the rules first)."""
    ids = sorted(set(unit_ids)) if unit_ids is not None else list(session.scalars(select(Unit.id)))
    if not ids:
        return
    agreements = load_agreements(session, ids)
    values = [
        {"unit": i, "groups": mask(visible_groups(MATCHING_ENGINE, agreements[i]))} for i in ids
    ]
    units = cast(Table, Unit.__table__)
    # A derived value, not an edit of the unit: updated_at stays as it is.
    session.execute(
        update(units)
        .where(units.c.id == bindparam("unit"))
        .values(matching_groups=bindparam("groups"), updated_at=units.c.updated_at),
        values,
    )
    # Units already loaded in the session read the new value on next access.
    for row in values:
        unit = session.identity_map.get(session.identity_key(Unit, row["unit"]))
        if unit is not None:
            session.expire(unit, ["matching_groups"])
