"""The unit-of-work middleware: request ids, security headers, one transaction per request that
ends when the response starts, problems instead of traces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from fastapi import Request
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from atlaslink.models import Country
from atlaslink.web.deps import DB


def _add_country(db: Session, iso2: str) -> None:
    db.add(Country(iso2=iso2, name=f"Test {iso2}", status="other"))
    db.flush()


def test_request_id_and_security_headers_on_every_response(client: TestClient) -> None:
    for path in ("/healthz", "/api/v1/units", "/no-such-page", "/static/app.css"):
        r = client.get(path, headers={"X-Request-ID": "abc-123.x_y"})
        assert r.headers["x-request-id"] == "abc-123.x_y", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["referrer-policy"] == "same-origin", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
    generated = client.get("/healthz", headers={"X-Request-ID": "not acceptable!"})
    rid = generated.headers["x-request-id"]
    assert rid != "not acceptable!" and len(rid) == 32
    assert client.get("/healthz").headers["x-request-id"] != rid


def test_commit_on_success_rollback_on_error_unless_asked(app: Any, db: Session) -> None:  # type: ignore[misc]
    def ok(db: DB) -> dict[str, str]:
        _add_country(db, "QA")
        return {"ok": "yes"}

    def refused(db: DB) -> None:
        _add_country(db, "QB")
        from atlaslink.errors import Invalid

        raise Invalid("no")

    def refused_but_kept(request: Request, db: DB) -> None:
        _add_country(db, "QC")
        request.state.commit_on_error = True
        from atlaslink.errors import Invalid

        raise Invalid("no, but keep what was recorded")

    for route in (ok, refused, refused_but_kept):
        app.add_api_route(f"/test/{route.__name__}", route, methods=["POST"])
    c = TestClient(app)
    assert c.post("/test/ok").status_code == 200
    assert c.post("/test/refused").status_code == 422
    assert c.post("/test/refused_but_kept").status_code == 422
    stored = set(db.scalars(select(Country.iso2).where(Country.iso2.in_(["QA", "QB", "QC"]))))
    assert stored == {"QA", "QC"}


def test_a_failed_commit_becomes_a_409_problem(app: Any, db: Session) -> None:  # type: ignore[misc]
    def collides(db: DB) -> dict[str, str]:
        _add_country(db, "QD")

        def fail(_session: Session) -> None:
            raise RuntimeError("serialization failure")

        event.listen(db, "before_commit", fail, once=True)
        return {"stored": "yes"}

    app.add_api_route("/api/v1/test-collides", collides, methods=["POST"])
    r = TestClient(app).post("/api/v1/test-collides", headers={"X-Request-ID": "req-409"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Conflict" and r.json()["request_id"] == "req-409"
    assert r.headers["x-request-id"] == "req-409" and "stored" not in r.text
    assert "Your change" in r.json()["detail"] and "Try again" in r.json()["detail"]
    assert db.get(Country, "QD") is None


def test_a_streamed_response_does_not_hold_the_transaction(app: Any, db: Session) -> None:  # type: ignore[misc]
    def stream(db: DB) -> StreamingResponse:
        _add_country(db, "QE")

        def body() -> Iterator[str]:
            # Runs after the response started: the request's transaction is over.
            yield "open" if db.in_transaction() else "committed"

        return StreamingResponse(body(), media_type="text/plain")

    app.add_api_route("/test/stream", stream)
    r = TestClient(app).get("/test/stream")
    assert r.status_code == 200 and r.text == "committed"
    assert r.headers["x-request-id"] and r.headers["x-frame-options"] == "DENY"
    assert db.get(Country, "QE") is not None


def test_an_unhandled_error_rolls_back_and_names_the_request(app: Any, db: Session) -> None:  # type: ignore[misc]
    def boom(db: DB) -> None:
        _add_country(db, "QF")
        raise RuntimeError("secret internals")

    app.add_api_route("/api/v1/test-boom", boom, methods=["POST"])
    r = TestClient(app, raise_server_exceptions=False).post(
        "/api/v1/test-boom", headers={"X-Request-ID": "req-500"}
    )
    assert r.status_code == 500 and r.json()["request_id"] == "req-500"
    assert "req-500" in r.json()["detail"] and "secret internals" not in r.text
    assert r.headers["x-request-id"] == "req-500" and r.headers["x-content-type-options"]
    assert db.get(Country, "QF") is None


def test_a_transaction_the_database_aborted_for_a_collision_is_a_409_and_keeps_nothing(
    app: Any,
    db: Session,  # type: ignore[misc]
) -> None:
    """A deadlock or serialization failure (PostgreSQL aborts one of two colliding
    transactions) is not our error: the user is told to try again, nothing was kept. Any
    other database error stays a 500."""

    def collide(db: DB, kind: str) -> None:
        _add_country(db, "QG")
        orig = {
            "deadlock": psycopg.errors.DeadlockDetected("deadlock detected"),
            "serialization": psycopg.errors.SerializationFailure("could not serialize"),
            "other": psycopg.errors.DiskFull("no space left"),
        }[kind]
        raise OperationalError("INSERT ...", {}, orig)

    app.add_api_route("/api/v1/test-collide", collide, methods=["POST"])
    client = TestClient(app, raise_server_exceptions=False)
    for kind in ("deadlock", "serialization"):
        r = client.post(f"/api/v1/test-collide?kind={kind}", headers={"X-Request-ID": "req-409"})
        assert r.status_code == 409, (kind, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "Try again" in r.json()["detail"] and r.json()["request_id"] == "req-409"
        assert "deadlock" not in r.text and "INSERT" not in r.text
        assert db.get(Country, "QG") is None
    r = client.post("/api/v1/test-collide?kind=other")
    assert r.status_code == 500 and "no space" not in r.text
    assert db.get(Country, "QG") is None


def test_a_collision_is_recognised_wrapped_raw_or_as_the_cause() -> None:
    from atlaslink.db import is_concurrency_failure

    deadlock = psycopg.errors.DeadlockDetected("deadlock detected")
    assert is_concurrency_failure(OperationalError("INSERT ...", {}, deadlock))
    assert is_concurrency_failure(deadlock)  # psycopg's own, as commit_with_reads sees it
    outer = RuntimeError("while committing")
    outer.__cause__ = OperationalError("COMMIT", {}, psycopg.errors.SerializationFailure("x"))
    assert is_concurrency_failure(outer)
    assert not is_concurrency_failure(RuntimeError("x"))
    assert not is_concurrency_failure(OperationalError("s", {}, psycopg.errors.DiskFull("x")))
