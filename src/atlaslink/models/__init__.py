"""All ORM models, imported here so that Alembic and the app see one metadata."""

from atlaslink.models.audit import AuditEvent, AuditHead
from atlaslink.models.auth import ApiToken, User, WebSession
from atlaslink.models.base import Base, utcnow
from atlaslink.models.capability import CapabilityEntry, CapabilityType, TaxonomyVersion
from atlaslink.models.network import (
    Country,
    Network,
    NetworkMember,
    TransportAsset,
    Unit,
    UnitContact,
)
from atlaslink.models.operations import (
    Arrangement,
    AssistanceRequest,
    BilateralAgreement,
    CountrySettings,
    IdempotencyKey,
    ManifestItem,
    MovementRecord,
    Notification,
    Offer,
    OfferLine,
    OperationEvent,
    RequestAddressee,
    RequestGrant,
    RequestLine,
    RequestVersion,
    UserPreferences,
)
from atlaslink.models.sharing import SharingRule, SharingTarget
from atlaslink.models.version import VERSIONED_TABLES, RegistryVersion

__all__ = [
    "VERSIONED_TABLES",
    "ApiToken",
    "Arrangement",
    "AssistanceRequest",
    "AuditEvent",
    "AuditHead",
    "Base",
    "BilateralAgreement",
    "CapabilityEntry",
    "CapabilityType",
    "Country",
    "CountrySettings",
    "IdempotencyKey",
    "ManifestItem",
    "MovementRecord",
    "Network",
    "NetworkMember",
    "Notification",
    "Offer",
    "OfferLine",
    "OperationEvent",
    "RegistryVersion",
    "RequestAddressee",
    "RequestGrant",
    "RequestLine",
    "RequestVersion",
    "SharingRule",
    "SharingTarget",
    "TaxonomyVersion",
    "TransportAsset",
    "Unit",
    "UnitContact",
    "User",
    "UserPreferences",
    "WebSession",
    "utcnow",
]
