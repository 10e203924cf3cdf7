"""The operator's command line, against a fresh database of its own."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from atlaslink import config, db
from atlaslink.auth import service as auth
from atlaslink.cli import app
from atlaslink.demo import seed
from atlaslink.errors import DomainError
from atlaslink.models import AssistanceRequest, CountrySettings, User
from atlaslink.operations import views
from tests.conftest import create_database, is_postgres, totp_secret

runner = CliRunner()


def _clear_caches() -> None:
    config.get_settings.cache_clear()
    db.get_sessionmaker.cache_clear()
    db.get_engine.cache_clear()


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url, drop = create_database(tmp_path, "cli")
    monkeypatch.setenv("ATLASLINK_DATABASE_URL", url)
    _clear_caches()
    yield url
    db.get_engine().dispose()
    _clear_caches()
    drop()  # type: ignore[operator]


def run(*args: str, **env: str) -> object:
    result = runner.invoke(app, list(args), env=env or None)
    assert "Traceback" not in result.output
    return result


def _loaded() -> None:
    assert run("db", "upgrade").exit_code == 0  # type: ignore[attr-defined]
    with db.unit_of_work() as s:
        seed.ensure_reference_data(s)
        seed.load_units(s)
        seed.create_demo_accounts(
            s, password="cli-password-123", secrets_by_user={"support": totp_secret("support")}
        )


def test_help_lists_the_commands() -> None:
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("serve", "demo", "db", "users", "tokens", "import", "export", "audit"):
        assert cmd in out


def test_users_create_list_disable(cli_db: str) -> None:
    _loaded()
    r = run(
        "users",
        "create",
        "eve.duty",
        "--role",
        "duty_officer",
        "--unit",
        "AT-ADLER",
        "--display-name",
        "Eve",
        ATLASLINK_NEW_PASSWORD="a-long-password-1",
    )
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert "eve.duty" in run("users", "list").output  # type: ignore[attr-defined]
    r = run(
        "users",
        "create",
        "eve.duty",
        "--role",
        "duty_officer",
        "--unit",
        "AT-ADLER",
        ATLASLINK_NEW_PASSWORD="a-long-password-1",
    )
    assert r.exit_code == 1 and "taken" in r.output  # type: ignore[attr-defined]
    r = run(
        "users",
        "create",
        "bob",
        "--role",
        "unit_commander",
        "--unit",
        "NO-SUCH",
        ATLASLINK_NEW_PASSWORD="a-long-password-1",
    )
    assert r.exit_code == 1 and "no unit with code" in r.output  # type: ignore[attr-defined]
    assert run("users", "disable", "eve.duty").exit_code == 0  # type: ignore[attr-defined]
    assert "disabled" in run("users", "list").output  # type: ignore[attr-defined]
    r = run("tokens", "create", "support", "--name", "sync")
    assert r.exit_code == 0 and r.output.strip().startswith("atl_")  # type: ignore[attr-defined]


def test_import_export_and_verify(cli_db: str, tmp_path: Path) -> None:
    _loaded()
    good = tmp_path / "caps.csv"
    good.write_text(
        "unit_code,capability,level,package_size\nAT-ADLER,canine,2,6\nAT-ADLER,drones,3,8\n"
    )
    r = run("import", str(good), "--as", "commander.at")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert "applied 2 rows" in r.output  # type: ignore[attr-defined]
    assert (
        "0 created, 0 updated, 2 unchanged"
        in run("import", str(good), "--as", "commander.at").output
    )  # type: ignore[attr-defined]
    bad = tmp_path / "bad.csv"
    bad.write_text("unit_code,capability,level\nAT-ADLER,canine,9\n")
    r = run("import", str(bad), "--as", "commander.at")
    assert (
        r.exit_code == 2 and "row 2, column level" in r.output and "nothing was applied" in r.output
    )  # type: ignore[attr-defined]
    out = tmp_path / "reg.xlsx"
    r = run("export", str(out), "--as", "observer")
    assert r.exit_code == 0 and out.stat().st_size > 1000  # type: ignore[attr-defined]
    assert run("export", str(tmp_path / "x.pdf"), "--as", "observer").exit_code == 1  # type: ignore[attr-defined]
    contacts = tmp_path / "contacts.csv"
    r = run("export", str(contacts), "--as", "commander.at", "--table", "contacts")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    lines = contacts.read_text().splitlines()
    assert lines[0] == "unit_code,kind,label,value" and any(
        x.startswith("AT-ADLER,") for x in lines
    )
    r = run("export", str(contacts), "--as", "commander.at", "--table", "people")
    assert r.exit_code != 0 and "capabilities, units, contacts or transport" in r.output  # type: ignore[attr-defined]
    r = run("audit", "verify")
    assert r.exit_code == 0 and "intact" in r.output, r.output  # type: ignore[attr-defined]
    engine = db.get_engine()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER audit_events_no_change ON audit_events"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET actor_label = 'mallory' WHERE seq = 2"))
    r = run("audit", "verify")
    assert r.exit_code == 1 and "entry 2" in r.output  # type: ignore[attr-defined]


def test_database_errors_are_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLASLINK_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    _clear_caches()
    try:
        r = run("db", "upgrade")
        assert r.exit_code == 1 and "cannot use the database" in r.output  # type: ignore[attr-defined]
    finally:
        _clear_caches()


def test_a_collision_with_another_change_says_run_it_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A deadlock or serialization failure the database reports is not "cannot use the
    database": the operator is told nothing was saved and to run the command again."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    from atlaslink.cli import handled

    for orig, expected in (
        (psycopg.errors.DeadlockDetected("deadlock detected"), "Run the command again"),
        (psycopg.errors.SerializationFailure("could not serialize"), "Run the command again"),
        (psycopg.errors.DiskFull("no space left"), "cannot use the database"),
    ):
        with pytest.raises(typer.Exit) as exit_, handled():
            raise OperationalError("UPDATE ...", {}, orig)
        assert exit_.value.exit_code == 1
        said = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
        assert expected in said and "Traceback" not in said, said


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_demo(env: dict[str, str], cwd: Path) -> str:
    """``atlaslink demo`` until its server answers a log-in page; what it printed."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "atlaslink.cli", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.3)
        assert ready, "demo server did not start"
        login = httpx.get(f"http://127.0.0.1:{port}/login", timeout=5)
        assert login.status_code == 200 and "Log in" in login.text
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    return output


