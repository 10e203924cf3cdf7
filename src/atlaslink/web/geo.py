"""Offline map geometry: projection and shipped country outlines.

The web map of police units must work without internet access, so the country
outlines are shipped with the package (``static/europe-outlines.json``, built
from Natural Earth 1:50m data by ``scripts/build_outlines.py``).

Coordinates are SVG user units in kilometres of a spherical ETRS89-LAEA
projection (EPSG:3035 parameters: lat0=52, lon0=10, false easting 4321 km,
false northing 3210 km, R=6371007 m): ``x = easting / 1000`` and
``y = -northing / 1000`` so that north is up in SVG.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["CountryOutline", "MapOutlines", "outlines", "project"]

_EARTH_RADIUS_M = 6371007.0
_SIN_LAT0 = math.sin(math.radians(52.0))
_COS_LAT0 = math.cos(math.radians(52.0))
_LON0 = math.radians(10.0)
_FALSE_EASTING_M = 4321000.0
_FALSE_NORTHING_M = 3210000.0

_ASSET_PACKAGE = "atlaslink.web"
_ASSET_PATH = "static/europe-outlines.json"


@dataclass(frozen=True)
class CountryOutline:
    """One country: ISO 3166-1 alpha-2 code (or None), name, SVG path data."""

    iso2: str | None
    name: str
    d: str


@dataclass(frozen=True)
class MapOutlines:
    """All country outlines plus the SVG viewBox (min_x, min_y, width, height)."""

    view_box: tuple[float, float, float, float]
    countries: tuple[CountryOutline, ...]
    source: str


def project(lat: float, lon: float) -> tuple[float, float]:
    """Project WGS84/ETRS89 degrees to map SVG coordinates (km, y down).

    Uses the same spherical Lambert azimuthal equal-area formula as the
    outline asset, so projected points line up with the country shapes.
    """
    phi = math.radians(lat)
    dlam = math.radians(lon) - _LON0
    sin_phi = math.sin(phi)
    cos_phi = math.cos(phi)
    cos_dlam = math.cos(dlam)
    denom = 1.0 + _SIN_LAT0 * sin_phi + _COS_LAT0 * cos_phi * cos_dlam
    k = math.sqrt(2.0 / max(denom, 1e-12))
    easting = _FALSE_EASTING_M + _EARTH_RADIUS_M * k * cos_phi * math.sin(dlam)
    northing = _FALSE_NORTHING_M + _EARTH_RADIUS_M * k * (
        _COS_LAT0 * sin_phi - _SIN_LAT0 * cos_phi * cos_dlam
    )
    return easting / 1000.0, -northing / 1000.0


def _parse(raw: dict[str, Any]) -> MapOutlines:
    vb = [float(v) for v in raw["viewBox"]]
    if len(vb) != 4:
        raise ValueError("viewBox must have 4 numbers")
    countries = tuple(
        CountryOutline(
            iso2=str(c["iso2"]) if c.get("iso2") is not None else None,
            name=str(c["name"]),
            d=str(c["d"]),
        )
        for c in raw["countries"]
    )
    return MapOutlines(
        view_box=(vb[0], vb[1], vb[2], vb[3]),
        countries=countries,
        source=str(raw["source"]),
    )


@functools.cache
def outlines() -> MapOutlines:
    """Load the shipped Europe outlines (once per process)."""
    text = resources.files(_ASSET_PACKAGE).joinpath(_ASSET_PATH).read_text(encoding="utf-8")
    raw: dict[str, Any] = json.loads(text)
    return _parse(raw)
