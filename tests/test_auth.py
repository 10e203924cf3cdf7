"""Log-in with second factor, lock-out, sessions, CSRF and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from atlaslink.auth import service as auth
from atlaslink.auth.permissions import ROLE_PERMISSIONS, Permission, Role, requires_totp
from atlaslink.auth.principal import SYSTEM
from atlaslink.models import User, WebSession
from tests.conftest import PASSWORD, csrf_of, login, totp_secret


def _password_step(client: TestClient, username: str, password: str) -> TestClient:
    page = client.get("/login")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert token
    return client.post(  # type: ignore[return-value]
        "/login",
        data={"username": username, "password": password, "form_token": token[1]},
        follow_redirects=False,
    )


def test_login_needs_password_and_totp(client: TestClient) -> None:
    r = _password_step(client, "duty.at", PASSWORD)
    assert r.status_code == 303 and r.headers["location"].startswith("/login/totp")
    # Half logged in: no unit data yet.
    assert client.get("/units", follow_redirects=False).headers["location"] == "/login/totp"
    page = client.get("/login/totp")
    r = client.post(
        "/login/totp",
        data={"code": pyotp.TOTP(totp_secret("duty.at")).now(), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Unit directory" in client.get("/units").text


def test_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    r = _password_step(client, "duty.at", PASSWORD)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_wrong_password_is_refused_without_saying_why(client: TestClient) -> None:
    r = _password_step(client, "duty.at", "wrong-password-xx")
    assert r.status_code == 401
    assert "Unknown username or wrong password." in r.text
    r = _password_step(client, "nobody.here", "wrong-password-xx")
    assert "Unknown username or wrong password." in r.text


def test_repeated_failures_lock_the_account(client: TestClient, db: Session) -> None:
    for _ in range(5):
        _password_step(client, "duty.de", "wrong-password-xx")
    r = _password_step(client, "duty.de", PASSWORD)
    assert r.status_code == 429
    assert "locked" in r.text
    user = db.scalar(select(User).where(User.username == "duty.de"))
    assert user is not None and user.locked_until is not None


def test_a_totp_code_is_accepted_once(client: TestClient, db: Session) -> None:
    login(client, "duty.at")
    other = TestClient(client.app)
    r = _password_step(other, "duty.at", PASSWORD)
    page = other.get("/login/totp")
    r = other.post(
        "/login/totp",
        data={"code": pyotp.TOTP(totp_secret("duty.at")).now(), "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 401
    assert "not valid" in r.text


def test_new_user_enrols_totp_with_a_qr_code(client: TestClient, db: Session) -> None:
    auth.create_user(
        db,
        SYSTEM,
        username="new.duty",
        display_name="New",
        role=Role.DUTY_OFFICER,
        password=PASSWORD,
        unit_code="AT-ADLER",
    )
    db.commit()
    r = _password_step(client, "new.duty", PASSWORD)
    assert r.headers["location"].startswith("/account/enrol")
    page = client.get("/account/enrol")
    assert "<svg" in page.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret
    r = client.post("/account/enrol", data={"code": "000000", "csrf_token": csrf_of(page.text)})
    assert r.status_code == 401 and "<svg" in r.text
    r = client.post(
        "/account/enrol",
        data={"code": pyotp.TOTP(secret[1]).now(), "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert client.get("/units").status_code == 200
    db.expire_all()
    assert db.scalar(select(User.totp_enrolled).where(User.username == "new.duty")) is True


def test_every_role_with_unit_data_requires_totp() -> None:
    unit_data = {
        Permission.UNITS_READ,
        Permission.UNITS_EDIT_OWN,
        Permission.CAPABILITIES_EDIT_OWN,
        Permission.SHARING_EDIT_OWN,
        Permission.REGISTRY_IMPORT,
    }
    for role in Role:
        assert requires_totp(role) == bool(ROLE_PERMISSIONS[role] & unit_data), role
    assert requires_totp(Role.DUTY_OFFICER) and requires_totp(Role.SUPPORT_OFFICE)
    assert requires_totp(Role.OBSERVER) and not requires_totp(Role.PLATFORM_ADMIN)


@pytest.mark.parametrize(("field", "minutes"), [("last_seen_at", 31), ("created_at", 12 * 60 + 1)])
def test_sessions_expire_when_idle_or_too_old(
    pages_as, db: Session, field: str, minutes: int
) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("duty.at")
    assert c.get("/units").status_code == 200
    ws = db.scalars(select(WebSession).order_by(WebSession.id.desc())).first()
    assert ws is not None
    setattr(ws, field, getattr(ws, field) - timedelta(minutes=minutes))
    if field == "created_at":
        ws.last_seen_at = ws.last_seen_at  # still active: only the absolute limit applies
    db.commit()
    r = c.get("/units", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_forms_need_the_csrf_token(pages_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("commander.at")
    uid = db.scalar(select(User.unit_id).where(User.username == "commander.at"))
    r = c.post(f"/units/{uid}/sharing", data={"existence.audience": "network"})
    assert r.status_code == 403
    assert "expired" in r.text and "Traceback" not in r.text


def test_logout_ends_the_session(pages_as, api_as) -> None:  # type: ignore[no-untyped-def]
    c = pages_as("duty.at")
    page = c.get("/")
    c.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert c.get("/units", follow_redirects=False).status_code == 303
    # Recorded, as the log-in was.
    events = api_as("support").get("/api/v1/audit", params={"action": "auth.logout"})
    assert events.status_code == 200 and [e["actor"] for e in events.json()["items"]] == [
        "duty.at"
    ], events.text


def test_api_tokens_are_created_listed_revoked_and_stored_hashed(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    api = api_as("duty.at")
    r = api.post("/api/v1/tokens", json={"name": "ops script", "expires_days": 30})
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    assert token.startswith("atl_")
    listed = api.get("/api/v1/tokens").json()
    assert any(t["name"] == "ops script" and "token" not in t for t in listed["items"])
    # Paginated like every list.
    api.post("/api/v1/tokens", json={"name": "second script"})
    first = api.get("/api/v1/tokens", params={"per_page": 1}).json()
    second = api.get("/api/v1/tokens", params={"per_page": 1, "page": 2}).json()
    assert first["total"] == second["total"] >= 2 and first["per_page"] == 1
    assert [t["name"] for t in first["items"]] == ["second script"]  # newest first
    assert [t["name"] for t in second["items"]] == ["ops script"]
    # Only the hash is stored.
    from atlaslink.models import ApiToken

    stored = db.scalar(select(ApiToken).where(ApiToken.id == created["id"]))
    assert (
        stored is not None
        and token not in stored.token_hash
        and stored.token_hash == auth.sha256(token)
    )
    other = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    assert other.get("/api/v1/me").json()["username"] == "duty.at"
    assert api.delete(f"/api/v1/tokens/{created['id']}").status_code == 200
    r = other.get("/api/v1/me")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "The API token is unknown, expired or revoked."


def test_api_without_token_answers_problem_details(client: TestClient) -> None:
    r = client.get("/api/v1/units")
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == 401 and body["title"] and "Bearer" in body["detail"]


def test_disabled_user_loses_api_access(api_as, db: Session) -> None:  # type: ignore[no-untyped-def]
    api = api_as("observer")
    assert api.get("/api/v1/me").status_code == 200
    admin = api_as("admin")
    assert admin.post("/api/v1/users/observer/disable").status_code == 200
    assert api.get("/api/v1/me").status_code == 401


def test_only_admins_manage_users(api_as) -> None:  # type: ignore[no-untyped-def]
    assert api_as("support").get("/api/v1/users").status_code == 403
    admin = api_as("admin")
    assert admin.get("/api/v1/users").json()["total"] >= 9
    r = admin.post(
        "/api/v1/users", json={"username": "x", "role": "duty_officer", "password": "short"}
    )
    assert r.status_code == 422
    r = admin.post(
        "/api/v1/users",
        json={
            "username": "cmd.x",
            "role": "unit_commander",
            "password": PASSWORD,
            "unit_code": "NOPE-1",
        },
    )
    assert r.status_code == 422 and "no unit" in r.json()["detail"]


def test_logins_and_failures_are_audited(client: TestClient, db: Session) -> None:
    from atlaslink.models import AuditEvent

    _password_step(client, "duty.at", "wrong-password-xx")
    _password_step(client, "ghost", "wrong-password-xx")
    login(client, "duty.at")
    db.expire_all()
    events = [
        (e.action, e.actor_label)
        for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(5))
    ]
    assert ("auth.login", "duty.at") in events
    assert ("auth.login_failed", "duty.at") in events and (
        "auth.login_failed",
        "anonymous",
    ) in events
