"""EDXL-RM 1.0 messages: built from what ``operations.views`` shows a recipient
(:mod:`.building`), and read back into plain data for the inbound side (:mod:`.reading`). The
mapping is in docs/messages.md.

Building uses lxml (explicit prefixes, no global state); reading takes the standard-library
elements that ``xmlsafe.parse`` returns.
"""

from atlaslink.messages.rm.building import (
    STEP_SCHEDULE,
    commit,
    decline,
    release,
    report_status,
    request_resource,
    request_return,
    request_status,
    requester_description,
    requisition,
    response_to_request,
    serialize,
    unit_description,
)
from atlaslink.messages.rm.common import (
    NS_GML,
    NS_MSG,
    NS_RM,
    NSMAP,
    TYPES,
    Thread,
    Vocabulary,
    dt,
    line_info_id,
    offer_info_id,
    parse_dt,
)
from atlaslink.messages.rm.reading import (
    Contact,
    Message,
    Resource,
    Schedule,
    read,
    rule_errors,
)

__all__ = [
    "NSMAP",
    "NS_GML",
    "NS_MSG",
    "NS_RM",
    "STEP_SCHEDULE",
    "TYPES",
    "Contact",
    "Message",
    "Resource",
    "Schedule",
    "Thread",
    "Vocabulary",
    "commit",
    "decline",
    "dt",
    "line_info_id",
    "offer_info_id",
    "parse_dt",
    "read",
    "release",
    "report_status",
    "request_resource",
    "request_return",
    "request_status",
    "requester_description",
    "requisition",
    "response_to_request",
    "rule_errors",
    "serialize",
    "unit_description",
]
