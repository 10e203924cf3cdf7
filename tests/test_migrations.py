"""Migrations run up and down on the test database, and match the models."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from atlaslink.auth.principal import MATCHING_ENGINE
from atlaslink.db import make_engine
from atlaslink.migrate import alembic_config, upgrade
from atlaslink.models import Base, Unit
from atlaslink.sharing import matching_groups
from atlaslink.sharing.policy import load_agreements, visible_groups
from tests.conftest import create_database


def test_upgrade_downgrade_upgrade_and_no_drift(tmp_path: Path) -> None:
    url, drop = create_database(tmp_path, "migrations")
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert "audit_events" in inspect(engine).get_table_names()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert "units" not in inspect(engine).get_table_names()
        upgrade(engine)
        assert "units" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def test_0005_derives_matching_groups_from_the_stored_agreements(tmp_path: Path) -> None:
    """Agreements written before 0005 give units.matching_groups exactly what
    sharing.matching_groups.refresh would write."""
    url, drop = create_database(tmp_path, "matching-groups")
    engine = make_engine(url)
    agreements = {
        1: dict.fromkeys(("existence", "level", "package", "notice", "transport"), "network"),
        2: {
            "existence": "matching",
            "level": "listed",
            "package": "own_unit",
            "notice": "matching",
        },
        3: {"existence": "own_unit", "level": "network", "transport": "support_office"},
        4: {},
    }
    try:
        upgrade(engine, "0003")
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO countries VALUES ('BE', 'Belgium', 'eu')"))
            conn.execute(text("INSERT INTO networks VALUES (1, 'ATLAS', 'ATLAS', '')"))
            for unit_id, rules in agreements.items():
                conn.execute(
                    text(
                        "INSERT INTO units (id, code, name, network_id, country_iso2, "
                        "base_location, languages, competent_authority, created_at, updated_at) "
                        "VALUES (:id, :code, 'Unit', 1, 'BE', 'Base', '[]', '', :now, :now)"
                    ),
                    {"id": unit_id, "code": f"BE-U{unit_id}", "now": now},
                )
                for group, audience in rules.items():
                    conn.execute(
                        text(
                            "INSERT INTO sharing_rules (unit_id, field_group, audience, "
                            "updated_at) VALUES (:u, :g, :a, :now)"
                        ),
                        {"u": unit_id, "g": group, "a": audience, "now": now},
                    )
        upgrade(engine)
        with Session(engine) as s:
            have = dict(s.execute(select(Unit.id, Unit.matching_groups)).tuples().all())
            found = load_agreements(s, list(agreements))
            want = {
                i: matching_groups.mask(visible_groups(MATCHING_ENGINE, found[i]))
                for i in agreements
            }
        assert have == want
        assert have[1] == 31 and have[4] == 0
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]
