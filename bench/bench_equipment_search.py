"""Benchmark: equipment availability search through the API vs the bare indexed query.

    .venv/bin/python bench/load_equipment.py          # once: 10,000 units, 100,000 items,
                                                      # 1,000,000 reservations
    .venv/bin/python bench/bench_equipment_search.py  # 200 searches x 5 rounds

Target: ``GET /api/v1/equipment?category=…&available_from=…&available_to=…&latitude=…&
longitude=…&max_km=…`` p95 <= 100 ms, through a real uvicorn server (1 worker, the settings
of ``atlaslink serve``, background job off) over HTTP with keep-alive, as the benchmark duty
officer (token auth, sharing, distance and ETA, count and page of 50, JSON, read audit). The
baseline, measured in the same run, is the bare indexed query in the benchmark process: the
same category, latitude/longitude box and "no active reservation overlaps" condition, 50
ids, no sharing, no exact distance, no count, no ORM, no HTTP.

Each search draws a category, a named place, a window starting 0-60 days ahead lasting 1-14
days, a radius of 300/500/800/1200 km, and "air-transportable only" half of the time. Rounds
interleave: every search runs both variants back to back, in an order that alternates. The
statistics are per round; the figures printed are the medians over rounds. Results go to
bench/results/equipment_search-<time>.json (git-ignored).

Only one benchmark runs at a time on this machine: waits while /tmp/atlaslink-benching exists,
then holds it. Traffic goes to 127.0.0.1 only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lock import benchmark_lock

SERVER = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "atlaslink_bench_equipment"
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20261202
RADII = (300.0, 500.0, 800.0, 1200.0)

BASELINE_SQL = """
SELECT i.id FROM equipment_items i
WHERE i.category_id = %(category_id)s
  AND i.latitude BETWEEN %(lat0)s AND %(lat1)s
  AND i.longitude BETWEEN %(lon0)s AND %(lon1)s
  AND NOT EXISTS (
    SELECT 1 FROM equipment_reservations r
    WHERE r.item_id = i.id AND r.active AND r.starts_at < %(end)s AND r.ends_at > %(start)s)
ORDER BY i.id LIMIT 50
"""


def machine(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    row = conn.execute("SHOW server_version").fetchone()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model[1] if model else "unknown",
        "ram_gib": round(int(mem[1]) / 1024 / 1024, 1) if mem else None,
        "python": platform.python_version(),
        "postgresql": row[0] if row else None,
        "kernel": platform.release(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(url: str, log_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ATLASLINK_DATABASE_URL": url,
        "ATLASLINK_RUN_JOBS_IN_SERVER": "false",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "atlaslink.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise RuntimeError(f"server did not start; see {log_path}")
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def box(lat: float, lon: float, km: float) -> dict[str, float]:
    dlat = km / 111.0
    edge = min(89.0, abs(lat) + dlat)
    dlon = km / (111.0 * math.cos(math.radians(edge)))
    return {"lat0": lat - dlat, "lat1": lat + dlat, "lon0": lon - dlon, "lon1": lon + dlon}


def searches(n: int, categories: dict[str, int], places: list[dict[str, Any]]) -> list[Any]:
    rng = random.Random(SEED)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for _ in range(n):
        code = rng.choice(sorted(categories))
        place = rng.choice(places)
        start = today + timedelta(days=rng.randint(0, 60), hours=rng.choice((0, 8, 12)))
        end = start + timedelta(days=rng.randint(1, 14))
        km = rng.choice(RADII)
        params: dict[str, Any] = {
            "category": code,
            "available_from": start.isoformat().replace("+00:00", "Z"),
            "available_to": end.isoformat().replace("+00:00", "Z"),
            "latitude": place["latitude"],
            "longitude": place["longitude"],
            "max_km": km,
            "per_page": 50,
        }
        if rng.random() < 0.5:
            params["air_transportable"] = "true"
        sql = {
            "category_id": categories[code],
            "start": start,
            "end": end,
            **box(place["latitude"], place["longitude"], km),
        }
        out.append((params, sql))
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--wait-minutes", type=float, default=60)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", args.database):
        parser.error("--database must be a plain lower-case PostgreSQL identifier")
    url = f"{SERVER}/{args.database}"
    tokens = json.loads((RESULTS / f"tokens-{args.database}.json").read_text())
    token = tokens["users"]["bench.duty"]["token"]
    RESULTS.mkdir(exist_ok=True)
    with benchmark_lock("bench_equipment_search.py", 900, args.wait_minutes):
        with psycopg.connect(url, autocommit=True) as conn:
            info = machine(conn)
            counts = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in ("units", "equipment_items", "equipment_reservations")
            }
            categories = dict(conn.execute("SELECT code, id FROM equipment_categories").fetchall())
        with server(url, RESULTS / "equipment_search-server.log") as base:
            http = httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            places = http.get("/api/v1/equipment/places").json()
            work = searches(args.queries, categories, places)
            with psycopg.connect(url, autocommit=True) as conn:
                # Warm-up: one pass of each, not measured.
                for params, sql in work[:20]:
                    http.get("/api/v1/equipment", params=params).raise_for_status()
                    conn.execute(BASELINE_SQL, sql, prepare=True).fetchall()
                rounds = []
                found = []
                for rnd in range(args.rounds):
                    api_ms: list[float] = []
                    base_ms: list[float] = []
                    for n, (params, sql) in enumerate(work):
                        order = ("api", "base") if (n + rnd) % 2 == 0 else ("base", "api")
                        for variant in order:
                            t0 = time.perf_counter()
                            if variant == "api":
                                r = http.get("/api/v1/equipment", params=params)
                                r.raise_for_status()
                                api_ms.append((time.perf_counter() - t0) * 1000)
                                if rnd == 0:
                                    found.append(r.json()["total"])
                            else:
                                conn.execute(BASELINE_SQL, sql, prepare=True).fetchall()
                                base_ms.append((time.perf_counter() - t0) * 1000)
                    rounds.append(
                        {
                            "api_p50": statistics.median(api_ms),
                            "api_p95": pct(api_ms, 95),
                            "base_p50": statistics.median(base_ms),
                            "base_p95": pct(base_ms, 95),
                            "load": float(Path("/proc/loadavg").read_text().split()[0]),
                        }
                    )
                    print(f"# round {rnd + 1}: {json.dumps(rounds[-1])}", file=sys.stderr)
            http.close()
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    result = {
        "machine": info,
        "counts": counts,
        "queries": args.queries,
        "rounds": rounds,
        "median_of_rounds": med,
        "ratio_p95": med["api_p95"] / med["base_p95"],
        "ratio_p50": med["api_p50"] / med["base_p50"],
        "results_per_search_median": statistics.median(found) if found else None,
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"equipment_search-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"| variant | p50 ms | p95 ms |\n|---|---|---|\n"
        f"| API search | {med['api_p50']:.1f} | {med['api_p95']:.1f} |\n"
        f"| bare indexed query | {med['base_p50']:.1f} | {med['base_p95']:.1f} |\n"
        f"| ratio | {result['ratio_p50']:.1f}x | {result['ratio_p95']:.1f}x |\n"
    )
    print(json.dumps({"machine": info, "counts": counts}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
