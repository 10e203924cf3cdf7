"""The live streams' cursor: every timeline event and notification has its place in commit
order (``live_seq``), and a page's badge counts only what its stream will not send again."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.models import Notification, OperationEvent, User
from atlaslink.operations import inbox, timeline


def _user(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    assert user is not None
    return user


def test_every_row_is_numbered_above_the_mark_read_before_it(db: Session) -> None:
    for model in (OperationEvent, Notification):
        assert db.scalar(select(func.count()).where(model.live_seq.is_(None))) == 0
    at = _user(db, "commander.at")
    who = auth.principal_of(at)
    mark = timeline.live_mark(db)
    before = inbox.unread_count(db, who)
    made = timeline.notify_users(db, [at, _user(db, "duty.at")], None, "test", "Two at once")
    db.commit()
    assert sorted(n.live_seq for n in made) == [mark + 1, mark + 2]  # type: ignore[misc]
    assert timeline.live_mark(db) == mark + 2
    # The badge of a page whose mark was read before: the new one is not in its count (its
    # stream replays it), so it is counted once.
    assert inbox.unread_count(db, who, upto=mark) == before
    assert inbox.unread_count(db, who) == before + 1
