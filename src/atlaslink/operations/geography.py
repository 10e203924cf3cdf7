"""Static geography of the network, kept as data: who borders whom, which region a country is
in, how far apart two points are.

Used by the matching engine (border-crossing overhead of a road journey) and by the rings a
request moves through when no unit can fill it (DOMAIN.md §5: neighbours → region → network).
Countries are ISO 3166-1 alpha-2 codes, as stored (GR and GB, not EL and UK).

Neighbours are land borders between the 32 countries the platform knows (the 31 ATLAS
countries plus LI), plus the short sea or fixed links that police convoys actually use:

* DK-SE (Øresund bridge), EE-FI (Tallinn-Helsinki ferry, about 2 h), FR-GB (Channel Tunnel),
  IT-MT (Pozzallo-Valletta ferry, about 1.5 h);
* IE-GB is a land border (Northern Ireland) and also the Irish Sea ferries.

Overnight ferries (e.g. GR-IT, NL-GB, DK-NO) are not neighbours: for a convoy they are as slow
as going round. CY and IS have no neighbours among these countries.

Regions (used for ring 2, "same region"):

=============  =========================================================================
nordic         DK FI IS NO SE
baltic         EE LT LV
benelux        BE LU NL
british_isles  GB IE
western        ES FR PT (France and the Iberian peninsula)
central        AT CH CZ DE HU LI PL SK
southern       IT MT
south_east     BG CY GR HR RO SI
=============  =========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

# Each pair once; the mapping below is built symmetric from it, so it cannot drift.
_LAND_BORDERS: tuple[tuple[str, str], ...] = (
    ("AT", "CH"), ("AT", "CZ"), ("AT", "DE"), ("AT", "HU"), ("AT", "IT"), ("AT", "LI"),
    ("AT", "SI"), ("AT", "SK"),
    ("BE", "DE"), ("BE", "FR"), ("BE", "LU"), ("BE", "NL"),
    ("BG", "GR"), ("BG", "RO"),
    ("CH", "DE"), ("CH", "FR"), ("CH", "IT"), ("CH", "LI"),
    ("CZ", "DE"), ("CZ", "PL"), ("CZ", "SK"),
    ("DE", "DK"), ("DE", "FR"), ("DE", "LU"), ("DE", "NL"), ("DE", "PL"),
    ("EE", "LV"),
    ("ES", "FR"), ("ES", "PT"),
    ("FI", "NO"), ("FI", "SE"),
    ("FR", "IT"), ("FR", "LU"),
    ("GB", "IE"),
    ("HR", "HU"), ("HR", "SI"),
    ("HU", "RO"), ("HU", "SI"), ("HU", "SK"),
    ("IT", "SI"),
    ("LT", "LV"), ("LT", "PL"),
    ("NO", "SE"),
    ("PL", "SK"),
)  # fmt: skip
_SHORT_SEA_OR_FIXED_LINKS: tuple[tuple[str, str], ...] = (
    ("DK", "SE"),
    ("EE", "FI"),
    ("FR", "GB"),
    ("IT", "MT"),
)

# The 31 ATLAS countries (EU 27, NO, IS, CH, GB) and LI (membership unconfirmed).
COUNTRIES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        "NO", "IS", "CH", "GB", "LI",
    }
)  # fmt: skip


def _symmetric(pairs: tuple[tuple[str, str], ...]) -> Mapping[str, frozenset[str]]:
    out: dict[str, set[str]] = {c: set() for c in COUNTRIES}
    for a, b in pairs:
        out[a].add(b)
        out[b].add(a)
    return MappingProxyType({c: frozenset(n) for c, n in sorted(out.items())})


NEIGHBOURS: Mapping[str, frozenset[str]] = _symmetric(_LAND_BORDERS + _SHORT_SEA_OR_FIXED_LINKS)

REGIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "nordic": frozenset({"DK", "FI", "IS", "NO", "SE"}),
        "baltic": frozenset({"EE", "LT", "LV"}),
        "benelux": frozenset({"BE", "LU", "NL"}),
        "british_isles": frozenset({"GB", "IE"}),
        "western": frozenset({"ES", "FR", "PT"}),
        "central": frozenset({"AT", "CH", "CZ", "DE", "HU", "LI", "PL", "SK"}),
        "southern": frozenset({"IT", "MT"}),
        "south_east": frozenset({"BG", "CY", "GR", "HR", "RO", "SI"}),
    }
)
REGION_OF: Mapping[str, str] = MappingProxyType(
    {country: region for region, members in REGIONS.items() for country in members}
)

# Rings, from the requesting country outwards (RequestAddressee.ring uses the same numbers).
SAME_COUNTRY, NEIGHBOUR, SAME_REGION, NETWORK = 0, 1, 2, 3


def ring_of(requesting: str, unit_country: str) -> int:
    """0 same country, 1 neighbour, 2 same region, 3 rest of the network.

    A country this module does not know (added to the network later) is "rest of the network"
    for everyone until it is added here.
    """
    if requesting == unit_country:
        return SAME_COUNTRY
    if unit_country in NEIGHBOURS.get(requesting, frozenset()):
        return NEIGHBOUR
    region = REGION_OF.get(requesting)
    if region is not None and REGION_OF.get(unit_country) == region:
        return SAME_REGION
    return NETWORK


# Mean Earth radius (IUGG), in km.
EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in decimal degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlat = p2 - p1
    dlon = math.radians(lon2 - lon1)
    a = math.sin(dlat / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlon / 2) ** 2
    # min() guards against a rounding error pushing a just above 1 for antipodal points.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
