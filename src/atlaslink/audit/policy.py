"""Which audit events a principal may read, and how much of each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from atlaslink.audit.service import note_read
from atlaslink.auth.permissions import Permission, Role
from atlaslink.auth.principal import Principal
from atlaslink.models import AuditEvent
from atlaslink.sharing.policy import FieldGroup, beyond_network, load_agreements, visible_groups

G = FieldGroup
# The groups an event's before/after snapshot holds, by object type. Snapshots are shown only to
# those who may see every group in them under the unit's current agreement.
SNAPSHOT_GROUPS: dict[str, frozenset[FieldGroup] | None] = {
    "capability": frozenset({G.EXISTENCE, G.LEVEL, G.PACKAGE, G.NOTICE}),
    "unit": frozenset({G.CONTACTS, G.TRANSPORT}),
}
# Object types whose snapshots are never shown beyond the unit (whom a unit trusts is its own).
PRIVATE_ACTIONS = frozenset({"sharing.update"})


class AuditEntry(BaseModel):
    seq: int
    occurred_at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    unit_id: int | None
    request_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    withheld: bool


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int
    page: int
    per_page: int
    pages: int


@dataclass(frozen=True)
class AuditFilters:
    action: str | None = None
    object_type: str | None = None
    actor: str | None = None
    unit_id: int | None = None


def readable(
    session: Session, viewer: Principal, f: AuditFilters, page: int = 1, per_page: int = 50
) -> AuditPage:
    viewer.require(Permission.AUDIT_READ)
    # Everyone with audit:read sees every event's metadata (who did what to which object, when);
    # the before/after values are shown only as far as the unit's sharing agreement allows.
    conds: list[ColumnElement[bool]] = []
    if f.action:
        conds.append(AuditEvent.action.like(f"{f.action}%"))
    if f.object_type:
        conds.append(AuditEvent.object_type == f.object_type)
    if f.actor:
        conds.append(AuditEvent.actor_label == f.actor)
    if f.unit_id is not None:
        conds.append(AuditEvent.unit_id == f.unit_id)
    total = session.scalar(select(func.count(AuditEvent.id)).where(*conds)) or 0
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(*conds)
            .order_by(AuditEvent.seq.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    agreements = load_agreements(session, [e.unit_id for e in events if e.unit_id is not None])
    items = []
    for e in events:
        show = _may_see_snapshot(viewer, e, agreements)
        needed = SNAPSHOT_GROUPS.get(e.object_type)
        if show and needed and e.unit_id is not None and (e.before or e.after):
            # A shown snapshot discloses the unit's values of these groups: a read like any.
            groups = beyond_network(agreements[e.unit_id], needed)
            note_read("audit_event", e.seq, e.unit_id, [g.value for g in groups])
        items.append(
            AuditEntry(
                seq=e.seq,
                occurred_at=e.occurred_at,
                actor=e.actor_label,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                unit_id=e.unit_id,
                request_id=e.request_id,
                before=e.before if show else None,
                after=e.after if show else None,
                withheld=not show and (e.before is not None or e.after is not None),
            )
        )
    return AuditPage(
        items=items,
        total=total,
        page=page,
        per_page=per_page,
        pages=max(1, math.ceil(total / per_page)),
    )


def _may_see_snapshot(viewer: Principal, e: AuditEvent, agreements: dict[int, Any]) -> bool:
    if e.object_type == "disclosure":
        # Which groups of which units were shown to whom follows from those units' sharing
        # agreements, which are their own (PRIVATE_ACTIONS): the event's metadata (who read,
        # when, which objects) is shown, its list of groups is not.
        return False
    if e.unit_id is None:
        # Account, token and taxonomy events hold no unit field values.
        return True
    if viewer.role is Role.PLATFORM_ADMIN or e.action in PRIVATE_ACTIONS:
        return viewer.unit_id == e.unit_id
    needed = SNAPSHOT_GROUPS.get(e.object_type)
    if needed is None:
        return viewer.unit_id == e.unit_id
    return needed <= visible_groups(viewer, agreements[e.unit_id])
