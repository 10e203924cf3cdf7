"""Live updates: real server processes on a database of their own (committed data), streams
read by a real HTTP client, changes made by other users through the API."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.db import make_engine
from atlaslink.models import ApiToken, User, WebSession
from tests.conftest import create_database, is_postgres, load_demo
from tests.live_server import live_server
from tests.test_operations_flow import body

# Short intervals so that the tests see heartbeats and re-checks within seconds.
SERVER_ENV = {
    "ATLASLINK_LIVE_HEARTBEAT_SECONDS": "0.5",
    "ATLASLINK_LIVE_RECHECK_SECONDS": "1",
    "ATLASLINK_RUN_JOBS_IN_SERVER": "false",
}


@dataclass
class Live:
    url: str
    engine: Engine
    a: str  # two server processes on the same database
    b: str
    tmp: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("live")
    url, drop = create_database(tmp, "live")
    engine = make_engine(url)
    try:
        load_demo(engine)
        with (
            live_server(url, tmp / "a.log", env=SERVER_ENV) as a,
            live_server(url, tmp / "b.log", env=SERVER_ENV) as b,
        ):
            yield Live(url, engine, a, b, tmp)
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def _user(s: Session, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    assert user is not None, username
    return user


def token(live: Live, username: str) -> str:
    with Session(live.engine) as s:
        issued = auth.create_token(s, _user(s, username), "live test")
        s.commit()
        return issued.token


def web_session(live: Live, username: str) -> str:
    with Session(live.engine) as s:
        new = auth.start_session(s, _user(s, username), mfa_passed=True)
        s.commit()
        return new.token


def api(live: Live, username: str, base: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base or live.a}/api/v1",
        headers={"Authorization": f"Bearer {token(live, username)}"},
        timeout=10,
    )


def unit(live: Live, code: str) -> int:
    from atlaslink.models import Unit

    with Session(live.engine) as s:
        uid = s.scalar(select(Unit.id).where(Unit.code == code))
        assert uid is not None
        return uid


@dataclass
class Message:
    event: str
    id: str
    data: dict[str, Any]
    at: float


@dataclass
class Stream:
    """An SSE client on a thread: messages arrive in a queue with their arrival time."""

    url: str
    headers: dict[str, str]
    messages: queue.Queue[Message] = field(default_factory=queue.Queue)
    status: int | None = None
    content_type: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    retry: str | None = None
    comments: int = 0
    opened: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    stop: bool = False

    def start(self) -> Stream:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.opened.wait(10), "the stream did not answer within 10 s"
        return self

    def _run(self) -> None:
        try:
            timeout = httpx.Timeout(10, read=5)
            with (
                httpx.Client(timeout=timeout) as c,
                c.stream("GET", self.url, headers=self.headers) as r,
            ):
                self.status = r.status_code
                self.content_type = r.headers.get("content-type", "")
                self.response_headers = dict(r.headers)
                if r.status_code != 200:
                    self.body = r.read().decode()
                    return
                self.opened.set()
                fields: dict[str, str] = {}
                for line in r.iter_lines():
                    if self.stop:
                        return
                    if line == "":
                        if "event" in fields:
                            self.messages.put(
                                Message(
                                    fields["event"],
                                    fields.get("id", ""),
                                    json.loads(fields.get("data", "{}")),
                                    time.monotonic(),
                                )
                            )
                        elif "retry" in fields:
                            self.retry = fields["retry"]
                        fields = {}
                    elif line.startswith(":"):
                        self.comments += 1
                    else:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def next(self, timeout: float = 3.0) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s on {self.url}") from None

    def until(self, event_id: int, timeout: float = 3.0) -> tuple[Message, list[Message]]:
        """The message announcing ``event_id``, and those before it. (A new stream may also
        announce events committed just before it opened: at most one poll interval.)"""
        deadline = time.monotonic() + timeout
        skipped = []
        while True:
            m = self.next(max(0.01, deadline - time.monotonic()))
            if m.data.get("event_id", m.data.get("id")) == event_id:
                return m, skipped
            skipped.append(m)

    def drain(self, wait: float = 0.0) -> list[Message]:
        if wait:
            time.sleep(wait)
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.stop = True
        self.ended.wait(3)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for s in opened:
        s.close()


def open_stream(
    streams: list[Stream], url: str, *, bearer: str = "", cookie: str = "", **headers: str
) -> Stream:
    h = dict(headers)
    if bearer:
        h["Authorization"] = f"Bearer {bearer}"
    if cookie:
        h["Cookie"] = f"atlaslink_session={cookie}"
    s = Stream(url, h).start()
    streams.append(s)
    return s


def new_request(de: httpx.Client, live: Live, *codes: str) -> int:
    r = de.post("/requests", json=body(submit=True))
    assert r.status_code == 201, r.text
    rid = int(r.json()["id"])
    r = de.post(f"/requests/{rid}/addressees", json={"unit_ids": [unit(live, c) for c in codes]})
    assert r.status_code == 200, r.text
    return rid


def last_event_id(client: httpx.Client, rid: int) -> int:
    r = client.get(f"/requests/{rid}/events")
    assert r.status_code == 200, r.text
    return int(r.json()[-1]["id"])


def live_seq(client: httpx.Client, rid: int, event_id: int) -> int:
    """An event's place in commit order: its frames' id, a stream's cursor."""
    r = client.get(f"/requests/{rid}/events")
    assert r.status_code == 200, r.text
    return next(int(e["live_seq"]) for e in r.json() if e["id"] == event_id)


