"""The operator's command line, against a fresh database of its own."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from atlaslink import config, db
from atlaslink.cli import app
from atlaslink.demo import seed
from tests.conftest import create_database, totp_secret

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
        "unit_code,capability,level,package_size\nAT-ADLER,canine,2,6\nDE-FALKE,drones,3,8\n"
    )
    r = run("import", str(good), "--as", "support")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert "applied 2 rows" in r.output  # type: ignore[attr-defined]
    assert "0 created, 0 updated, 2 unchanged" in run("import", str(good), "--as", "support").output  # type: ignore[attr-defined]
    bad = tmp_path / "bad.csv"
    bad.write_text("unit_code,capability,level\nAT-ADLER,canine,9\n")
    r = run("import", str(bad), "--as", "support")
    assert (
        r.exit_code == 2 and "row 2, column level" in r.output and "nothing was applied" in r.output
    )  # type: ignore[attr-defined]
    out = tmp_path / "reg.xlsx"
    r = run("export", str(out), "--as", "observer")
    assert r.exit_code == 0 and out.stat().st_size > 1000  # type: ignore[attr-defined]
    assert run("export", str(tmp_path / "x.pdf"), "--as", "observer").exit_code == 1  # type: ignore[attr-defined]
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_prints_logins_and_serves(cli_db: str, tmp_path: Path) -> None:
    """The README's first command: demo data, printed log-ins, a server that answers."""
    port = _free_port()
    env = {**os.environ, "ATLASLINK_DATABASE_URL": cli_db, "COLUMNS": "60"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "atlaslink.cli", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
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
    for username in ("admin", "support", "commander.at", "duty.at", "ncp.de", "observer"):
        assert username in output
    assert "TOTP" in output and "Traceback" not in output
    # Even in a narrow terminal every credential is printed whole.
    assert len(re.findall(r"TOTP secret: [A-Z2-7]{32}\s", output)) >= 9, output
    assert len(re.findall(r"password: +\S{16}\s", output)) >= 9, output
