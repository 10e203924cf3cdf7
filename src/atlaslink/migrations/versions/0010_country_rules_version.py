"""country rules and bilateral agreements give the registry a new version too (the ranking
caches them per process)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:00:00

The same triggers as 0004 and 0009, on ``country_settings`` and ``bilateral_agreements``:
operations.matching caches every country's rules and every agreement under the registry
version, so a write to either must give a new version
(docs/adr/0004-registry-version-and-process-caches.md). 0004's ``registry_version_bump()`` is
reused on PostgreSQL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("country_settings", "bilateral_agreements")
_SQLITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgres:
            op.execute(
                f"CREATE TRIGGER registry_version_{table} "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump()"
            )
            continue
        for verb in _SQLITE_VERBS:
            # The table names and verbs are the constants above, never input.
            op.execute(
                f"CREATE TRIGGER registry_version_{table}_{verb.lower()} AFTER {verb} "  # noqa: S608
                f"ON {table} BEGIN UPDATE registry_version "
                "SET token = lower(hex(randomblob(16))) WHERE id = 1; END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS registry_version_{table} ON {table}")
            continue
        for verb in _SQLITE_VERBS:
            op.execute(f"DROP TRIGGER IF EXISTS registry_version_{table}_{verb.lower()}")
