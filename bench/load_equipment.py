"""Add the equipment pool to a benchmark database: 100,000 items across the 10,000 units and
1,000,000 reservations, with PostgreSQL COPY.

    .venv/bin/python bench/load_equipment.py --database atlaslink_bench_equipment

(which first runs ``bench/load_registry.py --database atlaslink_bench_equipment --reuse``).

Items: 10 per unit, category drawn from the current categories, placed at the unit's base
within about 20 km, with transportability drawn at random; audiences: 50 % network-wide, 15 %
listed (2 countries and 1 unit), 10 % support office, 5 % matching engine only, 20 % own unit.
Reservations: 10 per item, back to back with gaps from a year ago to a year ahead (3/4 loans,
1/4 maintenance; 1 in 10 inactive, as declined or cancelled loans leave them). The exclusion
constraint is dropped for the load and added again afterwards (which checks every row).

Waits while /tmp/atlaslink-benching exists (another benchmark) and holds it while loading, so
that the load never disturbs another benchmark. Fixed seed: every run builds the same data.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import load_registry
from bench.lock import benchmark_lock

SERVER = "postgresql://postgres@127.0.0.1:5432"
SEED = 20261201
ITEMS_PER_UNIT = 10
RESERVATIONS_PER_ITEM = 10
AUDIENCES = (
    ("network", 50),
    ("listed", 15),
    ("support_office", 10),
    ("matching", 5),
    ("own_unit", 20),
)
ITEM_COLUMNS = (
    "id",
    "unit_id",
    "ref",
    "category_id",
    "model",
    "quantity",
    "serial_numbers",
    "location_name",
    "latitude",
    "longitude",
    "country_iso2",
    "weight_kg",
    "length_cm",
    "width_cm",
    "height_cm",
    "air_transportable",
    "needs_vehicle",
    "operator_training",
    "restrictions",
    "status",
    "notes",
    "audience",
    "created_at",
    "updated_at",
)
RES_COLUMNS = ("item_id", "starts_at", "ends_at", "kind", "active", "note", "created_by")
EXCLUSION = (
    "ALTER TABLE equipment_reservations ADD CONSTRAINT "
    "ex_equipment_reservations_no_overlap EXCLUDE USING gist "
    "(item_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) WHERE (active)"
)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def load(url: str) -> dict[str, Any]:
    rng = random.Random(SEED)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        have = cur.execute("SELECT count(*) FROM equipment_items").fetchone()
        if have and have[0]:
            sys.exit("equipment is loaded already: drop the database or load_registry anew")
        units = cur.execute(
            "SELECT id, country_iso2, latitude, longitude, base_location FROM units ORDER BY id"
        ).fetchall()
        if len(units) < 1000:
            sys.exit(f"only {len(units)} units: run bench/load_registry.py first")
        categories = [
            r[0]
            for r in cur.execute(
                "SELECT id FROM equipment_categories WHERE retired_in IS NULL ORDER BY id"
            )
        ]
        countries = [r[0] for r in cur.execute("SELECT iso2 FROM countries ORDER BY iso2")]
        cur.execute(
            "ALTER TABLE equipment_reservations "
            "DROP CONSTRAINT ex_equipment_reservations_no_overlap"
        )
        started = time.monotonic()
        weights = [w for _, w in AUDIENCES]
        names = [a for a, _ in AUDIENCES]
        item_id = 0
        targets: list[tuple[int, str | None, int | None]] = []
        with cur.copy(f"COPY equipment_items ({', '.join(ITEM_COLUMNS)}) FROM STDIN") as copy:
            for uid, country, lat, lon, base in units:
                for n in range(ITEMS_PER_UNIT):
                    item_id += 1
                    audience = rng.choices(names, weights)[0]
                    if audience == "listed":
                        for c in rng.sample(countries, 2):
                            targets.append((item_id, c, None))
                        targets.append((item_id, None, rng.choice(units)[0]))
                    copy.write_row(
                        (
                            item_id,
                            uid,
                            f"EQ-{n + 1:03d}",
                            rng.choice(categories),
                            f"Model {rng.randint(1, 400)}",
                            rng.choice((1, 1, 1, 2, 4)),
                            "[]",
                            base,
                            (lat or 50.0) + rng.uniform(-0.2, 0.2),
                            (lon or 10.0) + rng.uniform(-0.2, 0.2),
                            country,
                            round(rng.uniform(1, 12000), 1),
                            rng.randint(20, 700),
                            rng.randint(20, 300),
                            rng.randint(10, 300),
                            rng.random() < 0.6,
                            rng.random() < 0.3,
                            "",
                            "",
                            "available" if rng.random() < 0.97 else "repair",
                            "",
                            audience,
                            now,
                            now,
                        )
                    )
        log(f"{item_id} items in {time.monotonic() - started:.1f} s")
        with cur.copy(
            "COPY equipment_share_targets (item_id, country_iso2, unit_id) FROM STDIN"
        ) as copy:
            for row in targets:
                copy.write_row(row)
        log(f"{len(targets)} share targets")
        done = 0
        with cur.copy(f"COPY equipment_reservations ({', '.join(RES_COLUMNS)}) FROM STDIN") as copy:
            for iid in range(1, item_id + 1):
                t = now - timedelta(days=365) + timedelta(hours=rng.randint(0, 24 * 20))
                for _ in range(RESERVATIONS_PER_ITEM):
                    length = timedelta(hours=rng.randint(12, 24 * 14))
                    kind = "loan" if rng.random() < 0.75 else "maintenance"
                    copy.write_row((iid, t, t + length, kind, rng.random() >= 0.1, "", "bench"))
                    t = t + length + timedelta(hours=rng.randint(24, 24 * 60))
                    done += 1
                if iid % 20000 == 0:
                    log(f"  reservations for {iid} items")
        log(f"{done} reservations in {time.monotonic() - started:.1f} s")
        cur.execute("SELECT setval('equipment_items_id_seq', %s)", (item_id,))
        conn.commit()
        log("adding the exclusion constraint again (checks every row)")
        cur.execute(EXCLUSION)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    log(f"loaded and analysed in {time.monotonic() - started:.1f} s")
    return {"items": item_id, "reservations": done, "targets": len(targets)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="atlaslink_bench_equipment")
    parser.add_argument("--wait-minutes", type=float, default=60)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database):
        parser.error("--database must be a plain lower-case PostgreSQL identifier")
    with benchmark_lock("load_equipment.py", 900, args.wait_minutes):
        # The 10,000 units first (kept if already there), in the same lock.
        load_registry.main(["--database", args.database, "--reuse"])
        counts = load(f"{SERVER}/{args.database}")
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
