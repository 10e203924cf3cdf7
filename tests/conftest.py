"""Test fixtures: a real database built by the migrations (SQLite or PostgreSQL), the demo
network loaded once, and every test rolled back.

``ATLASLINK_TEST_DATABASE_URL`` selects PostgreSQL (a server URL; a fresh database is created
and dropped); without it the tests run on a temporary SQLite file.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, sessionmaker

from atlaslink.app import create_app
from atlaslink.auth import service as auth
from atlaslink.auth.permissions import Role
from atlaslink.auth.principal import SYSTEM
from atlaslink.db import make_engine
from atlaslink.demo import seed
from atlaslink.migrate import upgrade
from atlaslink.models import Unit, User

PASSWORD = "test-password-123"


def totp_secret(username: str) -> str:
    return base64.b32encode(hashlib.sha256(username.encode()).digest()[:20]).decode()


def _server_url() -> str | None:
    return os.environ.get("ATLASLINK_TEST_DATABASE_URL") or None


@dataclass
class Database:
    url: str
    engine: Engine
    drop: object


def create_database(tmp: Path, name: str = "") -> tuple[str, object]:
    """A new empty database: a SQLite file, or a PostgreSQL database on the test server."""
    server = _server_url()
    if server is None:
        path = tmp / f"atlaslink-{name or uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: None
    import psycopg

    db_name = f"atlaslink_test_{uuid.uuid4().hex[:10]}"
    admin = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    base = admin.rsplit("/", 1)[0]
    return f"{base}/{db_name}", drop


def is_postgres() -> bool:
    return _server_url() is not None


def load_demo(engine: Engine) -> None:
    upgrade(engine)
    with Session(engine) as s:
        seed.ensure_reference_data(s)
        seed.load_units(s)
        seed.create_demo_accounts(
            s,
            password=PASSWORD,
            secrets_by_user={name: totp_secret(name) for name, _, _ in seed.DEMO_ACCOUNTS},
        )
        # Two more viewers for the authorization matrix: another country's unit, and the
        # contact point of a country that units list in their sharing agreements.
        fr = s.scalar(select(Unit.code).where(Unit.country_iso2 == "FR").order_by(Unit.id))
        for username, role, unit, country in (
            ("duty.fr", Role.DUTY_OFFICER, fr, None),
            ("ncp.at", Role.NATIONAL_CONTACT, None, "AT"),
        ):
            auth.create_user(
                s,
                SYSTEM,
                username=username,
                display_name=username,
                role=role,
                password=PASSWORD,
                unit_code=unit,
                country=country,
                totp_secret=totp_secret(username),
            )
        s.commit()


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    url, drop = create_database(tmp_path_factory.mktemp("db"), "suite")
    engine = make_engine(url)
    load_demo(engine)
    yield Database(url, engine, drop)
    engine.dispose()
    drop()  # type: ignore[operator]


@pytest.fixture
def conn(database: Database) -> Iterator[Connection]:
    """One outer transaction per test, rolled back at the end; the app commits savepoints."""
    connection = database.engine.connect()
    outer = connection.begin()
    yield connection
    outer.rollback()
    connection.close()


@pytest.fixture
def factory(conn: Connection) -> sessionmaker[Session]:
    return sessionmaker(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def db(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session:
        yield session


@pytest.fixture(scope="session")
def shared_app(database: Database):  # type: ignore[no-untyped-def]
    """One application for the whole run: FastAPI builds each route's dependency graph at the
    first request an application serves, which costs more than most tests."""
    return create_app(database.engine, sessionmaker(bind=database.engine))


@pytest.fixture
def app(shared_app, factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    """The shared application, serving this test's rolled-back transaction."""
    shared_app.state.sessionmaker = factory
    yield shared_app
    shared_app.state.sessionmaker = None


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c


def unit_id(db: Session, code: str) -> int:
    uid = db.scalar(select(Unit.id).where(Unit.code == code))
    assert uid is not None, code
    return uid


@pytest.fixture
def token_for(db: Session):  # type: ignore[no-untyped-def]
    """An API token for a user, committed to the test's transaction."""

    def make(username: str) -> str:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None, username
        issued = auth.create_token(db, user, "test")
        db.commit()
        return issued.token

    return make


@pytest.fixture
def api_as(app, token_for):  # type: ignore[no-untyped-def]
    """A client calling the API as the given user."""

    def make(username: str) -> TestClient:
        c = TestClient(app)
        c.headers["Authorization"] = f"Bearer {token_for(username)}"
        return c

    return make


def login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    """The real log-in flow: password, then a TOTP code."""
    page = client.get("/login")
    form_token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert form_token
    r = client.post(
        "/login",
        data={"username": username, "password": password, "form_token": form_token[1], "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    if r.headers["location"].startswith("/login/totp"):
        page = client.get(r.headers["location"])
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        r = client.post(
            "/login/totp",
            data={"code": pyotp.TOTP(totp_secret(username)).now(), "csrf_token": csrf[1]},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"


@pytest.fixture
def pages_as(app, db: Session):  # type: ignore[no-untyped-def]
    """A browser-like client with a logged-in session (second factor passed)."""

    def make(username: str) -> TestClient:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None
        new = auth.start_session(db, user, mfa_passed=True)
        db.commit()
        c = TestClient(app)
        c.cookies.set("atlaslink_session", new.token)
        return c

    return make


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m[1]
