"""Accounts, log-in with second factor and lock-out, web sessions and API tokens."""

from __future__ import annotations

import contextlib
import hashlib
import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from atlaslink.audit import service as audit
from atlaslink.auth.permissions import COUNTRY_ROLES, UNIT_ROLES, Role, requires_totp
from atlaslink.auth.principal import Principal
from atlaslink.config import get_settings
from atlaslink.errors import Conflict, Invalid, Locked, NotFound, Unauthenticated
from atlaslink.models import ApiToken, Country, Unit, User, WebSession, utcnow

# argon2id with the library's RFC 9106 "low memory" profile.
_hasher = PasswordHasher()
# Burn the same time for unknown users as for known ones.
_DUMMY_HASH = _hasher.hash("not-a-real-password")

MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "atl_"  # noqa: S105 - a public marker that tells tokens apart, not a secret


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def principal_of(user: User) -> Principal:
    country = user.country_iso2
    return Principal.for_user(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        unit_id=user.unit_id,
        country=country,
    )


def _user_snapshot(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "role": user.role,
        "unit_id": user.unit_id,
        "country": user.country_iso2,
        "disabled": user.disabled,
        "totp_enrolled": user.totp_enrolled,
    }


# --- accounts ---------------------------------------------------------------------------------


def create_user(
    session: Session,
    actor: Principal,
    *,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    email: str = "",
    unit_code: str | None = None,
    country: str | None = None,
    totp_secret: str | None = None,
) -> User:
    username = username.strip().lower()
    if not username or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise Invalid("A username uses letters, digits, '.', '-' or '_'.")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"The username '{username}' is taken.")
    unit: Unit | None = None
    if role in UNIT_ROLES:
        if not unit_code:
            raise Invalid(f"A {role.value} belongs to a unit: give its code.")
        unit = session.scalar(select(Unit).where(Unit.code == unit_code.upper()))
        if unit is None:
            raise Invalid(f"There is no unit with code '{unit_code}'.")
        country = unit.country_iso2
    elif role in COUNTRY_ROLES:
        if not country:
            raise Invalid(f"A {role.value} belongs to a country: give its ISO code.")
        country = country.upper()
        if session.get(Country, country) is None:
            raise Invalid(f"There is no member country '{country}'.")
    else:
        country = None
    user = User(
        username=username,
        display_name=display_name.strip() or username,
        email=email.strip(),
        role=role.value,
        unit_id=unit.id if unit else None,
        country_iso2=country,
        password_hash=hash_password(password),
        totp_secret=totp_secret,
        totp_enrolled=totp_secret is not None,
    )
    session.add(user)
    session.flush()
    audit.append(session, actor, "user.create", "user", user.id, after=_user_snapshot(user))
    return user


def set_disabled(session: Session, actor: Principal, username: str, disabled: bool) -> User:
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise NotFound(f"There is no user '{username}'.")
    before = _user_snapshot(user)
    user.disabled = disabled
    if disabled:
        for s in session.scalars(
            select(WebSession).where(WebSession.user_id == user.id, WebSession.ended_at.is_(None))
        ):
            s.ended_at = utcnow()
    session.flush()
    action = "user.disable" if disabled else "user.enable"
    audit.append(session, actor, action, "user", user.id, before=before, after=_user_snapshot(user))
    return user


def list_users(session: Session, *, offset: int = 0, limit: int = 50) -> tuple[list[User], int]:
    total = session.scalar(select(func.count(User.id))) or 0
    users = session.scalars(select(User).order_by(User.username).offset(offset).limit(limit)).all()
    return list(users), total


# --- log-in -----------------------------------------------------------------------------------

LOGIN_FAILED = "Unknown username or wrong password."


def _is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def _register_failure(session: Session, user: User, now: datetime, what: str) -> None:
    settings = get_settings()
    audit.append(
        session, principal_of(user), "auth.login_failed", "user", user.id, after={"factor": what}
    )
    user.failed_attempts += 1
    if user.failed_attempts >= settings.lockout_threshold:
        user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
        user.failed_attempts = 0
        audit.append(
            session, principal_of(user), "auth.lockout", "user", user.id, after={"reason": what}
        )
    session.flush()


