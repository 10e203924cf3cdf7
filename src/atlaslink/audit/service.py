"""Appending to and verifying the hash-chained audit log.

Each event's hash covers its content and the previous event's hash, so altering, removing or
reordering any entry breaks the chain from that point. The single ``audit_head`` row is locked
while appending, which keeps the chain linear under concurrent transactions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import select as io_select
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy import JSON, Dialect, Engine, bindparam, insert, null, select, text, update
from sqlalchemy.orm import Session

from atlaslink.auth.principal import Principal
from atlaslink.db import END_SENT
from atlaslink.models import AuditEvent, AuditHead, utcnow
from atlaslink.models.base import UTCDateTime

GENESIS = "0" * 64

request_id_var: ContextVar[str | None] = ContextVar("atlaslink_request_id", default=None)


def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def canonical_json(event: AuditEvent) -> str:
    """The text an event's hash is taken of: its content and link, as canonical JSON."""
    body = {
        "seq": event.seq,
        "occurred_at": _canonical_time(event.occurred_at),
        "actor_user_id": event.actor_user_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "unit_id": event.unit_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def compute_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical_json(event).encode()).hexdigest()


def jsonable(value: Any) -> Any:
    """Snapshots must survive a JSON round trip unchanged, or the hash would not verify."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def append(
    session: Session,
    actor: Principal,
    action: str,
    object_type: str,
    object_id: str | int,
    *,
    unit_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    # populate_existing: the head may have moved on since this session last loaded it
    # (_append_row below writes it without the ORM).
    head = session.execute(
        select(AuditHead)
        .where(AuditHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    event = AuditEvent(
        seq=head.seq + 1,
        occurred_at=utcnow(),
        actor_user_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        unit_id=unit_id,
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        request_id=request_id_var.get(),
        prev_hash=head.hash,
    )
    event.hash = compute_hash(event)
    session.add(event)
    head.seq = event.seq
    head.prev_hash = head.hash
    head.hash = event.hash
    session.flush()
    return event


# Executed on the session's connection: plain SQL, no ORM bookkeeping.
_TAKE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq + 1)
    .returning(AuditHead.seq, AuditHead.hash)
)
_SEAL_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(prev_hash=bindparam("prev"), hash=bindparam("h"))
)
# PostgreSQL: the whole append in one statement, so the head is held for one round trip and
# the commit. The UPDATE locks the head and computes the new entry's hash from the old tip (SET
# expressions see the row before the update) and the canonical JSON of the entry, which Python
# renders around the two values only the database knows (prev_hash, seq); RETURNING gives the
# new sequence number and hash and the old tip, and the INSERT files the entry.
_PG_APPEND = text(
    """
    WITH moved AS (
        UPDATE audit_head
           SET prev_hash = hash,
               seq = seq + 1,
               hash = encode(sha256(convert_to(
                   :before_prev || hash || :before_seq || (seq + 1)::text || :after_seq,
                   'UTF8')), 'hex')
         WHERE id = 1
     RETURNING seq, hash, prev_hash
    )
    INSERT INTO audit_events (seq, occurred_at, actor_user_id, actor_label, action,
                              object_type, object_id, unit_id, before, after, request_id,
                              prev_hash, hash)
    SELECT seq, :occurred_at, :actor_user_id, :actor_label, :action, :object_type,
           :object_id, :unit_id, NULL, :after, :request_id, prev_hash, hash
      FROM moved
    """
).bindparams(
    bindparam("occurred_at", type_=UTCDateTime()),
    bindparam("after", type_=JSON()),
)
_PREV, _SEQ = "@@prev-hash@@", "@@seq@@"
# What a read event stores as given (no "before"; the chain columns come from the head).
_READ_EVENT_FIELDS = (
    "occurred_at",
    "actor_user_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "unit_id",
    "after",
    "request_id",
)


def _pg_append_params(event: AuditEvent) -> dict[str, Any] | None:
    """The parameters of :data:`_PG_APPEND` for ``event``: compute_hash's text cut where the tip
    and the sequence number go; ``None`` if the content itself holds a marker."""
    event.seq, event.prev_hash = _SEQ, _PREV  # type: ignore[assignment]
    canonical = canonical_json(event)
    before_prev, rest = canonical.split(_PREV) if canonical.count(_PREV) == 1 else ("", "")
    if rest.count(f'"{_SEQ}"') != 1:
        return None
    before_seq, after_seq = rest.split(f'"{_SEQ}"')
    params = {f: getattr(event, f) for f in _READ_EVENT_FIELDS}
    return params | {"before_prev": before_prev, "before_seq": before_seq, "after_seq": after_seq}


def _append_row(session: Session, event: AuditEvent) -> None:
    """:func:`append` without the ORM's unit of work, for the read event most requests end
    with (from :func:`take_read_event`): the same chain and lock, held for as short a time as
    possible."""
    conn = session.connection()
    if conn.dialect.name == "postgresql" and (params := _pg_append_params(event)) is not None:
        conn.execute(_PG_APPEND, params)
        return
    # Elsewhere (SQLite serialises writers anyway), or if the content held a marker: three
    # statements. Taking the head with an UPDATE locks it and returns the new sequence number
    # and the previous entry's hash in one round trip.
    seq, prev_hash = conn.execute(_TAKE_HEAD).one()
    event.seq, event.prev_hash = seq, prev_hash
    event.hash = compute_hash(event)
    conn.execute(insert(AuditEvent).values(_columns(event)))
    conn.execute(_SEAL_HEAD, {"prev": prev_hash, "h": event.hash})


# --- the end of a request: its read event and its commit -----------------------------------


# synchronous_commit off for this transaction only, if it has written nothing (no transaction
# id yet): only with ATLASLINK_READ_EVENTS_WAIT_FOR_FLUSH=false (ADR 0002).
_ASYNC_IF_READ_ONLY = (
    "SELECT set_config('synchronous_commit', 'off', true) "
    "WHERE pg_current_xact_id_if_assigned() IS NULL"
)


@functools.cache
def _pg_append_pyformat(dialect: Dialect) -> str:
    """:data:`_PG_APPEND` in the driver's own parameter style (``%(name)s``)."""
    return str(_PG_APPEND.compile(dialect=dialect))


