"""Value lists the platform's messages use (EDXL ``ValueListURN`` / ``ValueListURI``).

The capability taxonomy is published as a versioned value list: its URN carries the taxonomy
version (``urn:atlaslink:valuelist:capability-type:v3``) and ``TypeStructure`` names the type
by its code. Where a type matches a FEMA RTLT resource type, the RTLT id travels with it as a
``Keyword`` of the ``RTLT_URN`` list, so that partners outside the EU can read it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.models import CapabilityType, TaxonomyVersion

PREFIX = "urn:atlaslink:valuelist:"
CAPABILITY_BASE = PREFIX + "capability-type"
RTLT_URN = "urn:fema:rtlt:resource-typing-id"
LEVEL_URN = PREFIX + "capability-level"
REFERENCE_URN = PREFIX + "request-reference"
CRISIS_URN = PREFIX + "crisis-category"
NATURE_URN = PREFIX + "nature-of-assistance"
LEGAL_BASIS_URN = PREFIX + "legal-basis"
CLASSIFICATION_URN = PREFIX + "classification"
DISTRIBUTION_URN = PREFIX + "distribution-marking"
HANDLING_URN = PREFIX + "handling-code"
STATUS_URN = PREFIX + "distribution-status"  # Exercise / Actual, also in bare RM
LAPSE_URN = PREFIX + "lapse-at"
DEPLOYMENT_URN = PREFIX + "deployment-status"
# ReasonCode: refuse, unable_to_fill, counter_propose, withdraw, decline (of an offer)
ANSWER_URN = PREFIX + "answer"
KIND_URN = PREFIX + "request-kind"
# EDXL-DE descriptor roles and the explicit address scheme.
ROLE_URN = PREFIX + "role"
ADDRESS_SCHEME = "atlaslink:sender-id"
UNIT_ADDRESS_SCHEME = "atlaslink:unit"


def capability_urn(version: int) -> str:
    return f"{CAPABILITY_BASE}:v{version}"


def is_capability_urn(urn: str) -> bool:
    return urn == CAPABILITY_BASE or urn.startswith(CAPABILITY_BASE + ":v")


def taxonomy_version(session: Session) -> int:
    return session.scalar(select(func.max(TaxonomyVersion.version))) or 1


def published(session: Session) -> dict[str, Any]:
    """The capability taxonomy as a value list document (current types; retired ones are
    listed with the version that retired them, so older messages stay readable)."""
    version = taxonomy_version(session)
    types = session.scalars(select(CapabilityType).order_by(CapabilityType.sort_order)).all()
    return {
        "valueListURN": capability_urn(version),
        "version": version,
        "published": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "mapping": {"rtlt": RTLT_URN},
        "values": [
            {
                "value": t.code,
                "name": t.name,
                "kind": t.kind,
                "rtlt_id": t.rtlt_id,
                "introduced_in": t.introduced_in,
                "retired_in": t.retired_in,
            }
            for t in types
        ],
    }
