"""What one read-audit event costs at the end of a request, in process, on PostgreSQL.

    .venv/bin/python bench/profile_read_event.py [--database atlaslink_bench] [--n 300]

Medians over --n transactions, each on a fresh session from the pool, each first running one
read (``SELECT 1``) as a request would: a read-only transaction (the baseline), the same plus a
read event of three units appended by ``audit.flush_reads`` and committed as the middleware does,
waiting for the WAL flush (the default), and without waiting (``synchronous_commit`` off for the
transaction, ``ATLASLINK_READ_EVENTS_WAIT_FOR_FLUSH=false``). The events are committed: they
stay in the benchmark database's chain, like the benchmark's own.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from atlaslink.app import _commit_read_only_without_flush
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

    def ledger() -> ReadLedger:
        out = ReadLedger(actor=reader)
        for unit in (11, 22, 33):
            out.note("unit", unit, unit, ["contacts", "level"])
        return out

    def read_only() -> None:
        with Session(engine) as db:
            db.execute(text("SELECT 1"))
            db.commit()

    def with_event(wait: bool) -> Callable[[], None]:
        def run() -> None:
            with Session(engine) as db:
                db.execute(text("SELECT 1"))
                if not wait:
                    _commit_read_only_without_flush(db)
                flush_reads(db, ledger())
                db.commit()

        return run

    with engine.connect() as conn:
        print("autovacuum:", conn.execute(text("SHOW autovacuum")).scalar_one())
    for _ in range(2):  # the second pass is the one to quote (pool and statements warm)
        base = median_ms(read_only, args.n)
        wait = median_ms(with_event(True), args.n)
        nowait = median_ms(with_event(False), args.n)
        print(
            f"read-only {base:.2f} ms | + read event, waiting for the flush {wait:.2f} ms"
            f" | without waiting {nowait:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
