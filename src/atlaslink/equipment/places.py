"""Named places to search from (capitals of the network's countries), kept as data.

Any point can be given as latitude/longitude instead; these save typing coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from atlaslink.equipment.schemas import Place

_PLACES: tuple[tuple[str, str, str, float, float], ...] = (
    ("amsterdam", "Amsterdam", "NL", 52.3676, 4.9041),
    ("athens", "Athens", "GR", 37.9838, 23.7275),
    ("berlin", "Berlin", "DE", 52.5200, 13.4050),
    ("bern", "Bern", "CH", 46.9480, 7.4474),
    ("bratislava", "Bratislava", "SK", 48.1486, 17.1077),
    ("brussels", "Brussels", "BE", 50.8503, 4.3517),
    ("bucharest", "Bucharest", "RO", 44.4268, 26.1025),
    ("budapest", "Budapest", "HU", 47.4979, 19.0402),
    ("copenhagen", "Copenhagen", "DK", 55.6761, 12.5683),
    ("dublin", "Dublin", "IE", 53.3498, -6.2603),
    ("helsinki", "Helsinki", "FI", 60.1699, 24.9384),
    ("lisbon", "Lisbon", "PT", 38.7223, -9.1393),
    ("ljubljana", "Ljubljana", "SI", 46.0569, 14.5058),
    ("london", "London", "GB", 51.5072, -0.1276),
    ("luxembourg", "Luxembourg", "LU", 49.6116, 6.1319),
    ("madrid", "Madrid", "ES", 40.4168, -3.7038),
    ("nicosia", "Nicosia", "CY", 35.1856, 33.3823),
    ("oslo", "Oslo", "NO", 59.9139, 10.7522),
    ("paris", "Paris", "FR", 48.8566, 2.3522),
    ("prague", "Prague", "CZ", 50.0755, 14.4378),
    ("reykjavik", "Reykjavik", "IS", 64.1466, -21.9426),
    ("riga", "Riga", "LV", 56.9496, 24.1052),
    ("rome", "Rome", "IT", 41.9028, 12.4964),
    ("sofia", "Sofia", "BG", 42.6977, 23.3219),
    ("stockholm", "Stockholm", "SE", 59.3293, 18.0686),
    ("tallinn", "Tallinn", "EE", 59.4370, 24.7536),
    ("the_hague", "The Hague", "NL", 52.0705, 4.3007),
    ("valletta", "Valletta", "MT", 35.8989, 14.5146),
    ("vienna", "Vienna", "AT", 48.2082, 16.3738),
    ("vilnius", "Vilnius", "LT", 54.6872, 25.2797),
    ("warsaw", "Warsaw", "PL", 52.2297, 21.0122),
    ("zagreb", "Zagreb", "HR", 45.8150, 15.9819),
)

PLACES: Mapping[str, Place] = MappingProxyType(
    {
        code: Place(code=code, name=name, country=country, latitude=lat, longitude=lon)
        for code, name, country, lat, lon in _PLACES
    }
)


def find_place(name: str) -> Place | None:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return PLACES.get(key)