def note(client: httpx.Client, rid: int, text: str) -> tuple[int, float]:
    r = client.post(f"/requests/{rid}/notes", json={"text": text})
    committed = time.monotonic()  # the response comes after the commit
    assert r.status_code == 201, r.text
    return int(r.json()[0]["id"]), committed


def test_an_addressed_unit_sees_another_users_change_within_a_second(
    live: Live, streams: list[Stream]
) -> None:
    de, at_token = api(live, "duty.de"), token(live, "duty.at")
    rid = new_request(de, live, "AT-ADLER")
    s = open_stream(streams, f"{live.a}/api/v1/requests/{rid}/live", bearer=at_token)
    assert s.status == 200
    assert s.content_type.startswith("text/event-stream")
    assert s.response_headers["cache-control"] == "no-cache"
    assert s.response_headers["x-accel-buffering"] == "no"

    event_id, committed = note(de, rid, "Second train stopped at Herzogenrath")
    m, _ = s.until(event_id)
    assert m.at - committed < 1.0, f"arrived {m.at - committed:.3f} s after the commit"
    assert (m.event, m.id, m.data) == (
        "timeline",
        str(live_seq(de, rid, event_id)),
        {"request_id": rid, "event_id": event_id},
    )
    assert s.retry == "2000"
    # Idle streams carry heartbeats (every 0.5 s in these servers).
    time.sleep(1.2)
    assert s.comments >= 1


def test_several_server_processes_stay_consistent(live: Live, streams: list[Stream]) -> None:
    de = api(live, "duty.de", base=live.a)  # acts through process A
    rid = new_request(de, live, "AT-ADLER")
    at_token = token(live, "duty.at")
    on_b = open_stream(streams, f"{live.b}/api/v1/requests/{rid}/live", bearer=at_token)
    on_a = open_stream(streams, f"{live.a}/api/v1/requests/{rid}/live", bearer=at_token)
    event_id, committed = note(de, rid, "Negotiators requested at the scene")
    for s in (on_b, on_a):
        m, _ = s.until(event_id)
        assert m.data == {"request_id": rid, "event_id": event_id}
        assert m.at - committed < 1.0
    # And the other way round: an action through B reaches a subscriber on A.
    at_on_b = api(live, "duty.at", base=live.b)
    assert at_on_b.post(f"/requests/{rid}/acknowledge").status_code == 200
    ack = on_a.next()
    assert ack.data["request_id"] == rid and int(ack.id) > int(m.id)
    assert ack.data["event_id"] == last_event_id(de, rid)


def test_who_may_not_see_the_request_gets_404(live: Live, streams: list[Stream]) -> None:
    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER")
    nl = open_stream(
        streams, f"{live.a}/api/v1/requests/{rid}/live", bearer=token(live, "commander.nl")
    )
    assert nl.status == 404
    assert nl.content_type.startswith("application/problem+json")
    assert json.loads(nl.body)["status"] == 404
    # The page stream answers with the error page; without a session it asks to log in.
    page = open_stream(
        streams, f"{live.a}/requests/{rid}/live", cookie=web_session(live, "commander.nl")
    )
    assert page.status == 404 and page.content_type.startswith("text/html")
    anonymous = open_stream(streams, f"{live.a}/requests/{rid}/live")
    assert anonymous.status == 303
    assert open_stream(streams, f"{live.a}/api/v1/requests/{rid}/live").status == 401
    missing = open_stream(
        streams, f"{live.a}/api/v1/requests/999999/live", bearer=token(live, "duty.de")
    )
    assert missing.status == 404


