"""The registry version: one row whose token changes with every write that listings read."""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from atlaslink.models.base import Base

# Tables whose every write gives the registry a new version (triggers of migrations 0004; 0009
# for transport_assets; 0010 for the country rules and bilateral agreements).
VERSIONED_TABLES = (
    "units",
    "networks",
    "unit_contacts",
    "capability_entries",
    "sharing_rules",
    "sharing_targets",
    "transport_assets",
    "country_settings",
    "bilateral_agreements",
)


class RegistryVersion(Base):
    """Per-process caches of registry data (sharing agreements, directory pages) are keyed by
    ``token``. Database triggers on :data:`VERSIONED_TABLES` set it to a new random value in the
    writing transaction itself, so no writer can forget it, and a rolled-back token never comes
    back (as a counter would)."""

    __tablename__ = "registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(String(32))