def commit_with_reads(session: Session, ledger: ReadLedger) -> None:
    """Append the ledger's read event, if any, and commit the session's transaction.

    On PostgreSQL (a session on an engine, outside any savepoint) the append and the COMMIT go
    in one round trip (:func:`_send_end`). The commit waits for the WAL flush, so the read is
    durable before the response starts; unless the ledger's ``wait_for_flush``, a transaction
    that wrote nothing else commits without waiting (ADR 0002). A failure is a failed commit:
    nothing of the transaction is kept. If :func:`send_end` sent the end already, this waits
    for it."""
    if ledger.sent is not None:
        ledger.sent.wait()
        return
    event = take_read_event(ledger)
    if event is None:
        session.commit()
        return
    session.flush()
    postgres = session.get_bind().dialect.name == "postgresql"
    params = _pg_append_params(event) if _may_commit_itself(session) else None
    if params is None:  # SQLite, a session inside a larger transaction, or a marker
        if postgres and not ledger.wait_for_flush:
            session.execute(text(_ASYNC_IF_READ_ONLY))
        _append_row(session, event)
        session.commit()
        return
    with _send_end(session, params, ledger.wait_for_flush):
        pass  # leaving the block: the Sync, then every result
    session.commit()  # the session's bookkeeping: the server is idle, psycopg sends nothing


def send_end(session: Session) -> None:
    """Send the current request's end now, before its response is built: the read event's
    append and the COMMIT go to the server, and the unit of work (``app.UnitOfWork``) waits for
    their results before the response starts, so the read is still durable before anything is
    shown. Meanwhile the request builds its response, and the server's WAL flush no longer
    adds to the request's time.

    For an endpoint's last use of ``session``: after it, the ledger takes no more reads and the
    session runs no more statements (both raise). Where the end cannot be sent ahead (SQLite,
    a session inside a larger transaction, nothing to record, outside a request), this does
    nothing and the end comes at the response as always."""
    ledger = current_ledger()
    if ledger is None or ledger.sent is not None or not _may_commit_itself(session):
        return
    event = take_read_event(ledger, empty=False)
    params = _pg_append_params(event) if event is not None else None
    if params is None:  # nothing to record, or the content held a marker (commit_with_reads)
        return
    ledger.clear()
    session.flush()
    try:
        ledger.sent = SentEnd(session, _send_end(session, params, ledger.wait_for_flush))
    except psycopg.Error as exc:  # the server's answer came back already: the append failed
        ledger.sent = SentEnd(session, None, failure=exc)  # raised by wait(), at the response


