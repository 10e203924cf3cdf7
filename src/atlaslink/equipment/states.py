"""The lifecycle of an equipment loan, as a transition table (like operations/states.py).

    REQUESTED → RESERVED → ISSUED → IN_TRANSIT → ON_LOAN → RETURNED → CHECKED
    before RESERVED: DECLINED, CANCELLED, EXPIRED (not decided before it was due to start)
    exits: REPAIR (after the return check; then CHECKED), LOST, DESTROYED

A request already holds the period (so two overlapping requests cannot both be made); the
hold is released when the loan is declined, cancelled or expires, and shortened to the
actual return when the item is checked back in.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class LoanStatus(StrEnum):
    REQUESTED = "REQUESTED"
    RESERVED = "RESERVED"
    ISSUED = "ISSUED"
    IN_TRANSIT = "IN_TRANSIT"
    ON_LOAN = "ON_LOAN"
    RETURNED = "RETURNED"
    CHECKED = "CHECKED"
    REPAIR = "REPAIR"
    LOST = "LOST"
    DESTROYED = "DESTROYED"
    DECLINED = "DECLINED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


L = LoanStatus
LOAN_TRANSITIONS: Mapping[LoanStatus, frozenset[LoanStatus]] = {
    L.REQUESTED: frozenset({L.RESERVED, L.DECLINED, L.CANCELLED, L.EXPIRED}),
    L.RESERVED: frozenset({L.ISSUED, L.CANCELLED}),
    L.ISSUED: frozenset({L.IN_TRANSIT, L.LOST, L.DESTROYED}),
    L.IN_TRANSIT: frozenset({L.ON_LOAN, L.LOST, L.DESTROYED}),
    L.ON_LOAN: frozenset({L.RETURNED, L.LOST, L.DESTROYED}),
    L.RETURNED: frozenset({L.CHECKED, L.REPAIR, L.LOST, L.DESTROYED}),
    L.REPAIR: frozenset({L.CHECKED, L.DESTROYED}),
}

# Who takes each step: "owner" (the lending unit), "borrower", or "either".
STEP_SIDE: Mapping[LoanStatus, str] = {
    L.RESERVED: "owner",
    L.DECLINED: "owner",
    L.CANCELLED: "either",
    L.ISSUED: "owner",
    L.IN_TRANSIT: "either",
    L.ON_LOAN: "borrower",
    L.RETURNED: "owner",
    L.CHECKED: "owner",
    L.REPAIR: "owner",
    L.LOST: "either",
    L.DESTROYED: "either",
    L.EXPIRED: "system",
}

# Steps that hand the item from one side to the other: they record condition and signatures.
HANDOVERS = frozenset({L.ISSUED, L.ON_LOAN, L.RETURNED, L.CHECKED, L.REPAIR})
# The item is away from its owner (or on its way): overdue once the period has ended.
OUT = frozenset({L.ISSUED, L.IN_TRANSIT, L.ON_LOAN})
# Loans that still hold their period.
HOLDING = frozenset({L.REQUESTED, L.RESERVED, L.ISSUED, L.IN_TRANSIT, L.ON_LOAN, L.RETURNED})
# Over: nothing more happens.
ENDED = frozenset({L.CHECKED, L.LOST, L.DESTROYED, L.DECLINED, L.CANCELLED, L.EXPIRED})

LABELS: Mapping[LoanStatus, str] = {
    L.REQUESTED: "Requested",
    L.RESERVED: "Reserved",
    L.ISSUED: "Issued",
    L.IN_TRANSIT: "In transit",
    L.ON_LOAN: "On loan",
    L.RETURNED: "Returned",
    L.CHECKED: "Checked",
    L.REPAIR: "In repair",
    L.LOST: "Lost",
    L.DESTROYED: "Destroyed",
    L.DECLINED: "Declined",
    L.CANCELLED: "Cancelled",
    L.EXPIRED: "Expired",
}
# The button that takes each step, as the pages show it.
ACTION_LABELS: Mapping[LoanStatus, str] = {
    L.RESERVED: "Approve the loan",
    L.DECLINED: "Decline",
    L.CANCELLED: "Cancel the loan",
    L.ISSUED: "Record issue (handover)",
    L.IN_TRANSIT: "Mark in transit",
    L.ON_LOAN: "Record receipt",
    L.RETURNED: "Record return",
    L.CHECKED: "Checked, ready again",
    L.REPAIR: "Send to repair",
    L.LOST: "Report lost",
    L.DESTROYED: "Report destroyed",
}

PURPOSES: Mapping[str, str] = {
    "exercise": "Exercise",
    "operation": "Operation",
    "training": "Training",
}
CONDITIONS: Mapping[str, str] = {
    "good": "Good",
    "fair": "Fair, usable",
    "damaged": "Damaged",
    "unusable": "Unusable",
}
ITEM_STATUSES: Mapping[str, str] = {
    "available": "In service",
    "repair": "In repair",
    "lost": "Lost",
    "destroyed": "Destroyed",
    "retired": "Retired",
}
