"""registry version (a token that every write to the tables listings read changes); the audit
head remembers the previous tip

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:30:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported: a migration must not change when the models do.
TABLES = (
    "units",
    "networks",
    "unit_contacts",
    "capability_entries",
    "sharing_rules",
    "sharing_targets",
)
_SQLITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.create_table(
        "registry_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_version")),
    )
    op.bulk_insert(
        sa.table("registry_version", sa.column("id"), sa.column("token")),
        [{"id": 1, "token": uuid.uuid4().hex}],
    )
    # A new random token (never a counter: a rolled-back number would be used again) in the
    # writing transaction, after every statement that writes one of the tables.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION registry_version_bump() RETURNS trigger AS $$
            BEGIN
                UPDATE registry_version
                   SET token = md5(random()::text || clock_timestamp()::text)
                 WHERE id = 1;
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER registry_version_{table} "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump()"
            )
    else:
        for table in TABLES:
            for verb in _SQLITE_VERBS:
                # Table names and verbs are the constants above, never input.
                op.execute(
                    f"CREATE TRIGGER registry_version_{table}_{verb.lower()} AFTER {verb} "  # noqa: S608
                    f"ON {table} BEGIN UPDATE registry_version "
                    "SET token = lower(hex(randomblob(16))) WHERE id = 1; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS registry_version_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS registry_version_bump()")
    else:
        for table in TABLES:
            for verb in _SQLITE_VERBS:
                op.execute(f"DROP TRIGGER IF EXISTS registry_version_{table}_{verb.lower()}")
    op.drop_table("registry_version")
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("prev_hash")
