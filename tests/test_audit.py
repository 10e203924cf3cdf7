"""The audit chain: every change is recorded, tampering is detected, reads are filtered."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.principal import SYSTEM
from atlaslink.models import AuditEvent
from atlaslink.registry import schemas, service
from atlaslink.sharing.policy import Audience, FieldGroup
from tests.conftest import is_postgres, unit_id


def _drop_guards(db: Session) -> None:
    """Someone with database superuser rights can remove the triggers; the chain still tells."""
    if is_postgres():
        db.execute(text("DROP TRIGGER audit_events_no_change ON audit_events"))
    else:
        db.execute(text("DROP TRIGGER audit_events_no_update"))
        db.execute(text("DROP TRIGGER audit_events_no_delete"))


def _change_something(db: Session) -> None:
    uid = unit_id(db, "AT-ADLER")
    for level in (1, 2, 3):
        service.put_capability(db, SYSTEM, uid, "building", schemas.CapabilityWrite(level=level))


def test_changes_are_recorded_with_before_and_after(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    uid = unit_id(db, "AT-ADLER")
    r = api_as("duty.at").put(
        f"/api/v1/units/{uid}/capabilities/canine",
        json={"level": 2, "package_size": 4},
        headers={"X-Request-ID": "req-canine-1"},
    )
    assert r.status_code == 200, r.text
    ev = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "capability")
        .order_by(AuditEvent.seq.desc())
    ).first()
    assert ev is not None
    assert (ev.actor_label, ev.object_type, ev.unit_id, ev.request_id) == (
        "duty.at",
        "capability",
        uid,
        "req-canine-1",
    )
    assert ev.action in ("capability.create", "capability.update")
    assert ev.after is not None and ev.after["level"] == 2 and ev.after["package_size"] == 4


def test_intact_chain_verifies(db: Session) -> None:
    _change_something(db)
    result = audit.verify(db)
    assert result.ok and result.checked >= 3


def test_the_database_refuses_to_change_audit_events(db: Session) -> None:
    _change_something(db)
    db.flush()
    with pytest.raises(DBAPIError), db.begin_nested():
        db.execute(text("UPDATE audit_events SET actor_label = 'mallory'"))
    with pytest.raises(DBAPIError), db.begin_nested():
        db.execute(text("DELETE FROM audit_events"))


def _last_seqs(db: Session, n: int) -> list[int]:
    return sorted(db.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(n)))


def test_an_altered_entry_is_named(db: Session) -> None:
    _change_something(db)
    _drop_guards(db)
    target = _last_seqs(db, 2)[0]
    db.execute(text("UPDATE audit_events SET after = NULL WHERE seq = :s"), {"s": target})
    db.expire_all()
    result = audit.verify(db)
    assert not result.ok and result.first_bad_seq == target
    assert "content" in result.reason


def test_a_removed_entry_is_named(db: Session) -> None:
    _change_something(db)
    _drop_guards(db)
    target = _last_seqs(db, 2)[0]
    db.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": target})
    db.expire_all()
    result = audit.verify(db)
    assert not result.ok and result.first_bad_seq == target + 1


def test_removing_the_last_entry_is_detected(db: Session) -> None:
    _change_something(db)
    _drop_guards(db)
    last = _last_seqs(db, 1)[0]
    db.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": last})
    db.expire_all()
    result = audit.verify(db)
    assert not result.ok and result.first_bad_seq == last


def test_reordered_entries_are_detected(db: Session) -> None:
    _change_something(db)
    _drop_guards(db)
    a, b = _last_seqs(db, 2)
    db.execute(text("UPDATE audit_events SET seq = -1 WHERE seq = :a"), {"a": a})
    db.execute(text("UPDATE audit_events SET seq = :a WHERE seq = :b"), {"a": a, "b": b})
    db.execute(text("UPDATE audit_events SET seq = :b WHERE seq = -1"), {"b": b})
    db.expire_all()
    result = audit.verify(db)
    assert not result.ok and result.first_bad_seq in (a, b)


def test_support_office_sees_snapshots_only_where_shared(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    uid = unit_id(db, "NL-REIGER")
    rules = {g: schemas.SharingRuleIO(audience=Audience.OWN_UNIT) for g in FieldGroup}
    service.set_sharing(db, SYSTEM, uid, schemas.SharingAgreementIO(rules=rules))
    service.put_capability(
        db, SYSTEM, uid, "building", schemas.CapabilityWrite(level=3, package_size=977)
    )
    db.commit()
    support = (
        api_as("support")
        .get("/api/v1/audit", params={"object_type": "capability", "unit_id": uid})
        .json()
    )
    assert support["items"], "the event itself is listed"
    assert all(e["withheld"] and e["after"] is None for e in support["items"])
    assert "977" not in str(support)
    # Once shared with the support office, the values appear.
    rules = {g: schemas.SharingRuleIO(audience=Audience.SUPPORT_OFFICE) for g in FieldGroup}
    service.set_sharing(db, SYSTEM, uid, schemas.SharingAgreementIO(rules=rules))
    db.commit()
    support = (
        api_as("support")
        .get("/api/v1/audit", params={"object_type": "capability", "unit_id": uid})
        .json()
    )
    assert "977" in str(support)
    # Showing the values is a read of them like any other: recorded, naming the audit entries.
    db.expire_all()
    read = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == "disclosure", AuditEvent.actor_label == "support")
        .order_by(AuditEvent.seq.desc())
    ).first()
    shown = {str(e["seq"]) for e in support["items"] if e["after"]}
    assert read is not None and read.after is not None and shown
    objects = {o["id"]: o["groups"] for o in read.after["objects"] if o["type"] == "audit_event"}
    assert set(objects) == shown and read.after["units"] == [uid]
    assert all(set(g) == {"existence", "level", "package", "notice"} for g in objects.values())
    # A read event's list of groups follows from the sharing agreements of the units read:
    # its metadata is listed, the groups are not.
    disclosures = api_as("support").get("/api/v1/audit", params={"object_type": "disclosure"})
    items = disclosures.json()["items"]
    assert items and all(e["after"] is None and e["withheld"] for e in items)
    assert str(read.seq) in {str(e["seq"]) for e in items}
    # A platform admin sees that something changed, never the unit's values.
    admin = (
        api_as("admin")
        .get("/api/v1/audit", params={"object_type": "capability", "unit_id": uid})
        .json()
    )
    assert admin["items"] and "977" not in str(admin)
    # Whom a unit trusts is its own business.
    sharing = api_as("support").get("/api/v1/audit", params={"action": "sharing."}).json()
    assert sharing["items"] and all(e["after"] is None for e in sharing["items"] if e["unit_id"])


def test_audit_needs_permission(api_as, pages_as) -> None:  # type: ignore[no-untyped-def]
    for user in ("duty.at", "commander.at", "observer", "ncp.de"):
        assert api_as(user).get("/api/v1/audit").status_code == 403
        assert pages_as(user).get("/audit").status_code == 403
    page = pages_as("support").get("/audit")
    assert page.status_code == 200 and "Audit log" in page.text


def test_read_events_and_changes_interleave_in_one_chain(db: Session) -> None:
    """Read events are appended without the ORM; changes with it; in any order, in one
    transaction, they form one chain that verifies, and tampering with a read event tells."""
    viewer = SYSTEM
    for n in range(3):
        _change_something(db)
        ledger = audit.ReadLedger(actor=viewer)
        ledger.note("unit", n + 1, n + 1, ["contacts"])
        audit.flush_reads(db, ledger)
    db.flush()
    reads = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "read").order_by(AuditEvent.seq)
    ).all()
    assert [r.after["objects"][0]["id"] for r in reads[-3:]] == ["1", "2", "3"]  # type: ignore[index]
    assert audit.verify(db).ok
    _drop_guards(db)
    db.execute(
        text("UPDATE audit_events SET object_id = 'unit:999' WHERE seq = :s"), {"s": reads[-2].seq}
    )
    db.expire_all()
    result = audit.verify(db)
    assert not result.ok and result.first_bad_seq == reads[-2].seq


@pytest.mark.skipif(not is_postgres(), reason="synchronous_commit is PostgreSQL's")
@pytest.mark.parametrize("write", [False, True])
def test_only_a_transaction_that_wrote_nothing_commits_without_the_flush_wait(
    database,  # type: ignore[no-untyped-def]
    write: bool,
) -> None:
    """The statement ATLASLINK_READ_EVENTS_WAIT_FOR_FLUSH=false adds to a request's last round
    trip (audit.commit_with_reads): a change and its read event are one record, whose commit
    always waits for the flush."""
    from atlaslink.audit.service import _ASYNC_IF_READ_ONLY

    with database.engine.connect() as c:
        try:
            c.begin()
            c.execute(text("SELECT count(*) FROM units"))
            if write:
                c.execute(
                    text("UPDATE units SET name = name WHERE id = (SELECT min(id) FROM units)")
                )
            assert c.scalar(text("SHOW synchronous_commit")) == "on"
            c.exec_driver_sql(_ASYNC_IF_READ_ONLY)
            assert c.scalar(text("SHOW synchronous_commit")) == ("on" if write else "off")
        finally:
            c.rollback()
