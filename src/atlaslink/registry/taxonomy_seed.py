"""The starting capability taxonomy (DOMAIN.md §3). The support office edits it as data later."""

from __future__ import annotations

# code, kind, name, FEMA RTLT id (so non-EU partners can read the type)
INITIAL_TYPES: tuple[tuple[str, str, str, str | None], ...] = (
    ("building", "environment", "Building", "6-508-1245"),
    ("aircraft", "environment", "Aircraft", None),
    ("maritime", "environment", "Maritime (ship/platform)", None),
    ("land_transport", "environment", "Land transport (bus, train, metro)", None),
    ("vehicle_interdiction", "environment", "Vehicle interdiction", None),
    ("open_terrain", "environment", "Open terrain", None),
    ("critical_infrastructure", "environment", "Critical infrastructure", None),
    ("breaching_mechanical", "skill", "Breaching: mechanical", None),
    ("breaching_ballistic", "skill", "Breaching: ballistic", None),
    ("breaching_explosive", "skill", "Breaching: explosive", None),
    ("breaching_thermal", "skill", "Breaching: thermal", None),
    ("sniper_observer", "skill", "Sniper/observer", None),
    ("crisis_negotiation", "skill", "Crisis negotiation", "6-508-1231"),
    ("tactical_medicine", "skill", "Tactical medicine", None),
    ("canine", "skill", "Canine", None),
    ("rope_access", "skill", "Rope access", None),
    ("helicopter_insertion", "skill", "Helicopter insertion", None),
    ("parachute_insertion", "skill", "Parachute insertion", None),
    ("combat_diving", "skill", "Combat diving", None),
    ("recon_robotics", "skill", "Reconnaissance robotics", None),
    ("drones", "skill", "Drones", None),
    ("counter_drone", "skill", "Counter-drone", None),
    ("eod_liaison", "skill", "EOD liaison", "6-508-1176"),
    ("cbrn_protected", "skill", "CBRN-protected operations", None),
    ("armoured_mobility", "skill", "Armoured mobility", None),
    ("command_liaison", "skill", "Command and liaison", None),
    ("technical_surveillance", "skill", "Technical surveillance", None),
)

LEVELS: dict[int, str] = {
    0: "0 · none",
    1: "1 · can support under another unit's lead",
    2: "2 · can lead nationally",
    3: "3 · can lead or deploy abroad as a self-sustaining package",
}

TRANSPORT_KINDS: dict[str, str] = {
    "helicopter": "Helicopter",
    "aircraft": "Aircraft",
    "armoured_vehicle": "Armoured vehicle",
    "boat": "Boat",
}

CONTACT_KINDS: dict[str, str] = {"phone": "Phone", "email": "E-mail", "radio": "Radio"}

# EU style displays Greece as EL and the United Kingdom as UK; ISO codes are stored.
EU_DISPLAY: dict[str, str] = {"GR": "EL", "GB": "UK"}


def display_country(iso2: str) -> str:
    return EU_DISPLAY.get(iso2, iso2)
