"""Group commit of read events, one writer per server process (PostgreSQL).

A listing that shows a viewer something beyond network-wide may only answer once its read
event is durable in the chain (ADR 0002). Committed one by one, every such request is a write
transaction waiting for its own WAL flush, which was most of the cost of sharing (issue 2).
Instead, a request whose own transaction wrote nothing hands its read event to this process's
:class:`ReadBatcher` and waits: the batcher appends every event waiting at that moment in one
transaction (one head lock, hashes in order, one multi-row INSERT) and one commit, then lets
every waiter go on. If that transaction fails, every waiter fails (:class:`ReadNotRecorded`)
and its response discloses nothing.

One batch is written at a time, in a thread of its own (the database calls are blocking), so
the events of one process enter the chain in the order they were handed over, and events that
arrive while a batch commits form the next one. A request that wrote something keeps its read
event in its own transaction (``service.flush_reads``), as on SQLite, where writers serialise.

Off unless ``settings.read_events_in_groups``: on the 2-core benchmark machine it was slower
than one event per transaction (BENCHMARKS.md, issue 2).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from atlaslink.audit.service import append_events
from atlaslink.models import AuditEvent, utcnow

log = logging.getLogger("atlaslink")


class ReadNotRecorded(Exception):
    """The batch holding this request's read event was not committed."""


class ReadBatcher:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._waiting: list[tuple[AuditEvent, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None
        self._in_batch = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-reads")

    @property
    def waiting(self) -> int:
        """Requests waiting for their read event: in the batch being written or the next."""
        return self._in_batch + len(self._waiting)

    async def record(self, event: AuditEvent) -> None:
        """Return once ``event`` is committed in the chain; raise :class:`ReadNotRecorded` if
        its batch failed."""
        loop = asyncio.get_running_loop()
        # Stamped on the event loop, in the order of the queue: within a process, times rise
        # with the sequence numbers.
        event.occurred_at = utcnow()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((event, done))
        if self._writing is None:
            self._writing = loop.create_task(self._write_while_waiting())
        await done

    async def _write_while_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self._in_batch = len(batch)
                try:
                    await loop.run_in_executor(self._thread, self._write, [e for e, _ in batch])
                except Exception as exc:
                    log.exception("read events not recorded (%d requests fail)", len(batch))
                    for _, done in batch:
                        if not done.done():  # its request may have been cancelled
                            done.set_exception(ReadNotRecorded(str(exc)))
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writing = None
            self._in_batch = 0

    def _write(self, events: list[AuditEvent]) -> None:
        with self._sessions() as session:
            append_events(session.connection(), events)
            session.commit()
