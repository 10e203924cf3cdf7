"""``atlaslink equipment list|export|import`` against a fresh database with demo equipment."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from atlaslink import db
from atlaslink.demo import seed
from atlaslink.demo.equipment import load_equipment
from tests.test_cli import cli_db, run  # noqa: F401  # the fixture is used by name


def test_list_export_import_as_a_user(cli_db: str, tmp_path: Path) -> None:  # noqa: F811
    assert run("db", "upgrade").exit_code == 0  # type: ignore[attr-defined]
    with db.unit_of_work() as s:
        seed.ensure_reference_data(s)
        seed.load_units(s)
        seed.create_demo_accounts(s, password="cli-password-123")
        assert load_equipment(s) > 300
    with db.unit_of_work() as s:
        assert load_equipment(s) == 0  # idempotent on restart
    r = run("equipment", "list", "--as", "duty.de", "--category", "counter_drone", "--near",
            "vienna", "--max-km", "800")  # fmt: skip
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert "AT-ADLER" in r.output  # type: ignore[attr-defined]
    out = tmp_path / "adler.csv"
    r = run("equipment", "export", str(out), "--as", "commander.at", "--unit", "AT-ADLER")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows and {row["unit_code"] for row in rows} == {"AT-ADLER"}
    r = run("equipment", "import", str(out), "--as", "commander.at")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    assert f"{len(rows)} unchanged" in r.output  # type: ignore[attr-defined]
    r = run("equipment", "import", str(out), "--as", "commander.de")
    assert r.exit_code == 2 and "only your own unit" in r.output  # type: ignore[attr-defined]
