"""The unit listing with no sharing applied: the benchmark's baseline, never part of the product
(it would bypass the sharing rules, so it lives only here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from atlaslink.registry import repository as repo
from atlaslink.registry.repository import UnitFilters
from atlaslink.registry.service import page_bounds


def list_units_unfiltered(
    session: Session, f: UnitFilters, page: int = 1, per_page: int = 50
) -> list[dict[str, Any]]:
    """The same queries as ``service.list_units``, minus agreements, redaction and read audit."""
    offset, limit = page_bounds(page, per_page)
    rows, _ = repo.units_page(session, None, f, offset, limit)
    ids = [u.id for u, _ in rows]
    counts = repo.capability_counts(session, ids)
    contacts = repo.contacts_of(session, ids)
    return [
        {
            "id": u.id,
            "code": u.code,
            "name": u.name,
            "country": u.country_iso2,
            "network": n,
            "base_location": u.base_location,
            "languages": u.languages,
            "capability_count": counts.get(u.id, 0),
            "contacts": [
                {"kind": c.kind, "label": c.label, "value": c.value} for c in contacts[u.id]
            ],
        }
        for u, n in rows
    ]
