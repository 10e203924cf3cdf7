#!/usr/bin/env python3
"""Build the offline Europe outline asset for the web map (developer tool).

This script is NOT used at runtime. It converts Natural Earth 1:50m country
polygons (public domain), as packaged in the npm package ``world-atlas@2``,
into the compact SVG-path asset shipped at
``src/atlaslink/web/static/europe-outlines.json``.

Getting the source data (do not commit node_modules)::

    npm install --prefix /tmp/wa world-atlas@2
    python scripts/build_outlines.py /tmp/wa/node_modules/world-atlas/countries-50m.json

Pipeline (plain Python, stdlib only):

1. Decode the TopoJSON: delta-encoded quantized arcs + ``transform``.
2. Keep countries with at least one vertex inside lon -25..45, lat 33..72.
3. Project every arc vertex with spherical ETRS89-LAEA (EPSG:3035 parameters:
   lat0=52, lon0=10, false easting 4321 km, false northing 3210 km,
   R=6371007 m) into SVG coordinates: x = easting/1000, y = -northing/1000
   (kilometres, north up).  ``atlaslink.web.geo.project`` uses the same formula.
4. Simplify each *arc* once with Douglas-Peucker (shared borders therefore
   stay identical for both neighbours, no slivers or gaps).
5. Assemble rings, clip them to the view box (plus a small margin, so the
   artificial clip edges lie outside the visible area), drop tiny rings,
   orient outer rings clockwise and holes counter-clockwise (on screen), so
   both ``nonzero`` and ``evenodd`` fill rules render holes correctly.
6. Write SVG path strings (absolute ``M`` + relative ``l``, 0.1 km precision).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

SOURCE = "Natural Earth 1:50m via world-atlas 2.0.2 (public domain)"
PROJECTION = "EPSG:3035 LAEA lat0=52 lon0=10 (spherical)"

DEFAULT_OUT = (
    Path(__file__).resolve().parent.parent
    / "src"
    / "atlaslink"
    / "web"
    / "static"
    / "europe-outlines.json"
)

# Geographic selection box (lon_min, lat_min, lon_max, lat_max).
SELECT_BOX = (-25.0, 33.0, 45.0, 72.0)

# View box in SVG km coordinates: (min_x, min_y, width, height).
# x 2500..7300: west of Iceland (-24.5E, x~2760) and Cabo da Roca (x~2650)
#   to the Turkey/Iran border and lon 45E in Russia (x~7200 at 40N).
# y -5500..-1250: north of Nordkapp (71.2N, y~-5400) down to ~34N at lon 10
#   (Tunisian coast, Malta, Crete, Cyprus all inside).
VIEW_BOX = (2500.0, -5500.0, 4800.0, 4250.0)
CLIP_MARGIN_KM = 30.0

SIMPLIFY_TOLERANCE_KM = 1.0
MIN_RING_AREA_KM2 = 8.0
# Fallback for countries that would otherwise vanish (micro-states).
FALLBACK_TOLERANCE_KM = 0.2

# Projection (must match atlaslink.web.geo.project).
EARTH_RADIUS_M = 6371007.0
LAT0 = math.radians(52.0)
LON0 = math.radians(10.0)
FALSE_EASTING_M = 4321000.0
FALSE_NORTHING_M = 3210000.0

# ISO 3166-1 numeric -> alpha-2 for the countries found in SELECT_BOX.
ISO_NUMERIC_TO_ALPHA2: dict[str, str] = {
    "008": "AL",
    "012": "DZ",
    "020": "AD",
    "031": "AZ",
    "040": "AT",
    "051": "AM",
    "056": "BE",
    "070": "BA",
    "100": "BG",
    "112": "BY",
    "191": "HR",
    "196": "CY",
    "203": "CZ",
    "208": "DK",
    "233": "EE",
    "234": "FO",
    "246": "FI",
    "248": "AX",
    "250": "FR",
    "268": "GE",
    "276": "DE",
    "300": "GR",
    "304": "GL",
    "336": "VA",
    "348": "HU",
    "352": "IS",
    "364": "IR",
    "368": "IQ",
    "372": "IE",
    "376": "IL",
    "380": "IT",
    "400": "JO",
    "422": "LB",
    "428": "LV",
    "434": "LY",
    "438": "LI",
    "440": "LT",
    "442": "LU",
    "470": "MT",
    "492": "MC",
    "498": "MD",
    "499": "ME",
    "504": "MA",
    "528": "NL",
    "578": "NO",
    "616": "PL",
    "620": "PT",
    "642": "RO",
    "643": "RU",
    "674": "SM",
    "688": "RS",
    "703": "SK",
    "705": "SI",
    "724": "ES",
    "752": "SE",
    "756": "CH",
    "760": "SY",
    "788": "TN",
    "792": "TR",
    "804": "UA",
    "807": "MK",
    "826": "GB",
    "831": "GG",
    "832": "JE",
    "833": "IM",
}

# Features without an ISO numeric id in Natural Earth. Kosovo uses the
# user-assigned code XK (as used by the EU); "N. Cyprus" stays null.
NAME_TO_ALPHA2: dict[str, str] = {"Kosovo": "XK"}

# Display names that differ from Natural Earth's abbreviated labels.
NAME_OVERRIDES: dict[str, str] = {
    "Bosnia and Herz.": "Bosnia and Herzegovina",
    "Faeroe Is.": "Faroe Islands",
    "Macedonia": "North Macedonia",
    "Vatican": "Vatican City",
}

Point = tuple[float, float]
Ring = list[Point]


# --------------------------------------------------------------------------
# TopoJSON decoding
# --------------------------------------------------------------------------


def decode_arcs(topo: dict) -> list[list[Point]]:
    """Decode quantized, delta-encoded arcs into lon/lat positions."""
    transform = topo.get("transform")
    arcs: list[list[Point]] = []
    for arc in topo["arcs"]:
        if transform is None:
            arcs.append([(float(p[0]), float(p[1])) for p in arc])
            continue
        (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
        x = y = 0
        pts: list[Point] = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def geometry_polygons(geom: dict) -> list[list[list[int]]]:
    """Return polygons (lists of rings of arc indices) of a geometry."""
    if geom["type"] == "Polygon":
        return [geom["arcs"]]
    if geom["type"] == "MultiPolygon":
        return list(geom["arcs"])
    return []


def arc_index(i: int) -> int:
    return i if i >= 0 else ~i


def assemble_ring(arc_refs: list[int], arcs: list[list[Point]]) -> Ring:
    """Concatenate arcs (negative index = reversed arc ~i) into one ring."""
    ring: Ring = []
    for ref in arc_refs:
        pts = arcs[ref] if ref >= 0 else arcs[~ref][::-1]
        if ring:
            pts = pts[1:]  # first point equals last point of previous arc
        ring.extend(pts)
    return ring


# --------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------


def project(lat: float, lon: float) -> Point:
    """Spherical LAEA (EPSG:3035 parameters) -> SVG km (x east, y down)."""
    phi = math.radians(lat)
    dlam = math.radians(lon) - LON0
    cos_phi = math.cos(phi)
    sin_phi = math.sin(phi)
    cos_dlam = math.cos(dlam)
    denom = 1.0 + math.sin(LAT0) * sin_phi + math.cos(LAT0) * cos_phi * cos_dlam
    k = math.sqrt(2.0 / max(denom, 1e-12))
    easting = FALSE_EASTING_M + EARTH_RADIUS_M * k * cos_phi * math.sin(dlam)
    northing = FALSE_NORTHING_M + EARTH_RADIUS_M * k * (
        math.cos(LAT0) * sin_phi - math.sin(LAT0) * cos_phi * cos_dlam
    )
    return easting / 1000.0, -northing / 1000.0


# --------------------------------------------------------------------------
# Simplification
# --------------------------------------------------------------------------


def _seg_dist2(p: Point, a: Point, b: Point) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    px, py = p[0] - ax, p[1] - ay
    len2 = dx * dx + dy * dy
    if len2 == 0.0:
        return px * px + py * py
    t = max(0.0, min(1.0, (px * dx + py * dy) / len2))
    ex, ey = px - t * dx, py - t * dy
    return ex * ex + ey * ey


def _dp_keep(pts: list[Point], tol: float) -> list[bool]:
    n = len(pts)
    keep = [False] * n
    keep[0] = keep[-1] = True
    tol2 = tol * tol
    stack = [(0, n - 1)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo < 2:
            continue
        a, b = pts[lo], pts[hi]
        best, best_i = -1.0, -1
        for i in range(lo + 1, hi):
            d = _seg_dist2(pts[i], a, b)
            if d > best:
                best, best_i = d, i
        if best > tol2:
            keep[best_i] = True
            stack.append((lo, best_i))
            stack.append((best_i, hi))
    return keep


def simplify_line(pts: list[Point], tol: float) -> list[Point]:
    """Douglas-Peucker keeping both end points.

    Closed lines (first == last, e.g. a whole island as one arc) are split at
    the vertex farthest from the start, so they do not collapse.
    """
    if len(pts) < 3:
        return list(pts)
    if pts[0] == pts[-1]:
        x0, y0 = pts[0]
        far = max(
            range(len(pts)),
            key=lambda i: (pts[i][0] - x0) ** 2 + (pts[i][1] - y0) ** 2,
        )
        if far in (0, len(pts) - 1):
            return [pts[0], pts[-1]]
        first = simplify_line(pts[: far + 1], tol)
        second = simplify_line(pts[far:], tol)
        return first + second[1:]
    keep = _dp_keep(pts, tol)
    return [p for p, k in zip(pts, keep, strict=True) if k]


# --------------------------------------------------------------------------
# Clipping and ring utilities
# --------------------------------------------------------------------------


def clip_ring(ring: Ring, xmin: float, ymin: float, xmax: float, ymax: float) -> Ring:
    """Sutherland-Hodgman clipping of a closed ring against a rectangle."""
    pts = ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else list(ring)
    edges = (
        (lambda p: p[0] >= xmin, lambda a, b: _ix(a, b, xmin)),
        (lambda p: p[0] <= xmax, lambda a, b: _ix(a, b, xmax)),
        (lambda p: p[1] >= ymin, lambda a, b: _iy(a, b, ymin)),
        (lambda p: p[1] <= ymax, lambda a, b: _iy(a, b, ymax)),
    )
    for inside, intersect in edges:
        if not pts:
            break
        out: list[Point] = []
        prev = pts[-1]
        prev_in = inside(prev)
        for cur in pts:
            cur_in = inside(cur)
            if cur_in:
                if not prev_in:
                    out.append(intersect(prev, cur))
                out.append(cur)
            elif prev_in:
                out.append(intersect(prev, cur))
            prev, prev_in = cur, cur_in
        pts = out
    if len(pts) < 3:
        return []
    return [*pts, pts[0]]


def _ix(a: Point, b: Point, x: float) -> Point:
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def _iy(a: Point, b: Point, y: float) -> Point:
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def signed_area(ring: Ring) -> float:
    """Shoelace area; positive = clockwise on screen (y axis points down)."""
    s = 0.0
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        s += x1 * y2 - x2 * y1
    return s / 2.0


def bbox_intersects(ring: Ring, xmin: float, ymin: float, xmax: float, ymax: float) -> bool:
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return max(xs) >= xmin and min(xs) <= xmax and max(ys) >= ymin and min(ys) <= ymax


# --------------------------------------------------------------------------
# SVG path encoding
# --------------------------------------------------------------------------


def _fmt(tenths: int) -> str:
    sign = "-" if tenths < 0 else ""
    whole, frac = divmod(abs(tenths), 10)
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _join(nums: list[str]) -> str:
    out = nums[0]
    for s in nums[1:]:
        out += s if s.startswith("-") else " " + s
    return out


def ring_to_path(ring: Ring) -> str:
    """Encode a closed ring as 'Mx y l dx dy ... z' at 0.1 km precision."""
    q: list[tuple[int, int]] = []
    for x, y in ring[:-1]:
        p = (round(x * 10), round(y * 10))
        if not q or p != q[-1]:
            q.append(p)
    while len(q) > 1 and q[-1] == q[0]:
        q.pop()
    if len(q) < 3:
        return ""
    nums = [_fmt(q[0][0]), _fmt(q[0][1])]
    head = "M" + _join(nums)
    rel: list[str] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(q):
        rel.append(_fmt(x1 - x0))
        rel.append(_fmt(y1 - y0))
    return head + "l" + _join(rel) + "z"


# --------------------------------------------------------------------------
# Main build
# --------------------------------------------------------------------------


def in_select_box(lon: float, lat: float) -> bool:
    lon_min, lat_min, lon_max, lat_max = SELECT_BOX
    return lon_min <= lon <= lon_max and lat_min <= lat <= lat_max


def build(topo: dict, tolerance_km: float = SIMPLIFY_TOLERANCE_KM) -> dict:
    geo_arcs = decode_arcs(topo)
    geoms = topo["objects"]["countries"]["geometries"]

    selected = []
    used_arcs: set[int] = set()
    for g in geoms:
        polys = geometry_polygons(g)
        ids = {arc_index(i) for poly in polys for ring in poly for i in ring}
        if any(in_select_box(lon, lat) for i in ids for lon, lat in geo_arcs[i]):
            selected.append((g, polys))
            used_arcs |= ids

    projected: dict[int, list[Point]] = {
        i: [project(lat, lon) for lon, lat in geo_arcs[i]] for i in sorted(used_arcs)
    }

    def simplified_arcs(tol: float) -> list[list[Point]]:
        out: list[list[Point]] = [[] for _ in geo_arcs]
        for i, pts in projected.items():
            out[i] = simplify_line(pts, tol)
        return out

    simple = simplified_arcs(tolerance_km)
    fine: list[list[Point]] | None = None

    vx, vy, vw, vh = VIEW_BOX
    xmin, ymin = vx - CLIP_MARGIN_KM, vy - CLIP_MARGIN_KM
    xmax, ymax = vx + vw + CLIP_MARGIN_KM, vy + vh + CLIP_MARGIN_KM

    def country_path(polys: list[list[list[int]]], arcs: list[list[Point]], min_area: float) -> str:
        parts: list[str] = []
        for poly in polys:
            for ring_no, refs in enumerate(poly):
                ring = assemble_ring(refs, arcs)
                if len(ring) < 4 or not bbox_intersects(ring, xmin, ymin, xmax, ymax):
                    continue
                ring = clip_ring(ring, xmin, ymin, xmax, ymax)
                if len(ring) < 4:
                    continue
                area = signed_area(ring)
                if abs(area) < min_area:
                    continue
                is_hole = ring_no > 0
                # Outer rings clockwise on screen (positive area), holes CCW.
                if (area > 0) == is_hole:
                    ring = ring[::-1]
                d = ring_to_path(ring)
                if d:
                    parts.append(d)
        return "".join(parts)

    countries = []
    for g, polys in selected:
        name = g["properties"]["name"]
        iso2 = ISO_NUMERIC_TO_ALPHA2.get(g.get("id") or "") or NAME_TO_ALPHA2.get(name)
        d = country_path(polys, simple, MIN_RING_AREA_KM2)
        if not d:
            # Micro-states (Vatican, Monaco, ...) vanish at the normal
            # tolerance; keep them with a finer one if they are in view.
            if fine is None:
                fine = simplified_arcs(FALLBACK_TOLERANCE_KM)
            d = country_path(polys, fine, 0.0)
        if not d:
            continue  # selected, but entirely outside the view box
        countries.append({"iso2": iso2, "name": NAME_OVERRIDES.get(name, name), "d": d})

    countries.sort(key=lambda c: c["name"])
    return {
        "source": SOURCE,
        "projection": PROJECTION,
        "viewBox": list(VIEW_BOX),
        "countries": countries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topojson", type=Path, help="path to world-atlas countries-50m.json")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--tolerance",
        type=float,
        default=SIMPLIFY_TOLERANCE_KM,
        help="Douglas-Peucker tolerance in km (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    topo = json.loads(args.topojson.read_text(encoding="utf-8"))
    asset = build(topo, args.tolerance)
    text = json.dumps(asset, ensure_ascii=False, separators=(",", ":"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n", encoding="utf-8")
    size_kb = len(text.encode("utf-8")) / 1024
    print(
        f"wrote {args.output} ({size_kb:.1f} KiB, {len(asset['countries'])} countries, "
        f"viewBox {asset['viewBox']})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
