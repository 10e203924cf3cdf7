"""Who a partner is when the platform shapes a message for it, and who manages partners.

A partner linked to a registered unit reads as that unit's duty desk (what a duty officer of
the unit may see: its country's requests as the requesting side, requests its unit was asked
for, and grants to the unit or its country). Any other partner reads only what was granted:
to observers (if it is marked as an observer) and/or to its country. Either way the request
is shaped by ``operations.views`` with ``operations.policy`` for that principal, so a message
holds exactly what the recipient may see, never more.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from atlaslink.auth.permissions import Permission, Role
from atlaslink.auth.principal import Principal
from atlaslink.models import Partner, Unit

# A partner only reads through these principals: acting on its messages is done by the user
# who imports them (API token or CLI --as), with that user's own permissions.
_READ = frozenset({Permission.REQUESTS_READ})


def partner_principal(session: Session, partner: Partner) -> Principal:
    label = f"partner:{partner.code}"
    if partner.unit_id is not None:
        unit = session.get(Unit, partner.unit_id)
        return Principal(
            kind="user",
            label=label,
            role=Role.DUTY_OFFICER,
            unit_id=partner.unit_id,
            country=unit.country_iso2 if unit else None,
            permissions=_READ,
        )
    return Principal(
        kind="user",
        label=label,
        role=Role.OBSERVER if partner.observer else None,
        country=partner.country_iso2,
        permissions=_READ,
    )


def require_manage(p: Principal) -> None:
    p.require(Permission.MESSAGES_MANAGE)
