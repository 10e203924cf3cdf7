"""Migrations run up and down on the test database, and match the models."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from atlaslink.db import make_engine
from atlaslink.migrate import alembic_config, upgrade
from atlaslink.models import Base
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
