"""The messages pages: partners, endpoints (secret shown once), outbox with retry, log."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.models import OutboxMessage, PartnerEndpoint
from tests.conftest import csrf_of


def test_partner_endpoint_outbox_and_log_pages(pages_as: Any, db: Session, api_as: Any) -> None:
    support = pages_as("support")
    page = support.get("/messages")
    assert page.status_code == 200 and "Register a partner" in page.text
    assert "ATLASLINK_SCHEMA_DIR" in page.text  # says no schema folder is configured
    csrf = csrf_of(page.text)
    r = support.post(
        "/messages",
        data={
            "action": "partner",
            "csrf_token": csrf,
            "code": "at-adler",
            "name": "ADLER cmd",
            "sender_id": "at.adler.command",
            "unit_code": "AT-ADLER",
            "de_version": "2.0",
            "topics": ["requests", "answers"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = support.post(
        "/messages",
        data={
            "action": "endpoint",
            "csrf_token": csrf,
            "code": "at-adler",
            "kind": "http",
            "target": "http://127.0.0.1:9/in",
        },
    )
    assert r.status_code == 201 and "not shown again" in r.text
    secret = db.scalar(select(PartnerEndpoint.secret))
    assert secret and secret in r.text
    listing = support.get("/messages").text
    assert "at-adler" in listing and "unit AT-ADLER" in listing and secret not in listing
    # Without the CSRF token nothing happens.
    assert support.post("/messages", data={"action": "partner", "code": "x"}).status_code == 403

    # A parked message shows on the outbox page and can be retried.
    from tests.conftest import unit_id
    from tests.messages_support import ok, request_body

    de = api_as("duty.de")
    rid = ok(de.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
    ok(de.post(f"/api/v1/requests/{rid}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}))
    row = db.scalars(select(OutboxMessage)).one()
    row.state, row.attempts, row.last_error = "parked", 8, "HTTP 503: down"
    db.commit()
    page = support.get("/messages/outbox?state=parked")
    assert "parked" in page.text and "HTTP 503" in page.text
    r = support.post(
        "/messages/outbox",
        data={"csrf_token": csrf_of(page.text), "outbox_id": row.id},
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.expire_all()
    assert db.get(OutboxMessage, row.id).state == "pending"  # type: ignore[union-attr]
    assert support.get("/messages/log").status_code == 200
    # Not for a duty officer.
    assert pages_as("duty.de").get("/messages").status_code == 403
    assert re.search(r'href="/messages"', support.get("/").text)


def test_the_operation_page_asks_a_team_for_a_status_report(
    pages_as: Any, api_as: Any, db: Session
) -> None:
    from tests.conftest import unit_id
    from tests.messages_support import ok, outbox_of, request_body, standard_partners

    standard_partners(db)
    de_, at = api_as("duty.de"), api_as("duty.at")
    rid = ok(de_.post("/api/v1/requests", json=request_body(submit=True)), 201)["id"]
    base = f"/api/v1/requests/{rid}"
    ok(de_.post(f"{base}/addressees", json={"unit_ids": [unit_id(db, "AT-ADLER")]}))
    out = ok(
        at.post(
            f"{base}/answers", json={"answer": "accept", "lines": [{"line_no": 1, "quantity": 2}]}
        ),
        201,
    )
    oid = out["offers"][0]["id"]
    rev = ok(de_.post(f"{base}/offers/{oid}/accept", json={}))["offers"][0]["arrangement"]
    for c in (de_, at):
        ok(c.post(f"{base}/offers/{oid}/arrangement/confirm", json={"revision": rev["revision"]}))
    page = pages_as("duty.de")
    html = page.get(f"/requests/{rid}").text
    assert "Ask for a status report" in html
    assert "Ask for a status report" not in pages_as("duty.at").get(f"/requests/{rid}").text
    r = page.post(
        f"/requests/{rid}/offers/{oid}/status-request",
        data={"csrf_token": csrf_of(html)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert [
        m for m in outbox_of(db, "at-adler") if m.message_type == "RequestResourceDeploymentStatus"
    ]