class SentEnd:
    """A transaction's end in flight (:func:`send_end`): the append and the COMMIT sent in
    pipeline mode, the Sync and the results not yet."""

    def __init__(
        self, session: Session, pipeline: ExitStack | None, failure: psycopg.Error | None = None
    ) -> None:
        self._session = session
        self._pipeline = pipeline
        self._failure = failure
        self._conn_info = session.connection().info
        if pipeline is not None:
            self._conn_info[END_SENT] = True

    def wait(self) -> None:
        """The Sync and every result: raises the append's or the commit's error, if any (also
        one that came back while they were being sent)."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        try:
            pipeline.close()
        finally:
            self._conn_info.pop(END_SENT, None)  # before the commit gives the connection back
        s = self._session
        if s.new or s.dirty or s.deleted:  # it would be flushed now, after the request's end
            raise RuntimeError("a change made after the request's end was sent (send_end)")
        s.commit()  # bookkeeping only: the server is idle, psycopg sends nothing

    @property
    def pending(self) -> bool:
        return self._pipeline is not None


def _send_end(session: Session, params: dict[str, Any], wait_for_flush: bool) -> ExitStack:
    """Send the read event's append and the COMMIT on the session's connection without waiting
    for them; the returned stack, closed, sends the Sync and reads every result.

    psycopg's pipeline mode: the append as a prepared statement (bound on the server, planned
    once per connection), then COMMIT, then one Sync: one round trip. The chain's head is held
    from the append to the end of the commit and not a moment longer: no Python and no second
    round trip in between; if the append fails the server skips the COMMIT."""
    conn = session.connection()
    params["after"] = Json(params["after"])
    raw = conn.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    with ExitStack() as stack:
        stack.enter_context(raw.pipeline())
        cur = stack.enter_context(raw.cursor())
        if not wait_for_flush:
            cur.execute(_ASYNC_IF_READ_ONLY)
        cur.execute(_pg_append_pyformat(conn.dialect), params, prepare=True)
        cur.execute("COMMIT")  # in pipeline mode execute sends and does not wait for results
        _drain(raw.pgconn)
        sent = stack.pop_all()  # an error above instead leaves the pipeline here, as usual
    return sent


def _drain(pgconn: psycopg.pq.abc.PGconn) -> None:
    """Whatever libpq still buffers of the sent messages goes out now (psycopg leaves it there
    when the socket's buffer is full: a large event), so that the COMMIT follows the append on
    the server at once and the chain's head is not held while the page is built."""
    if not pgconn.flush():
        return  # the usual case: all sent
    poller = io_select.poll()
    poller.register(pgconn.socket, io_select.POLLOUT)
    while pgconn.flush():
        poller.poll(1000)


def _may_commit_itself(session: Session) -> bool:
    """Whether this session's transaction is the connection's whole transaction on PostgreSQL:
    bound to an engine (not to an embedder's connection) and outside any savepoint, so that a
    COMMIT sent on it ends this session's work and nothing more."""
    bind = session.get_bind()
    return (
        isinstance(bind, Engine)
        and bind.dialect.name == "postgresql"
        and not session.connection().in_nested_transaction()
    )


# --- reads of data not visible network-wide -------------------------------------------------


@dataclass
class ReadLedger:
    """What one request (or CLI command) returned beyond network-wide data."""

    actor: Principal | None = None
    objects: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    units: set[int] = field(default_factory=set)
    # ATLASLINK_READ_EVENTS_WAIT_FOR_FLUSH, as the unit of work was told (ADR 0002)
    wait_for_flush: bool = True
    # The request's end, if send_end sent it ahead of the response
    sent: SentEnd | None = None

    def note(self, object_type: str, object_id: str | int, unit_id: int, groups: list[str]) -> None:
        if groups:
            if self.sent is not None:
                raise RuntimeError("a read noted after the request's record was sent")
            self.objects.setdefault((object_type, str(object_id)), set()).update(groups)
            self.units.add(unit_id)

    def clear(self) -> None:
        self.objects.clear()
        self.units.clear()


_ledger_var: ContextVar[ReadLedger | None] = ContextVar("atlaslink_read_ledger", default=None)


@contextmanager
def read_ledger() -> Iterator[ReadLedger]:
    ledger = ReadLedger()
    token = _ledger_var.set(ledger)
    try:
        yield ledger
    finally:
        _ledger_var.reset(token)


def current_ledger() -> ReadLedger | None:
    return _ledger_var.get()


def note_read(object_type: str, object_id: str | int, unit_id: int, groups: list[str]) -> None:
    ledger = _ledger_var.get()
    if ledger is not None:
        ledger.note(object_type, object_id, unit_id, groups)


def flush_reads(session: Session, ledger: ReadLedger, action: str = "read") -> None:
    """Append one event naming who read which objects, if anything beyond network-wide was read."""
    event = take_read_event(ledger, action)
    if event is None:
        return
    # Written in the open transaction before it commits; the ORM is not needed for it.
    session.flush()
    _append_row(session, event)


def take_read_event(
    ledger: ReadLedger, action: str = "read", *, empty: bool = True
) -> AuditEvent | None:
    """The event :func:`flush_reads` appends, not yet in the chain (no sequence number, link or
    hash); the ledger is emptied unless not ``empty``."""
    if not ledger.objects or ledger.actor is None:
        return None
    objects = [
        {"type": t, "id": i, "groups": sorted(g)} for (t, i), g in sorted(ledger.objects.items())
    ]
    unit_ids = sorted(ledger.units)
    if empty:
        ledger.clear()
    return AuditEvent(
        occurred_at=utcnow(),
        actor_user_id=ledger.actor.user_id,
        actor_label=ledger.actor.label,
        action=action,
        object_type="disclosure",
        object_id=",".join(f"{o['type']}:{o['id']}" for o in objects[:20]),
        unit_id=unit_ids[0] if len(unit_ids) == 1 else None,
        before=None,
        after=jsonable({"objects": objects, "units": unit_ids}),
        request_id=request_id_var.get(),
    )


def _columns(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "actor_user_id": event.actor_user_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "unit_id": event.unit_id,
        # SQL NULL, as the other appends store an absent snapshot (not JSON null).
        "before": null() if event.before is None else event.before,
        "after": null() if event.after is None else event.after,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def verify(
    session: Session, progress: Callable[[int], None] | None = None, batch: int = 2000
) -> VerifyResult:
    """Walk the chain in order; report the first entry that does not fit."""
    expected_prev = GENESIS
    expected_seq = 1
    checked = 0
    last_id = -1
    while True:
        rows = (
            session.execute(
                select(AuditEvent)
                .where(AuditEvent.id > last_id)
                .order_by(AuditEvent.id)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for ev in rows:
            if ev.seq != expected_seq:
                return VerifyResult(
                    False, checked, ev.seq, f"expected sequence {expected_seq}, found {ev.seq}"
                )
            if ev.prev_hash != expected_prev:
                return VerifyResult(False, checked, ev.seq, "does not link to the previous entry")
            if compute_hash(ev) != ev.hash:
                return VerifyResult(False, checked, ev.seq, "content does not match its hash")
            expected_prev = ev.hash
            expected_seq += 1
            checked += 1
            last_id = ev.id
        if progress is not None:
            progress(checked)
        session.expunge_all()
    head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    if head.seq != checked or head.hash != expected_prev:
        return VerifyResult(
            False,
            checked,
            checked + 1 if head.seq > checked else head.seq,
            f"the chain ends at {checked} but the head records {head.seq}: entries were removed",
        )
    return VerifyResult(True, checked)
