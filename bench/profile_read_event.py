"""What one read-audit event costs at the end of a request, in process, on PostgreSQL.

    .venv/bin/python bench/profile_read_event.py [--database atlaslink_bench] [--n 300]

Medians over --n transactions, each on a fresh session from the pool, each first running one
read (``SELECT 1``) as a request would: a read-only transaction (the baseline); the same plus a
read event of three units appended by ``audit.flush_reads`` and committed by the session (two
round trips, as before session 6); ended as the middleware ends it (``app._finish``: the append
and the durable COMMIT in one round trip, the default); and the same without waiting for the
WAL flush (``ATLASLINK_READ_EVENTS_WAIT_FOR_FLUSH=false``). One client: this is the cost per
event, not the queue on the head that concurrent requests form. The events are committed: they
stay in the benchmark database's chain, like the benchmark's own.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from atlaslink.app import _finish
from atlaslink.audit.service import ReadLedger, flush_reads
from atlaslink.auth.principal import Principal
from atlaslink.db import make_engine

SERVER = "postgresql://postgres@127.0.0.1:5432"


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default="atlaslink_bench")
    p.add_argument("--n", type=int, default=300)
    args = p.parse_args(argv)
    engine = make_engine(f"{SERVER}/{args.database}")
    with engine.connect() as conn:
        # A real account as the actor, as a request has (its id goes into actor_user_id).
        user_id, username = conn.execute(
            text("SELECT id, username FROM users ORDER BY id LIMIT 1")
        ).one()
    reader = Principal(kind="user", label=username, user_id=user_id)

    def ledger(wait: bool = True) -> ReadLedger:
        out = ReadLedger(actor=reader, wait_for_flush=wait)
        for unit in (11, 22, 33):
            out.note("unit", unit, unit, ["contacts", "level"])
        return out

    def read_only() -> None:
        with Session(engine) as db:
            db.execute(text("SELECT 1"))
            db.commit()

    def flush_under_the_head() -> None:
        # Before session 6: the append, then the session's commit (two round trips).
        with Session(engine) as db:
            db.execute(text("SELECT 1"))
            flush_reads(db, ledger())
            db.commit()

    def finish(wait: bool) -> Callable[[], None]:
        # As the middleware ends a request (app._finish): one round trip, waiting for the flush
        # (the default) or not.
        def run() -> None:
            db = Session(engine)
            db.execute(text("SELECT 1"))
            _finish(db, ledger(wait), True)

        return run

    with engine.connect() as conn:
        print("autovacuum:", conn.execute(text("SHOW autovacuum")).scalar_one())
    for _ in range(2):  # the second pass is the one to quote (pool and statements warm)
        base = median_ms(read_only, args.n)
        locked = median_ms(flush_under_the_head, args.n)
        freed = median_ms(finish(True), args.n)
        nowait = median_ms(finish(False), args.n)
        print(
            f"read-only {base:.2f} ms | + read event: append, then commit {locked:.2f} ms"
            f" | append and commit in one round trip (default) {freed:.2f} ms"
            f" | the same, flush not waited for {nowait:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