def test_demo_prints_logins_and_serves(cli_db: str, tmp_path: Path) -> None:
    """The README's first command: demo data, printed log-ins, a server that answers."""
    output = _run_demo({**os.environ, "ATLASLINK_DATABASE_URL": cli_db, "COLUMNS": "60"}, tmp_path)
    for username in ("admin", "support", "commander.at", "duty.at", "ncp.de", "observer"):
        assert username in output
    assert "TOTP" in output and "Traceback" not in output
    # Even in a narrow terminal every credential is printed whole.
    assert len(re.findall(r"TOTP secret: [A-Z2-7]{32}\s", output)) >= 9, output
    assert len(re.findall(r"password: +\S{16}\s", output)) >= 9, output


@pytest.mark.skipif(is_postgres(), reason="the embedded database: once, on the SQLite run")
def test_demo_never_empties_the_database_serve_keeps(tmp_path: Path) -> None:
    """Without ATLASLINK_DATABASE_URL the demo starts afresh in a file of its own: the one
    `atlaslink serve` keeps its data in is left as it was."""
    kept = tmp_path / "var" / "atlaslink.db"
    kept.parent.mkdir()
    kept.write_bytes(b"the unit data of a real installation")
    env = {k: v for k, v in os.environ.items() if k != "ATLASLINK_DATABASE_URL"}
    for _ in range(2):  # and again: its own file is emptied each time, nothing else
        output = _run_demo({**env, "COLUMNS": "200"}, tmp_path)
        assert "commander.at" in output and "Traceback" not in output
    assert kept.read_bytes() == b"the unit data of a real installation"
    with sqlite3.connect(tmp_path / "var" / "demo.db") as demo_db:
        assert demo_db.execute("SELECT count(*) FROM units").fetchone()[0] >= 38


