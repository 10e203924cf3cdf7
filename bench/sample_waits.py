"""Where the benchmark database's backends spend a running benchmark's time, by sampling.

    .venv/bin/python bench/sample_waits.py [--database atlaslink_bench] [--seconds 15]

Run it while ``bench/bench_list_units.py`` (or wrk against a server on the benchmark database)
is under load. Every 5 ms it reads ``pg_stat_activity`` for the database's client backends and
counts each (state, wait event, statement) seen; it prints, per kind, how many backends were in
it on average. By Little's law, that average divided by the run's requests per second is the
time each request spent there: e.g. 0.2 backends in ``IO/WALSync`` at 320 req/s is 0.6 ms of
every request waiting for the WAL flush. ``idle in transaction`` is time the application held a
transaction open between statements (its own Python work).
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Sequence

import psycopg

SERVER = "postgresql://postgres@127.0.0.1:5432"

_QUERY = """
SELECT state, coalesce(wait_event_type, '-'), coalesce(wait_event, '-'),
       CASE WHEN state = 'active' THEN left(regexp_replace(query, '\\s+', ' ', 'g'), 40) END
  FROM pg_stat_activity
 WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
   AND state <> 'idle'
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default="atlaslink_bench")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--interval", type=float, default=0.005)
    args = p.parse_args(argv)
    seen: collections.Counter[tuple[str, ...]] = collections.Counter()
    samples = 0
    with psycopg.connect(f"{SERVER}/{args.database}", autocommit=True) as conn:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            for row in conn.execute(_QUERY, (args.database,)):
                seen[tuple(str(v or "") for v in row)] += 1
            samples += 1
            time.sleep(args.interval)
    print(f"{samples} samples over {args.seconds:.0f} s; backends on average, by what they did:")
    for (state, kind, event, query), n in seen.most_common(15):
        print(f"  {n / samples:6.3f}  {state:<20} {kind}/{event:<14} {query}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
