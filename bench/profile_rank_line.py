"""Where the time of ranking one request line goes, in process (issue 3).

    .venv/bin/python bench/profile_rank_line.py [--lines 120] [--database atlaslink_bench_ops]

Builds the scenario of bench/bench_rank_line.py (rolled back at the end), warms the caches,
then ranks every line under cProfile and prints the functions with the most cumulative and own
time, and the number of SQL statements per ranking. Not a benchmark (cProfile slows Python
code several times): it says where to look, bench/bench_rank_line.py says how fast it is.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from atlaslink.db import make_engine
from atlaslink.operations import matching

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_rank_line import DB_NAME, SEED, SERVER, Scenario


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default=DB_NAME)
    p.add_argument("--lines", type=int, default=120)
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    engine = make_engine(f"{SERVER}/{args.database}")
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement.split(None, 1)[0])

    with Session(engine) as session:
        scenario = Scenario(session, args.lines, random.Random(SEED))

        def rank_all() -> list[float]:
            times = []
            for req, line in scenario.lines:
                t0 = time.perf_counter()
                matching.rank_line(session, scenario.viewer(req), req, line, now=datetime.now(UTC))
                times.append((time.perf_counter() - t0) * 1000)
            return times

        rank_all()  # warm-up: columns, caches, prepared statements
        gc.collect()
        gc.freeze()
        statements.clear()
        plain = rank_all()
        print(
            f"without the profiler: median {statistics.median(plain):.1f} ms, "
            f"{len(statements) / len(scenario.lines):.1f} statements per ranking"
        )
        profiler = cProfile.Profile()
        profiler.enable()
        rank_all()
        profiler.disable()
        session.rollback()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