def _accepted_offer(live: Live, rid: int) -> tuple[httpx.Client, int]:
    de, at = api(live, "duty.de"), api(live, "duty.at")
    assert at.post(f"/requests/{rid}/acknowledge").status_code == 200
    r = at.post(
        f"/requests/{rid}/answers",
        json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 2}], "package": "2 ops"},
    )
    assert r.status_code == 201, r.text
    offer = r.json()["offers"][0]["id"]
    r = de.post(f"/requests/{rid}/offers/{offer}/accept", json={})
    assert r.status_code == 200, r.text
    return at, offer


def test_a_parties_event_is_not_sent_to_an_involved_non_party(
    live: Live, streams: list[Stream]
) -> None:
    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER", "NL-REIGER")
    at, offer = _accepted_offer(live, rid)
    url = f"{live.b}/api/v1/requests/{rid}/live"
    nl = open_stream(streams, url, bearer=token(live, "commander.nl"))  # addressed, not a party
    at_s = open_stream(streams, url, bearer=token(live, "duty.at"))  # the offering unit
    de_s = open_stream(streams, url, bearer=token(live, "commander.de"))  # requesting side

    r = at.post(
        f"/requests/{rid}/offers/{offer}/manifest",
        json={"category": "explosive", "description": "Linear cutting charges", "quantity": 6},
    )
    assert r.status_code == 201, r.text
    manifest_id = last_event_id(at, rid)
    for party in (at_s, de_s):
        party.until(manifest_id)
    note_id, _ = note(de, rid, "Briefing at 14:00 for everyone")
    # The non-party gets the note; the manifest, committed before it, was never sent to it.
    _, before = nl.until(note_id)
    assert manifest_id < note_id
    assert manifest_id not in [m.data["event_id"] for m in before + nl.drain(0.5)]


def test_last_event_id_replays_only_what_the_viewer_may_see(
    live: Live, streams: list[Stream]
) -> None:
    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER", "NL-REIGER")
    nl_client = api(live, "commander.nl")
    start = live_seq(nl_client, rid, last_event_id(nl_client, rid))
    at, offer = _accepted_offer(live, rid)
    r = at.post(
        f"/requests/{rid}/offers/{offer}/manifest",
        json={"category": "vehicle", "description": "Armoured van", "quantity": 1},
    )
    assert r.status_code == 201
    note_id, _ = note(de, rid, "All units: staging area north")
    seen = nl_client.get(f"/requests/{rid}/events?after_seq={start}").json()
    expected = [int(e["live_seq"]) for e in seen]
    assert seen[-1]["id"] == note_id
    note_seq = expected[-1]

    url = f"{live.a}/api/v1/requests/{rid}/live"
    nl = open_stream(
        streams, url, bearer=token(live, "commander.nl"), **{"Last-Event-ID": str(start)}
    )
    replayed = [int(m.id) for m in nl.drain(1.0)]
    assert [i for i in replayed if i > start] == expected
    # `?after=` works the same for a first connection; a browser's Last-Event-ID wins over it.
    again = open_stream(
        streams,
        f"{url}?after=0",
        bearer=token(live, "commander.nl"),
        **{"Last-Event-ID": str(start)},
    )
    assert [int(m.id) for m in again.drain(1.0) if int(m.id) > start] == expected
    newest = open_stream(streams, f"{url}?after={note_seq}", bearer=token(live, "commander.nl"))
    assert [m for m in newest.drain(0.5) if int(m.id) > note_seq] == []
    # Nothing is lost between the replay and the live events.
    later, _ = note(de, rid, "Update")
    assert nl.next().data["event_id"] == later
    newest.until(later)


