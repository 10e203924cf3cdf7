"""Live updates: one broadcaster per server process sends committed operation events and
notifications to the open streams (server-sent events) of the people who may see them.

Where the signals come from
    PostgreSQL: ``timeline.record`` and ``timeline.notify_users`` call ``pg_notify``, which is
    delivered at commit only. One dedicated connection per process LISTENs, so every process
    of every server learns of every change and several processes stay consistent. When that
    connection drops, the broadcaster reconnects with back-off and catches up from the tables
    by id, so nothing committed in between is missed.
    SQLite (no NOTIFY): each process polls the newest ids every ``live_poll_seconds``.

The broadcaster connects at its first subscriber: a process that never serves a live stream
(most tests, a server nobody watches) holds no listening connection and does not poll.

Visibility: a stream checks once at connect whether its caller may see the request
(``policy.get_visible``) and keeps the caller's ``Involvement``; each signal carries the
event's scope and unit, so ``views.event_visible`` decides per subscriber without a query.
The caller's session or token, and what they may see, is checked again every
``live_recheck_seconds``; the stream ends when that fails.

A subscriber's queue is bounded: a client that does not keep up is dropped (its stream ends;
the browser reconnects with ``Last-Event-ID`` and is sent what it missed), never waited for.

Where a stream resumes: every frame's id is the row's ``live_seq``, its place in commit order
(``timeline.number_live``), not its id. Ids are taken at INSERT and transactions commit in
another order, so a row with a lower id can become visible after a higher one was sent; a
number below one already seen can no longer appear. Replays (``Last-Event-ID``, ``?after=``)
and the broadcaster's own catch-up after its connection dropped read ``live_seq > cursor``.

The wire format (agreed with the pages' script)::

    retry: 2000
    id: <live_seq>            event: timeline         data: {"request_id": R, "event_id": E}
    id: <live_seq>            event: notification     data: {"id": N, "urgent": true|false}
    : heartbeat               (a comment every live_heartbeat_seconds)
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.errors import NotFound, Unavailable
from atlaslink.models import AssistanceRequest, Notification
from atlaslink.operations import policy, views
from atlaslink.operations.policy import Involvement
from atlaslink.operations.timeline import LIVE_CHANNEL, NOTIFY_CHANNEL

log = logging.getLogger("atlaslink.live")

QUEUE_SIZE = 256  # signals a stream may lag behind before it is dropped
REPLAY_LIMIT = 500  # events sent after Last-Event-ID; the page reads the rest from /events
READY_TIMEOUT = 10.0  # seconds a first subscriber waits for the listener to be in place
CATCH_UP_MAX = 10_000  # more missed rows than this: end every stream, let them replay
PING_SECONDS = 10.0  # an idle listening connection is tested this often
RECONNECT_MIN, RECONNECT_MAX = 0.5, 10.0
RETRY_MS = 2000
APPLICATION_NAME = "atlaslink-live"  # the listening connections, as pg_stat_activity shows them


@dataclass(frozen=True)
class LiveEvent:
    """A committed operation event, as the live filter needs it."""

    request_id: int
    event_id: int
    seq: int  # live_seq
    scope: str
    unit_id: int | None


@dataclass(frozen=True)
class LiveNotification:
    id: int
    user_id: int
    seq: int  # live_seq
    urgent: bool


Item = LiveEvent | LiveNotification
Filter = Callable[[Any], bool]


def parse_event(payload: str) -> LiveEvent | None:
    """The payload of ``timeline.event_signal``: ``request_id:event_id:live_seq:scope:unit_id``."""
    try:
        rid, eid, seq, scope, unit = payload.split(":")
        return LiveEvent(int(rid), int(eid), int(seq), scope, int(unit) if unit else None)
    except ValueError:
        return None


def parse_notification(payload: str) -> LiveNotification | None:
    """The payload of ``timeline.notification_signal``: ``id:user_id:live_seq:urgent``."""
    try:
        nid, uid, seq, urgent = payload.split(":")
        return LiveNotification(int(nid), int(uid), int(seq), urgent == "1")
    except ValueError:
        return None


class Subscription:
    """One open stream: a bounded queue and the filter of what its viewer may see."""

    def __init__(self, accepts: Filter) -> None:
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(QUEUE_SIZE)
        self.accepts = accepts
        self.closed = False
        self.request_id: int | None = None
        self.user_id: int | None = None

    def offer(self, item: Item) -> bool:
        """Queue a signal without waiting; False when the subscriber has fallen behind."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    def close(self) -> None:
        self.closed = True
        # A full queue wakes its reader anyway; it sees ``closed`` and ends.
        with suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class Broadcaster:
    """Receives every committed signal of this process's database and fans it out."""

    def __init__(self, engine: Engine, *, poll_seconds: float = 0.25) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._by_request: dict[int, set[Subscription]] = {}
        self._by_user: dict[int, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        # The newest number delivered of each kind (events, notifications); at first, the newest
        # committed before this process listened.
        self._marks = {"e": 0, "n": 0}
        self._hooks: dict[int, tuple[Any, Any]] = {}
        self.dropped = 0

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._accepting = True
        self._hook_signals()

    async def stop(self) -> None:
        self._accepting = False
        self._unhook_signals()
        self.close_all()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def close_all(self) -> None:
        for subs in (*self._by_request.values(), *self._by_user.values()):
            for sub in subs:
                sub.close()
        self._by_request.clear()
        self._by_user.clear()

    def _shutting_down(self) -> None:
        self._accepting = False
        self.close_all()

    def _hook_signals(self) -> None:
        """End the streams when the server is asked to stop.

        uvicorn waits for open responses to finish before it runs the lifespan shutdown, and a
        stream never finishes by itself: so the stop signal itself ends them (the previous
        handler, uvicorn's, still runs). Only in the main thread, where signals arrive.
        """
        if threading.current_thread() is not threading.main_thread() or self._loop is None:
            return
        loop = self._loop
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self._shutting_down)
                previous(signum, frame)

            signal.signal(sig, handler)
            self._hooks[sig] = (handler, previous)

    def _unhook_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, (handler, previous) in self._hooks.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
        self._hooks.clear()

    # --- subscribers -------------------------------------------------------------------

    async def _until_started(self) -> None:
        if not self._accepting:
            raise Unavailable("Live updates are not available now (the server is stopping).")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="atlaslink-live")
        try:
            await asyncio.wait_for(self._started.wait(), READY_TIMEOUT)
        except TimeoutError:
            raise Unavailable("Live updates are not available right now; try again.") from None

    async def subscribe_request(self, request_id: int, accepts: Filter) -> Subscription:
        await self._until_started()
        sub = Subscription(accepts)
        sub.request_id = request_id
        self._by_request.setdefault(request_id, set()).add(sub)
        return sub

    async def subscribe_user(self, user_id: int) -> Subscription:
        await self._until_started()
        sub = Subscription(_everything)
        sub.user_id = user_id
        self._by_user.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        for index, key in ((self._by_request, sub.request_id), (self._by_user, sub.user_id)):
            if key is None:
                continue
            subs = index.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del index[key]

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._by_request.values()) + sum(
            len(s) for s in self._by_user.values()
        )

    def publish(self, item: Item) -> None:
        """Hand a signal to every subscriber that may see it, once."""
        kind = "e" if isinstance(item, LiveEvent) else "n"
        # Signals arrive in commit order, which is number order: one at or below the newest
        # delivered was delivered already (by a catch-up that overlapped the listening).
        if item.seq <= self._marks[kind]:
            return
        self._marks[kind] = item.seq
        subs = (
            self._by_request.get(item.request_id)
            if isinstance(item, LiveEvent)
            else self._by_user.get(item.user_id)
        )
        for sub in list(subs or ()):
            if sub.accepts(item) and not sub.offer(item):
                self.dropped += 1
                log.info("live: dropped a stream that fell %d signals behind", QUEUE_SIZE)
                self.unsubscribe(sub)
                sub.close()

    # --- sources -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                if self.engine.dialect.name == "postgresql":
                    await self._listen()
                else:
                    await self._poll()
            except Exception:  # a bug must not end live updates for the process's lifetime
                log.exception("live: the broadcaster failed; restarting it")
                await asyncio.sleep(RECONNECT_MAX)

    def _start_at(self, newest: int) -> None:
        """Once per process: what was committed before it listened is never announced."""
        if self._started.is_set():
            return
        self._marks = {"e": newest, "n": newest}

    def _deliver(self, events: list[Any], notes: list[Any]) -> None:
        """Publish rows read from the tables (ascending ids; notes may lack a user)."""
        if len(events) > CATCH_UP_MAX or len(notes) > CATCH_UP_MAX:
            # Too much was missed to queue: every stream ends and replays from the database.
            log.warning("live: more than %d signals missed; ending all streams", CATCH_UP_MAX)
            self.close_all()
        else:
            for eid, rid, seq, scope, unit in events:
                self.publish(LiveEvent(rid, eid, seq, scope, unit))
            for nid, uid, seq, urgent in notes:
                if uid is not None:  # an e-mail to a 24/7 address: nobody's badge
                    self.publish(LiveNotification(nid, uid, seq, bool(urgent)))
        if events:
            self._marks["e"] = max(self._marks["e"], events[-1][2])
        if notes:
            self._marks["n"] = max(self._marks["n"], notes[-1][2])

    async def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = RECONNECT_MIN
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
                )
                async with conn:
                    await conn.execute(f"LISTEN {LIVE_CHANNEL}")
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    if not self._started.is_set():
                        cur = await conn.execute(_NEWEST)
                        row = await cur.fetchone()
                        assert row is not None
                        self._start_at(int(row[0]))
                    else:
                        # What committed while nobody listened: the numbers follow commit
                        # order, so nothing below the newest one seen can still appear.
                        cur = await conn.execute(
                            _EVENTS_AFTER.replace("?", "%s"),
                            (self._marks["e"], CATCH_UP_MAX + 1),
                        )
                        events = await cur.fetchall()
                        cur = await conn.execute(
                            _NOTES_AFTER.replace("?", "%s"),
                            (self._marks["n"], CATCH_UP_MAX + 1),
                        )
                        self._deliver(events, await cur.fetchall())
                        log.info("live: listening again, caught up %d events", len(events))
                    self._started.set()
                    delay = RECONNECT_MIN
                    while True:
                        async for n in conn.notifies(timeout=PING_SECONDS):
                            self._on_notify(n.channel, n.payload)
                        # Quiet for a while: make sure the connection is still there.
                        await asyncio.wait_for(conn.execute("SELECT 1"), PING_SECONDS)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("live: listening connection lost (%s); retry in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _on_notify(self, channel: str, payload: str) -> None:
        item: Item | None = (
            parse_event(payload) if channel == LIVE_CHANNEL else parse_notification(payload)
        )
        if item is None:
            log.warning("live: ignored a signal %r on %s", payload, channel)
            return
        self.publish(item)

    async def _poll(self) -> None:
        # A raw connection: SQLAlchemy's transactions on SQLite begin IMMEDIATE (a write
        # lock); plain SELECTs in autocommit mode read the committed state without it.
        raw = await asyncio.to_thread(self.engine.raw_connection)
        try:
            self._start_at(await asyncio.to_thread(_newest_sqlite, raw))  # first run only
            self._started.set()
            while True:
                await asyncio.sleep(self.poll_seconds)
                try:
                    events, notes = await asyncio.to_thread(
                        _read_sqlite, raw, self._marks["e"], self._marks["n"]
                    )
                except Exception as exc:  # the file is busy or gone: try again next round
                    log.warning("live: polling failed (%s)", exc)
                    continue
                self._deliver(events, notes)
        finally:
            raw.close()


# The broadcaster's own reads, on its raw connection (``?`` is SQLite's placeholder; the
# listener on PostgreSQL uses ``%s``).
_NEWEST = "SELECT live_seq FROM audit_head WHERE id = 1"
_EVENTS_AFTER = (
    "SELECT id, request_id, live_seq, scope, unit_id FROM operation_events"
    " WHERE live_seq > ? ORDER BY live_seq LIMIT ?"
)
_NOTES_AFTER = (
    "SELECT id, user_id, live_seq, urgent FROM notifications"
    " WHERE live_seq > ? ORDER BY live_seq LIMIT ?"
)


def _newest_sqlite(raw: Any) -> int:
    cur = raw.cursor()
    try:
        cur.execute(_NEWEST)
        return int(cur.fetchone()[0])
    finally:
        cur.close()


def _read_sqlite(raw: Any, event_mark: int, note_mark: int) -> tuple[list[Any], list[Any]]:
    cur = raw.cursor()
    try:
        cur.execute(_EVENTS_AFTER, (event_mark, CATCH_UP_MAX + 1))
        events = list(cur.fetchall())
        cur.execute(_NOTES_AFTER, (note_mark, CATCH_UP_MAX + 1))
        return events, list(cur.fetchall())
    finally:
        cur.close()


def _everything(_item: Any) -> bool:
    return True


def broadcaster(app: FastAPI) -> Broadcaster:
    hub: Broadcaster | None = getattr(app.state, "live", None)
    if hub is None:
        raise Unavailable("Live updates are not running in this server.")
    return hub


# --- streams -------------------------------------------------------------------------------

# Who is calling, established again from the same credential (a cookie or a token) in a new
# session; None when the session ended or expired, or the token was revoked.
Authenticate = Callable[[Session], Principal | None]


def timeline_frame(ev: LiveEvent) -> str:
    data = json.dumps({"request_id": ev.request_id, "event_id": ev.event_id})
    return f"id: {ev.seq}\nevent: timeline\ndata: {data}\n\n"


def notification_frame(n: LiveNotification) -> str:
    data = json.dumps({"id": n.id, "urgent": n.urgent})
    return f"id: {n.seq}\nevent: notification\ndata: {data}\n\n"


def _frame(item: Item) -> str:
    return timeline_frame(item) if isinstance(item, LiveEvent) else notification_frame(item)


def _key(item: Item) -> int:
    return item.seq


def resume_after(last_event_id: str | None, after: int | None) -> int | None:
    """Where a stream resumes (a ``live_seq``): the browser's ``Last-Event-ID`` on a reconnect
    (newer than the ``?after=`` the page was opened with), else ``?after=``; None sends only
    new events."""
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    return after


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that always releases its subscription."""

    media_type = "text/event-stream"

    def __init__(self, hub: Broadcaster, sub: Subscription, body: AsyncIterator[str]) -> None:
        super().__init__(body, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._hub = hub
        self._sub = sub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._hub.unsubscribe(self._sub)


async def _stream(
    sub: Subscription, replay: list[Item], recheck: Callable[[], Filter | None]
) -> AsyncIterator[str]:
    settings = get_settings()
    heartbeat, every = settings.live_heartbeat_seconds, settings.live_recheck_seconds
    replayed = {_key(i) for i in replay}
    yield f"retry: {RETRY_MS}\n\n" + "".join(_frame(i) for i in replay)
    loop = asyncio.get_running_loop()
    # Spread the heartbeats and checks of many streams opened at the same moment.
    next_beat = loop.time() + heartbeat * random.uniform(0.5, 1.0)  # noqa: S311 (not security)
    next_check = loop.time() + every * random.uniform(0.5, 1.0)  # noqa: S311
    while True:
        try:
            # Not wait_for: that wraps every wait in a task of its own (500 streams, each event).
            async with asyncio.timeout_at(min(next_beat, next_check)):
                item = await sub.queue.get()
        except TimeoutError:
            item = None
            idle = True
        else:
            idle = False
        if sub.closed or (item is None and not idle):
            return
        if item is not None:
            batch = [item]
            while not sub.queue.empty():
                more = sub.queue.get_nowait()
                if more is None:
                    break
                batch.append(more)
            out = "".join(_frame(i) for i in batch if _key(i) not in replayed)
            if out:
                yield out
                next_beat = loop.time() + heartbeat
            if sub.closed:
                return
        now = loop.time()
        if now >= next_check:
            try:
                accepts = await run_in_threadpool(recheck)
            except SQLAlchemyError as exc:
                # The database is away: nothing new can be committed either; try again later.
                log.warning("live: could not re-check a stream's viewer (%s)", exc)
                accepts = sub.accepts
            if accepts is None:
                return
            sub.accepts = accepts
            next_check = now + every
        if now >= next_beat:
            yield ": heartbeat\n\n"
            next_beat = now + heartbeat


def _viewer_filter(p: Principal, inv: Involvement) -> Filter:
    return lambda ev: views.event_visible(ev, inv, p)


def _replay_events(
    db: Session, p: Principal, req: AssistanceRequest, inv: Involvement, after: int
) -> list[Item]:
    # Already filtered for the viewer: scope and unit no longer matter.
    return [
        LiveEvent(req.id, ev.id, ev.live_seq, "all", None)
        for ev in views.visible_events(db, p, req, inv, after_seq=after, limit=REPLAY_LIMIT)
    ]


async def request_stream(
    request: Request,
    db: Session,
    p: Principal,
    request_id: int,
    *,
    after: int | None,
    authenticate: Authenticate,
) -> EventStream:
    """The live timeline of one request for the caller, or 404 if they may not see it.

    Uses the request's session only before the stream starts (the unit of work ends it when
    the response starts); later checks use short sessions of their own.
    """
    hub = broadcaster(request.app)
    req, inv = await run_in_threadpool(policy.get_visible, db, p, request_id)
    # Subscribe before reading the replay: a change committed in between is in one or both.
    sub = await hub.subscribe_request(request_id, _viewer_filter(p, inv))
    try:
        replay = (
            await run_in_threadpool(_replay_events, db, p, req, inv, after)
            if after is not None
            else []
        )
    except BaseException:
        hub.unsubscribe(sub)
        raise
    maker: sessionmaker[Session] = request.app.state.sessionmaker

    def recheck() -> Filter | None:
        with maker() as s:
            try:
                viewer = authenticate(s)
                fresh = s.get(AssistanceRequest, request_id) if viewer is not None else None
                if viewer is None or fresh is None:
                    return None
                inv_now = policy.involvement(s, viewer, fresh)
                return _viewer_filter(viewer, inv_now) if inv_now.visible else None
            finally:
                s.rollback()  # never extends a web session's idle time, never writes

    return EventStream(hub, sub, _stream(sub, replay, recheck))


def _replay_notifications(db: Session, user_id: int, after: int) -> list[Item]:
    rows = db.execute(
        select(Notification.id, Notification.live_seq, Notification.urgent)
        .where(Notification.user_id == user_id, Notification.live_seq > after)
        .order_by(Notification.live_seq)
        .limit(REPLAY_LIMIT)
    ).all()
    return [LiveNotification(nid, user_id, seq, bool(urgent)) for nid, seq, urgent in rows]


async def notification_stream(
    request: Request,
    db: Session,
    p: Principal,
    *,
    after: int | None,
    authenticate: Authenticate,
) -> EventStream:
    """The caller's new notifications (for a badge), as they are created."""
    if p.user_id is None:
        raise NotFound("Only people receive notifications.")
    user_id = p.user_id
    hub = broadcaster(request.app)
    sub = await hub.subscribe_user(user_id)
    try:
        replay = (
            await run_in_threadpool(_replay_notifications, db, user_id, after)
            if after is not None
            else []
        )
    except BaseException:
        hub.unsubscribe(sub)
        raise
    maker: sessionmaker[Session] = request.app.state.sessionmaker

    def recheck() -> Filter | None:
        with maker() as s:
            try:
                viewer = authenticate(s)
                return _everything if viewer is not None and viewer.user_id == user_id else None
            finally:
                s.rollback()

    return EventStream(hub, sub, _stream(sub, replay, recheck))