# --- country rules, agreements, requests (and the demo exercise they show) --------------------


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables at a width where no cell wraps (the runner is not a terminal)."""
    from rich.console import Console

    from atlaslink import cli

    monkeypatch.setattr(cli, "out", Console(width=250))


def _with_exercise() -> str:
    _loaded()
    with db.unit_of_work() as s:
        assert seed.load_rules(s) == 8
        rid = seed.load_operation(s)
        assert rid is not None
        ref = s.scalar(select(AssistanceRequest.reference).where(AssistanceRequest.id == rid))
    assert ref is not None
    return ref


def test_demo_exercise_is_loaded_once_and_every_demo_reader_sees_it(cli_db: str) -> None:
    ref = _with_exercise()
    with db.unit_of_work() as s:
        assert seed.load_rules(s) == 0 and seed.load_operation(s) is None  # idempotent
        assert s.scalar(select(func.count()).select_from(AssistanceRequest)) == 1
        nl = s.get(CountrySettings, "NL")
        assert nl is not None and nl.requires_bilateral_agreement
        seen = {}
        for user in s.scalars(select(User)):
            try:
                seen[user.username] = views.find_request(s, auth.principal_of(user), ref)
            except DomainError:
                continue
    assert set(seen) == {name for name, _, _ in seed.DEMO_ACCOUNTS} - {"admin"}
    r = seen["duty.de"]
    assert r.exercise and r.status == "PARTIALLY_COVERED"
    assert {a.unit.code: a.status for a in r.addressees} == {
        "AT-ADLER": "ACCEPTED",
        "NL-REIGER": "ACKNOWLEDGED",
        "BE-HERMELIJN": "AWAITING_ACK",
    }
    (offer,) = r.offers
    assert offer.status == "ACCEPTED" and offer.arrangement is not None
    assert offer.arrangement.liaison_officer and offer.arrangement.requester_confirmed_at is None
    assert r.lines[0].coverage.committed == 6 and r.lines[0].coverage.coverage == "partial"
    # Made through the services: a real timeline, national gate included, and an intact chain.
    from atlaslink.operations.policy import get_visible

    with db.unit_of_work() as s:
        user = s.scalar(select(User).where(User.username == "duty.de"))
        assert user is not None
        p = auth.principal_of(user)
        req, inv = get_visible(s, p, r.id)
        kinds = [e.kind for e in views.visible_events(s, p, req, inv)]
    for k in ("request.national_approval", "request.approved", "offer.accepted"):
        assert k in kinds
    assert run("audit", "verify").exit_code == 0  # type: ignore[attr-defined]


def test_requests_list_and_show(cli_db: str, wide: None) -> None:
    ref = _with_exercise()
    r = run("requests", "list", "--as", "duty.de", "--status", "live")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert ref in r.output and "EXERCISE" in r.output and "1 in all" in r.output  # type: ignore[attr-defined]
    r = run("requests", "list", "--as", "duty.de", "--status", "closed")
    assert ref not in r.output and "0 in all" in r.output  # type: ignore[attr-defined]
    assert "page 2 of 1" in run("requests", "list", "--as", "duty.de", "--page", "2").output  # type: ignore[attr-defined]
    r = run("requests", "list", "--as", "admin")
    assert r.exit_code == 1 and "requests:read" in r.output  # type: ignore[attr-defined]
    # The offering unit sees its offer's terms…
    r = run("requests", "show", ref, "--as", "duty.at")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    out = r.output  # type: ignore[attr-defined]
    assert f"{ref}  EXERCISE  PARTIALLY_COVERED" in out
    assert "8 requested: offered 6, committed 6, on site 0 — partial" in out
    assert "NL-REIGER (NL) ring 0: ACKNOWLEDGED" in out and "BE-HERMELIJN" in out
    assert "AT-ADLER offer: ACCEPTED; line 1: 6 (accepted 6)" in out
    assert "rail-breaching kit" in out and "arrangements revision 2" in out
    # …another addressed unit sees the same picture without them, by id as well.
    rid = out.split("(id ")[1].split(")")[0]
    other = run("requests", "show", rid, "--as", "commander.nl").output  # type: ignore[attr-defined]
    assert "AT-ADLER offer: ACCEPTED" in other and "rail-breaching" not in other
    assert "arrangements" not in other
    r = run("requests", "show", "AR-1999-00001", "--as", "duty.de")
    assert r.exit_code == 1 and "No request AR-1999-00001" in r.output  # type: ignore[attr-defined]
    r = run("requests", "show", ref, "--as", "nobody")
    assert r.exit_code == 1 and "no active user" in r.output  # type: ignore[attr-defined]


def test_rules_and_agreements(cli_db: str, wide: None) -> None:
    _with_exercise()
    r = run("rules", "show", "NL", "--as", "observer")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert "Bilateral agreement required with the other country: yes" in r.output  # type: ignore[attr-defined]
    assert "You may change them: no" in r.output  # type: ignore[attr-defined]
    table = run("rules", "show", "--as", "support").output  # type: ignore[attr-defined]
    assert "UK United Kingdom" in table and "NL Netherlands" in table and "AT Austria" not in table
    r = run("rules", "set", "NL", "--no-bilateral-agreement", "--as", "observer")
    assert r.exit_code == 1 and "support office" in r.output  # type: ignore[attr-defined]
    r = run("rules", "set", "AT", "--ban-foreign-arms", "--note", "test", "--as", "support")
    assert r.exit_code == 0 and "rules of AT saved" in r.output, r.output  # type: ignore[attr-defined]
    assert (
        "As host, bans foreign officers' arms: yes"
        in run("rules", "show", "AT", "--as", "duty.de").output
    )  # type: ignore[attr-defined]
    assert run("rules", "set", "DE", "--no-national-approval", "--as", "ncp.de").exit_code == 0  # type: ignore[attr-defined]
    assert run("rules", "set", "AT", "--national-approval", "--as", "ncp.de").exit_code == 1  # type: ignore[attr-defined]
    r = run("rules", "set", "XX", "--ban-foreign-arms", "--as", "support")
    assert r.exit_code == 1 and "No country 'XX'" in r.output  # type: ignore[attr-defined]
    r = run("rules", "set", "NL", "--as", "support")
    assert r.exit_code == 1 and "nothing to change" in r.output  # type: ignore[attr-defined]

    listed = run("agreements", "list", "--country", "NL", "--as", "observer").output  # type: ignore[attr-defined]
    assert "Demo agreement DE-NL on special intervention support" in listed
    assert "expired" in listed and "4 in all" in listed
    r = run("agreements", "add", "Test pact", "de", "at", "--from", "2024-01-01", "--as", "ncp.de")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert "AT-DE, in_force" in r.output  # type: ignore[attr-defined]
    new_id = r.output.split("agreement ")[1].split(":")[0]  # type: ignore[attr-defined]
    r = run("agreements", "add", "Alone", "DE", "DE", "--as", "support")
    assert r.exit_code == 1 and "country_b: an agreement needs two countries" in r.output  # type: ignore[attr-defined]
    r = run("agreements", "add", "x", "DE", "AT", "--as", "support")
    assert r.exit_code == 1 and "name:" in r.output and "Traceback" not in r.output  # type: ignore[attr-defined]
    r = run("agreements", "retire", new_id, "--on", "2023-12-31", "--as", "support")
    assert r.exit_code == 1 and "cannot end before it starts" in r.output  # type: ignore[attr-defined]
    r = run("agreements", "retire", new_id, "--reason", "superseded", "--as", "observer")
    assert r.exit_code == 1  # type: ignore[attr-defined]
    r = run("agreements", "retire", new_id, "--reason", "superseded", "--as", "support")
    assert r.exit_code == 0 and f"agreement {new_id} (Test pact) ends on" in r.output  # type: ignore[attr-defined]
    assert "in force" in run("agreements", "list", "--in-force", "--as", "support").output  # type: ignore[attr-defined]
    assert run("audit", "verify").exit_code == 0  # type: ignore[attr-defined]


def test_demo_partner_receives_the_exercise_as_its_unit_may_see_it(
    cli_db: str, tmp_path: Path
) -> None:
    _loaded()
    drop = tmp_path / "drop"
    with db.unit_of_work() as s:
        assert seed.load_rules(s) == 8
        assert seed.load_partners(s, drop) == 1
        assert seed.load_partners(s, drop) == 0  # idempotent
        assert seed.load_operation(s) is not None
    assert run("worker", "--once").exit_code == 0  # type: ignore[attr-defined]
    files = sorted(drop.glob("*.xml"))
    kinds = {f.name.split("_")[2] for f in files}
    assert "RequestResource" in kinds and "ResponseToRequestResource" in kinds
    body = "".join(f.read_text() for f in files)
    # The partner reads as BE-HERMELIJN: it sees that Adler offered, never Adler's terms.
    assert "AT-ADLER" in body and "rail-breaching" not in body and "Own costs" not in body
