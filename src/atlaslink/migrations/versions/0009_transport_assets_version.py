"""transport assets give the registry a new version too (the ranking's per-process columns
hold each unit's air assets)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:10:00

The same triggers as 0004, on ``transport_assets``: operations.matching_columns caches which
units have an aircraft or a helicopter under the registry version, so a write there must give
a new version (docs/adr/0004-registry-version-and-process-caches.md). 0004's
``registry_version_bump()`` is reused on PostgreSQL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "transport_assets"
_SQLITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER registry_version_{TABLE} "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump()"
        )
    else:
        for verb in _SQLITE_VERBS:
            # The table name and verbs are the constants above, never input.
            op.execute(
                f"CREATE TRIGGER registry_version_{TABLE}_{verb.lower()} AFTER {verb} "  # noqa: S608
                f"ON {TABLE} BEGIN UPDATE registry_version "
                "SET token = lower(hex(randomblob(16))) WHERE id = 1; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS registry_version_{TABLE} ON {TABLE}")
    else:
        for verb in _SQLITE_VERBS:
            op.execute(f"DROP TRIGGER IF EXISTS registry_version_{TABLE}_{verb.lower()}")
