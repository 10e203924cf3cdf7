"""The lifecycles of a request, of each addressed unit's answer and of each offer/deployment.

Transitions are tables, not scattered ``if``s: a service asks :func:`check` before it moves
anything, and an invalid move is a 409 with the allowed ones named.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from atlaslink.errors import Conflict


class RequestKind(StrEnum):
    PRE_ALERT = "pre_alert"
    REQUEST = "request"


class RequestStatus(StrEnum):
    DRAFT = "DRAFT"
    NATIONAL_APPROVAL = "NATIONAL_APPROVAL"
    SUBMITTED = "SUBMITTED"
    OPEN = "OPEN"
    PARTIALLY_COVERED = "PARTIALLY_COVERED"
    COVERED = "COVERED"
    ACTIVE = "ACTIVE"
    DEMOBILISING = "DEMOBILISING"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    LAPSED = "LAPSED"
    # A pre-alert is "issued" until a request follows it or it is withdrawn.
    ALERTED = "ALERTED"
    FOLLOWED_UP = "FOLLOWED_UP"
    WITHDRAWN = "WITHDRAWN"


R = RequestStatus
REQUEST_TRANSITIONS: Mapping[RequestStatus, frozenset[RequestStatus]] = {
    R.DRAFT: frozenset({R.NATIONAL_APPROVAL, R.SUBMITTED, R.CANCELLED}),
    # The national gate either lets it through or sends it back for changes.
    R.NATIONAL_APPROVAL: frozenset({R.SUBMITTED, R.DRAFT, R.CANCELLED}),
    R.SUBMITTED: frozenset({R.OPEN, R.CANCELLED, R.LAPSED}),
    R.OPEN: frozenset({R.PARTIALLY_COVERED, R.COVERED, R.ACTIVE, R.CANCELLED, R.LAPSED}),
    R.PARTIALLY_COVERED: frozenset({R.OPEN, R.COVERED, R.ACTIVE, R.CANCELLED, R.LAPSED}),
    R.COVERED: frozenset({R.OPEN, R.PARTIALLY_COVERED, R.ACTIVE, R.CANCELLED}),
    R.ACTIVE: frozenset({R.OPEN, R.PARTIALLY_COVERED, R.COVERED, R.DEMOBILISING}),
    R.DEMOBILISING: frozenset({R.CLOSED, R.ACTIVE}),
    R.ALERTED: frozenset({R.FOLLOWED_UP, R.WITHDRAWN}),
}

# Statuses in which the request is live for responders.
LIVE = frozenset({R.OPEN, R.PARTIALLY_COVERED, R.COVERED, R.ACTIVE, R.DEMOBILISING, R.ALERTED})
# Statuses in which offers may still be made or amended.
ACCEPTS_OFFERS = frozenset({R.OPEN, R.PARTIALLY_COVERED, R.COVERED, R.ACTIVE})
# Requests that are over (nothing more happens to them).
ENDED = frozenset({R.CLOSED, R.CANCELLED, R.LAPSED, R.FOLLOWED_UP, R.WITHDRAWN})


class AddresseeStatus(StrEnum):
    AWAITING_ACK = "AWAITING_ACK"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    ACCEPTED = "ACCEPTED"
    REFUSED = "REFUSED"
    COUNTER_PROPOSED = "COUNTER_PROPOSED"
    UNABLE_TO_FILL = "UNABLE_TO_FILL"
    NO_RESPONSE = "NO_RESPONSE"


A = AddresseeStatus
ADDRESSEE_TRANSITIONS: Mapping[AddresseeStatus, frozenset[AddresseeStatus]] = {
    A.AWAITING_ACK: frozenset(
        {A.ACKNOWLEDGED, A.ACCEPTED, A.REFUSED, A.COUNTER_PROPOSED, A.UNABLE_TO_FILL, A.NO_RESPONSE}
    ),
    A.ACKNOWLEDGED: frozenset(
        {A.ACCEPTED, A.REFUSED, A.COUNTER_PROPOSED, A.UNABLE_TO_FILL, A.NO_RESPONSE}
    ),
    # A unit that answered may answer again when the request is amended, or change its mind.
    A.ACCEPTED: frozenset({A.ACKNOWLEDGED, A.REFUSED, A.UNABLE_TO_FILL, A.COUNTER_PROPOSED}),
    A.COUNTER_PROPOSED: frozenset({A.ACKNOWLEDGED, A.ACCEPTED, A.REFUSED, A.UNABLE_TO_FILL}),
    A.REFUSED: frozenset({A.ACKNOWLEDGED, A.ACCEPTED, A.COUNTER_PROPOSED}),
    A.UNABLE_TO_FILL: frozenset({A.ACKNOWLEDGED, A.ACCEPTED, A.COUNTER_PROPOSED}),
    # Silence is recorded; a late answer is still welcome.
    A.NO_RESPONSE: frozenset({A.ACKNOWLEDGED, A.ACCEPTED, A.REFUSED, A.COUNTER_PROPOSED}),
}


class OfferStatus(StrEnum):
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    MOBILISING = "MOBILISING"
    EN_ROUTE = "EN_ROUTE"
    ON_SITE = "ON_SITE"
    ON_TASK = "ON_TASK"
    STOOD_DOWN = "STOOD_DOWN"
    RETURNING = "RETURNING"
    HOME = "HOME"
    SETTLED = "SETTLED"
    WITHDRAWN = "WITHDRAWN"
    DECLINED = "DECLINED"
    RECALLED = "RECALLED"
    EXPIRED = "EXPIRED"


OS = OfferStatus
OFFER_TRANSITIONS: Mapping[OfferStatus, frozenset[OfferStatus]] = {
    OS.OFFERED: frozenset({OS.ACCEPTED, OS.DECLINED, OS.WITHDRAWN, OS.EXPIRED}),
    OS.ACCEPTED: frozenset({OS.AGREED, OS.WITHDRAWN, OS.DECLINED, OS.EXPIRED}),
    OS.AGREED: frozenset({OS.MOBILISING, OS.RECALLED, OS.DECLINED}),
    OS.MOBILISING: frozenset({OS.EN_ROUTE, OS.RECALLED, OS.STOOD_DOWN}),
    OS.EN_ROUTE: frozenset({OS.ON_SITE, OS.RECALLED, OS.STOOD_DOWN}),
    OS.ON_SITE: frozenset({OS.ON_TASK, OS.STOOD_DOWN, OS.RECALLED}),
    OS.ON_TASK: frozenset({OS.STOOD_DOWN, OS.RECALLED}),
    OS.STOOD_DOWN: frozenset({OS.RETURNING, OS.HOME}),
    OS.RECALLED: frozenset({OS.RETURNING, OS.HOME}),
    OS.RETURNING: frozenset({OS.HOME}),
    OS.HOME: frozenset({OS.SETTLED}),
}
# Offers that still count as "offered" for coverage.
PENDING_OFFER = frozenset({OS.OFFERED})
# Offers the requester took: they cover their lines from acceptance on, also after the team
# is stood down and home (a recalled team does not: see ``Offer.recalled_at``).
COMMITTED = frozenset(
    {
        OS.ACCEPTED,
        OS.AGREED,
        OS.MOBILISING,
        OS.EN_ROUTE,
        OS.ON_SITE,
        OS.ON_TASK,
        OS.STOOD_DOWN,
        OS.RETURNING,
        OS.HOME,
        OS.SETTLED,
    }
)
# Teams engaged in the operation right now.
ENGAGED = frozenset({OS.MOBILISING, OS.EN_ROUTE, OS.ON_SITE, OS.ON_TASK})
# Teams whose part is over.
FINISHED = frozenset({OS.STOOD_DOWN, OS.RETURNING, OS.HOME, OS.SETTLED})
# Teams physically at the incident.
AT_INCIDENT = frozenset({OS.ON_SITE, OS.ON_TASK})
# Teams away from home (they count as a unit's current commitments in matching).
DEPLOYED = frozenset({OS.AGREED, OS.MOBILISING, OS.EN_ROUTE, OS.ON_SITE, OS.ON_TASK, OS.RETURNING})
# Steps the assisting unit reports; the requesting side may record arrival and tasking too.
ASSISTING_STEPS = frozenset(
    {OS.MOBILISING, OS.EN_ROUTE, OS.ON_SITE, OS.ON_TASK, OS.RETURNING, OS.HOME, OS.SETTLED}
)
REQUESTER_STEPS = frozenset({OS.ON_SITE, OS.ON_TASK, OS.STOOD_DOWN, OS.SETTLED})
# Teams the requesting side may ask for a status report (committed, not yet home).
REPORTS_STATUS = frozenset(
    {
        OS.AGREED,
        OS.MOBILISING,
        OS.EN_ROUTE,
        OS.ON_SITE,
        OS.ON_TASK,
        OS.STOOD_DOWN,
        OS.RECALLED,
        OS.RETURNING,
    }
)
# The assisting unit may still declare what it brings.
MANIFEST_OPEN = frozenset({OS.ACCEPTED, OS.AGREED, OS.MOBILISING})
# Offers that are over.
OFFER_ENDED = frozenset({OS.SETTLED, OS.WITHDRAWN, OS.DECLINED, OS.EXPIRED, OS.HOME})


def check(
    what: str, current: str, target: str, table: Mapping[StrEnum, frozenset[StrEnum]]
) -> None:
    """Refuse a move the lifecycle does not allow, naming what is allowed instead."""
    allowed = table.get(current, frozenset())  # type: ignore[call-overload]  # str keys of StrEnum
    if target not in allowed:
        names = ", ".join(sorted(str(a) for a in allowed)) or "none (final state)"
        raise Conflict(f"A {what} in state {current} cannot move to {target}. Allowed: {names}.")
