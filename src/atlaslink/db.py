"""Engine and sessions. One request, CLI command or job is one transaction; services only flush.

SQLite is the embedded default: every transaction starts with ``BEGIN IMMEDIATE`` so that
transactions serialise cleanly across threads and processes (the audit chain relies on it).
PostgreSQL is the production database and runs transactions concurrently.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, Engine, Integer, any_, bindparam, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.config import get_settings

# SQLSTATEs of a transaction PostgreSQL aborted because another one ran at the same time
# (deadlock detected, serialization failure): nothing of it was kept, and trying again may work.
_CONCURRENCY_FAILURES = frozenset({"40P01", "40001"})


def is_concurrency_failure(exc: BaseException) -> bool:
    """Whether the database aborted this transaction for colliding with another one: a
    SQLAlchemy error wrapping the driver's (``orig``), the driver's own, or either as the
    cause of another exception."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        for candidate in (seen, getattr(seen, "orig", None)):
            if getattr(candidate, "sqlstate", None) in _CONCURRENCY_FAILURES:
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_after_sent_end)
    event.listen(engine, "checkin", _discard_if_end_unfinished)
    return engine


# In a connection's info while its transaction's end is in flight (audit.service.send_end).
END_SENT = "atlaslink.end_sent"


def _refuse_after_sent_end(conn: Any, *_: Any) -> None:
    """A statement on a connection whose transaction's end is in flight (audit.send_end) would
    run after that COMMIT, outside the request's transaction: refuse it."""
    if conn.info.get(END_SENT):
        raise RuntimeError("a statement after the request's end was sent (audit.send_end)")


def _discard_if_end_unfinished(dbapi_conn: Any, record: Any) -> None:
    """A connection whose sent end was never waited for (a cancelled request) is still in
    pipeline mode: it does not go back into the pool as it is, but is closed (and opened
    anew when next needed)."""
    unfinished = record.info.pop(END_SENT, None)
    if dbapi_conn is None:
        return
    if unfinished or dbapi_conn.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF:
        record.invalidate()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        try:
            cur.execute("SELECT sqrt(1), asin(0), sin(0), cos(0), radians(0), power(2, 2)")
        except sqlite3.OperationalError:
            _add_math_functions(dbapi_conn)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _add_math_functions(dbapi_conn: Any) -> None:
    """The math functions PostgreSQL has and SQLite only has when compiled with them (used by
    operations.matching for distances), from Python's math module under the same names."""

    def lift(f: Callable[..., float]) -> Callable[..., float | None]:
        def g(*args: float | None) -> float | None:
            if any(a is None for a in args):
                return None
            try:
                return f(*(float(a) for a in args if a is not None))
            except ValueError:  # outside the domain: NULL, as SQLite's own functions return
                return None

        return g

    for name, f, n in (
        ("sqrt", math.sqrt, 1),
        ("asin", math.asin, 1),
        ("sin", math.sin, 1),
        ("cos", math.cos, 1),
        ("radians", math.radians, 1),
        ("power", math.pow, 2),
    ):
        dbapi_conn.create_function(name, n, lift(f), deterministic=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def id_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``), which keeps the SQL
    text constant, so the driver's query cache and prepared statements apply."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))  # type: ignore[no-any-return]
    return column.in_(list(ids))  # type: ignore[no-any-return]


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction for a CLI command or job: commit on success, roll back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
