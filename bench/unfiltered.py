"""The unit listing with no sharing applied: the benchmark's baseline, never part of the product
(it would bypass the sharing rules, so it lives only here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from atlaslink.audit.service import note_read
from atlaslink.registry import repository as repo
from atlaslink.registry import version as registry_version
from atlaslink.registry.repository import UnitFilters
from atlaslink.registry.service import page_bounds, page_dict
from atlaslink.sharing.policy import FieldGroup, beyond_network, load_agreements


def list_units_unfiltered(
    session: Session, f: UnitFilters, page: int = 1, per_page: int = 50, *, audited: bool = False
) -> dict[str, Any]:
    """``service.list_units_page`` minus the sharing step (agreements, redaction, read audit):
    the same version check and directory page (cached alike), every value shown.

    ``audited``: also note, for the read event, what this page discloses beyond network-wide
    (every unit's capability count, and its contacts if it has any, unless its rules share them
    network-wide), as a listing that shows everything would have to: the read event's cost
    without the filter's."""
    offset, limit = page_bounds(page, per_page)
    version = registry_version.current(session)
    rows, total = repo.directory_page(session, None, f, offset, limit, version=version)
    if audited:
        agreements = load_agreements(session, [r.id for r in rows], version=version)
        for r in rows:
            shown = (
                [FieldGroup.EXISTENCE, FieldGroup.CONTACTS]
                if r.contacts
                else [FieldGroup.EXISTENCE]
            )
            groups = beyond_network(agreements[r.id], shown)
            note_read("unit", r.id, r.id, [g.value for g in groups])
    items = [
        {
            **r.fields,
            "capability_count": r.capability_count,
            "contacts": [dict(c) for c in r.contacts],
        }
        for r in rows
    ]
    return page_dict(items, total, page, per_page)
