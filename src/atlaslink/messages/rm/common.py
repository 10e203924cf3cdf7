"""EDXL-RM 1.0: what the building and the reading halves share (namespaces, the message types,
date-times, threading and vocabulary records, resource ids)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

NS_MSG = "urn:oasis:names:tc:emergency:EDXL:RM:1.0:msg"
NS_RM = "urn:oasis:names:tc:emergency:EDXL:RM:1.0"
NS_GML = "http://www.opengis.net/gml"
NSMAP = {"rmsg": NS_MSG, "rm": NS_RM, "gml": NS_GML}

# The 16 message types of EDXL-RM 1.0 (each has its schema EDXL-RM<Type>.xsd).
TYPES = (
    "RequestResource",
    "ResponseToRequestResource",
    "RequisitionResource",
    "CommitResource",
    "RequestInformation",
    "ResponseToRequestInformation",
    "OfferUnsolicitedResource",
    "ReleaseResource",
    "RequestReturn",
    "ResponseToRequestReturn",
    "RequestQuote",
    "ResponseToRequestQuote",
    "RequestResourceDeploymentStatus",
    "ReportResourceDeploymentStatus",
    "RequestExtendedDeploymentDuration",
    "ResponseToRequestExtendedDeploymentDuration",
)
# Types whose schema requires / allows PrecedingMessageID.
_PRECEDING_REQUIRED = frozenset(
    {"ResponseToRequestResource", "CommitResource", "ResponseToRequestReturn"}
)
_NO_PRECEDING = frozenset({"RequestResource", "OfferUnsolicitedResource"})


def dt(value: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+00:00``: no fractional seconds, no ``Z`` (EDXL-DE 2.0 requires
    it; RM accepts it, and one form everywhere keeps the envelope and payload alike)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def parse_dt(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Thread:
    """Where a message sits: its id, the first message of the thread, the one it answers."""

    message_id: str
    sent: datetime
    origin: str
    preceding: str | None = None
    recall: tuple[str, str] | None = None  # (RecallMessageID, "Update" | "Cancel")
    description: str = ""


@dataclass
class Vocabulary:
    """The taxonomy version and the FEMA RTLT mapping of each capability code."""

    version: int
    rtlt: dict[str, str | None] = field(default_factory=dict)


def line_info_id(line_no: int) -> str:
    return f"line-{line_no}"


def offer_info_id(offer_id: int, line_no: int) -> str:
    return f"offer-{offer_id}-line-{line_no}"