def test_page_stream_ends_when_the_session_is_logged_out(live: Live, streams: list[Stream]) -> None:
    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER")
    cookie = web_session(live, "duty.at")
    s = open_stream(streams, f"{live.b}/requests/{rid}/live", cookie=cookie)
    assert s.status == 200
    event_id, _ = note(de, rid, "Through the page stream")
    s.until(event_id)
    with Session(live.engine) as db:
        ws = db.scalar(select(WebSession).where(WebSession.token_hash == auth.sha256(cookie)))
        assert ws is not None
        auth.end_session(db, ws)
        db.commit()
    # Re-checked every second in these servers.
    assert s.ended.wait(5), "the stream outlived its session"


def test_api_stream_ends_when_the_token_is_revoked(live: Live, streams: list[Stream]) -> None:
    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER")
    at_token = token(live, "duty.at")
    s = open_stream(streams, f"{live.a}/api/v1/requests/{rid}/live", bearer=at_token)
    with Session(live.engine) as db:
        record = db.scalar(select(ApiToken).where(ApiToken.token_hash == auth.sha256(at_token)))
        assert record is not None
        auth.revoke_token(db, _user(db, "duty.at"), record.id)
        db.commit()
    assert s.ended.wait(5), "the stream outlived its token"


def test_notification_streams_api_and_page(live: Live, streams: list[Stream]) -> None:
    at_api = open_stream(
        streams, f"{live.b}/api/v1/notifications/live", bearer=token(live, "duty.at")
    )
    at_page = open_stream(
        streams, f"{live.a}/notifications/live", cookie=web_session(live, "commander.at")
    )
    nl = open_stream(
        streams, f"{live.a}/api/v1/notifications/live", bearer=token(live, "commander.nl")
    )
    de = api(live, "duty.de")
    new_request(de, live, "AT-ADLER")  # AT's responders are alerted, urgently
    for s in (at_api, at_page):
        m = s.next()
        assert m.event == "notification" and m.data["urgent"] is True
        assert int(m.id) > 0  # its live_seq
    assert nl.drain(0.5) == []
    # Replay after a known notification id.
    at_client = api(live, "duty.at")
    items = at_client.get("/notifications?per_page=2").json()["items"]
    replay = open_stream(
        streams,
        f"{live.a}/api/v1/notifications/live?after={items[-1]['live_seq']}",
        bearer=token(live, "duty.at"),
    )
    assert [m.data["id"] for m in replay.drain(1.0)] == [items[0]["id"]]


def test_server_shutdown_ends_open_streams(live: Live, streams: list[Stream]) -> None:
    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER")
    started = time.monotonic()
    with live_server(live.url, live.tmp / "c.log", env=SERVER_ENV) as c:
        s = open_stream(streams, f"{c}/api/v1/requests/{rid}/live", bearer=token(live, "duty.at"))
        assert s.status == 200
        stopping = time.monotonic()
    # The server stopped without waiting for the stream (it would be killed after 10 s).
    assert time.monotonic() - stopping < 5, f"shutdown took {time.monotonic() - stopping:.1f} s"
    assert s.ended.wait(2)
    assert time.monotonic() - started < 40


@pytest.mark.postgres_only
@pytest.mark.skipif(not is_postgres(), reason="LISTEN/NOTIFY is PostgreSQL's")
def test_a_dropped_listening_connection_reconnects_and_catches_up(
    live: Live, streams: list[Stream]
) -> None:
    from sqlalchemy import text

    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER")
    s = open_stream(streams, f"{live.b}/api/v1/requests/{rid}/live", bearer=token(live, "duty.at"))
    with live.engine.begin() as c:
        killed = c.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'atlaslink-live' AND datname = current_database()"
            )
        ).scalar_one()
    assert killed >= 1
    # Committed while no process listens: found again from the table after reconnecting.
    event_id, _ = note(de, rid, "While the listener was away")
    s.until(event_id, timeout=5)
    later, committed = note(de, rid, "And after it came back")
    m, _ = s.until(later, timeout=5)
    assert m.at - committed < 1.0