def check_password(session: Session, username: str, password: str) -> User:
    """First factor. Failures count towards the lock-out; the caller must commit them."""
    now = utcnow()
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or user.disabled:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        audit.append(
            session,
            Principal(kind="system", label="anonymous"),
            "auth.login_failed",
            "user",
            username.strip().lower()[:100],
            after={"factor": "password", "reason": "disabled" if user else "unknown user"},
        )
        raise Unauthenticated(LOGIN_FAILED)
    if _is_locked(user, now):
        raise Locked("Too many failed attempts: this account is locked for a while. Try later.")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _register_failure(session, user, now, "password")
        raise Unauthenticated(LOGIN_FAILED) from None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def check_totp(session: Session, user: User, code: str) -> None:
    """Second factor: a fresh code, one step of clock drift allowed, never the same code twice."""
    now = utcnow()
    if _is_locked(user, now):
        raise Locked("Too many failed attempts: this account is locked for a while. Try later.")
    if not user.totp_secret:
        raise Invalid("No authenticator is enrolled for this account.")
    totp = pyotp.TOTP(user.totp_secret)
    code = code.strip().replace(" ", "")
    step_now = int(now.timestamp()) // totp.interval
    matched: int | None = None
    for step in (step_now - 1, step_now, step_now + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            matched = step
    if matched is None or (user.totp_last_step is not None and matched <= user.totp_last_step):
        _register_failure(session, user, now, "totp")
        raise Unauthenticated("That code is not valid. Enter the current code from your app.")
    user.totp_last_step = matched
    user.failed_attempts = 0
    session.flush()


def needs_totp(user: User) -> bool:
    return requires_totp(Role(user.role)) or user.totp_enrolled


def begin_enrolment(session: Session, user: User) -> str:
    if user.totp_enrolled:
        raise Conflict("An authenticator is already enrolled.")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
        session.flush()
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    assert user.totp_secret
    return pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.username, issuer_name=get_settings().totp_issuer
    )


def qr_svg(uri: str) -> str:
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=5, xmldecl=False, svgns=True)
    return buf.getvalue().decode()


def finish_enrolment(session: Session, user: User, code: str) -> None:
    check_totp(session, user, code)
    user.totp_enrolled = True
    session.flush()
    audit.append(session, principal_of(user), "auth.totp_enrol", "user", user.id)


# --- web sessions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSession:
    token: str
    record: WebSession


def start_session(session: Session, user: User, *, mfa_passed: bool) -> NewSession:
    token = secrets.token_urlsafe(32)
    record = WebSession(
        token_hash=sha256(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        mfa_passed=mfa_passed,
    )
    session.add(record)
    session.flush()
    if mfa_passed:
        audit.append(session, principal_of(user), "auth.login", "user", user.id)
    return NewSession(token, record)


def load_session(session: Session, token: str) -> tuple[WebSession, User] | None:
    """The live session for a cookie, or None when unknown, ended, idle or too old."""
    settings = get_settings()
    now = utcnow()
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == sha256(token))
    ).first()
    if row is None:
        return None
    ws, user = row._tuple()
    if (
        ws.ended_at is not None
        or user.disabled
        or now - ws.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
        or now - ws.created_at > timedelta(minutes=settings.session_absolute_minutes)
    ):
        if ws.ended_at is None:
            ws.ended_at = now
        return None
    # Touch at most once a minute so that reads do not write on every request.
    if now - ws.last_seen_at > timedelta(minutes=1):
        ws.last_seen_at = now
    return ws, user


def end_session(session: Session, ws: WebSession) -> None:
    ws.ended_at = utcnow()
    session.flush()


def log_out(session: Session, ws: WebSession, user: User) -> None:
    """The person ends their session: recorded like the log-in that began it."""
    end_session(session, ws)
    audit.append(session, principal_of(user), "auth.logout", "user", user.id)


# --- API tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str
    record: ApiToken


def create_token(
    session: Session, user: User, name: str, *, expires_days: int | None = None
) -> IssuedToken:
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("Give the token a name of 1 to 100 characters.")
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiToken(
        user_id=user.id,
        name=name,
        prefix=prefix,
        token_hash=sha256(token),
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(record)
    session.flush()
    audit.append(
        session,
        principal_of(user),
        "token.create",
        "api_token",
        record.id,
        after={"name": name, "prefix": prefix},
    )
    return IssuedToken(token, record)


def list_tokens(session: Session, user_id: int) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    record = session.get(ApiToken, token_id)
    if record is None or record.user_id != user.id:
        raise NotFound("There is no such token.")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.flush()
        audit.append(
            session,
            principal_of(user),
            "token.revoke",
            "api_token",
            record.id,
            after={"name": record.name, "prefix": record.prefix},
        )
    return record


def authenticate_token(session: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    now = utcnow()
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == sha256(token))
    ).first()
    if row is None:
        return None
    record, user = row._tuple()
    if (
        record.revoked_at is not None
        or (record.expires_at is not None and record.expires_at <= now)
        or user.disabled
    ):
        return None
    if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=5):
        record.last_used_at = now
    return user