@pytest.mark.postgres_only
@pytest.mark.skipif(not is_postgres(), reason="concurrent writers: PostgreSQL's")
def test_an_event_committed_out_of_id_order_while_a_stream_was_away_is_replayed(
    live: Live, streams: list[Stream]
) -> None:
    """Transaction A takes an event id, then B takes a higher one and commits first; the
    browser sees B, loses its stream, and A commits before it reconnects. Resuming after B's
    frame must still bring A (ids are not in commit order; frames carry the commit order)."""
    from sqlalchemy import event as orm_event

    from atlaslink.models import AssistanceRequest, OperationEvent
    from atlaslink.operations import timeline

    de = api(live, "duty.de")
    rid = new_request(de, live, "AT-ADLER")
    url = f"{live.a}/api/v1/requests/{rid}/live"
    at = token(live, "duty.at")
    s = open_stream(streams, url, bearer=at)
    inserted, release = threading.Event(), threading.Event()
    a_event: dict[str, int] = {}

    def transaction_a() -> None:
        with Session(live.engine) as db:

            def hold(session: Session, _ctx: Any) -> None:
                if not inserted.is_set() and any(
                    isinstance(o, OperationEvent) for o in session.new
                ):
                    inserted.set()  # the row and its id exist, uncommitted
                    release.wait(10)

            orm_event.listen(db, "after_flush", hold)
            req = db.get(AssistanceRequest, rid)
            assert req is not None
            actor = auth.principal_of(_user(db, "duty.de"))
            ev = timeline.record(db, actor, req, "note", "A: taken first, committed last")
            db.commit()
            a_event["id"] = ev.id

    worker = threading.Thread(target=transaction_a, daemon=True)
    worker.start()
    try:
        assert inserted.wait(10), "transaction A did not insert its event"
        b_id, _ = note(de, rid, "B: taken second, committed first")
        m, _ = s.until(b_id, timeout=5)
        s.close()  # the browser's connection drops here
    finally:
        release.set()
        worker.join(10)
    assert a_event["id"] < b_id  # A's id is the lower one, and it committed last
    again = open_stream(streams, url, bearer=at, **{"Last-Event-ID": m.id})
    replayed = [x.data["event_id"] for x in again.drain(1.0)]
    assert a_event["id"] in replayed, (a_event, b_id, replayed)
    assert b_id not in replayed  # what the browser had is not sent again
    # An API client that reads what is new after B's live_seq gets A too.
    new = de.get(f"/requests/{rid}/events", params={"after_seq": m.id}).json()
    assert [e["id"] for e in new] == [a_event["id"]]


def test_a_notification_made_while_a_page_loads_reaches_its_badge(
    live: Live, streams: list[Stream]
) -> None:
    """The header badge's stream resumes where the page's count was taken, so a notification
    committed between rendering the page and opening the stream is counted."""
    import re

    cookie = web_session(live, "commander.at")
    page = httpx.get(f"{live.a}/", cookies={"atlaslink_session": cookie}, timeout=10)
    assert page.status_code == 200, page.text
    found = re.search(r'class="notif" data-live-url="([^"]+)"', page.text)
    assert found and re.fullmatch(r"/notifications/live\?after=\d+", found[1]), found
    de = api(live, "duty.de")
    new_request(de, live, "AT-ADLER")  # AT's commander is alerted, after the page was made
    badge = open_stream(streams, f"{live.a}{found[1]}", cookie=cookie)
    assert [m.event for m in badge.drain(1.0)].count("notification") >= 1


def test_a_slow_subscriber_is_dropped_and_never_holds_up_the_others(live: Live) -> None:
    from atlaslink.operations.live import QUEUE_SIZE, Broadcaster, LiveEvent

    async def scenario() -> None:
        hub = Broadcaster(live.engine, poll_seconds=0.05)
        await hub.start()
        try:
            slow = await hub.subscribe_request(1, lambda ev: True)
            fast = await hub.subscribe_request(1, lambda ev: True)
            other = await hub.subscribe_request(2, lambda ev: True)
            for k in range(QUEUE_SIZE + 5):
                hub.publish(LiveEvent(1, 10_000_000 + k, 10_000_000 + k, "all", None))
                while not fast.queue.empty():  # a reader that keeps up
                    fast.queue.get_nowait()
            assert slow.closed and not fast.closed and not other.closed
            assert hub.subscribers == 2 and hub.dropped == 1
            assert other.queue.empty()  # another request's stream is not woken
            # The same signal twice (a catch-up after a reconnect) is delivered once.
            hub.publish(LiveEvent(2, 20_000_000, 20_000_000, "all", None))
            hub.publish(LiveEvent(2, 20_000_000, 20_000_000, "all", None))
            assert other.queue.qsize() == 1
        finally:
            await hub.stop()
        assert fast.closed and other.closed

    asyncio.run(scenario())
