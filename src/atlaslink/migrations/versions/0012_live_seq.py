"""live rows are numbered in commit order: a cursor that a reconnecting stream cannot overtake

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:10:00

Live streams (operations/live.py) resumed after the last id a browser had seen. On PostgreSQL
ids are taken at INSERT and transactions commit in another order, so a row with a lower id
could become visible after a higher one had been sent; a stream that reconnected in between
never replayed it. ``live_seq`` numbers each timeline event and notification from a counter on
the audit chain's head, taken after the row is inserted; the head's row lock is held until the
transaction ends, so the numbers follow commit order: whoever has seen number *n* can have
missed no row below it.

Existing rows are numbered by their id, and the counter starts above every id, so a
``Last-Event-ID`` sent by a page opened before this migration keeps working.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {"operation_events": "request_id", "notifications": "user_id"}


def upgrade() -> None:
    op.add_column(
        "audit_head", sa.Column("live_seq", sa.BigInteger(), nullable=False, server_default="0")
    )
    for table, owner in TABLES.items():
        # Set once the row exists, in the transaction that inserts it (operations.timeline).
        op.add_column(table, sa.Column("live_seq", sa.BigInteger(), nullable=True))
        # The table names are the constants above, never input.
        op.execute(f"UPDATE {table} SET live_seq = id")  # noqa: S608
        # A stream's replay (its request's or user's rows) and the broadcaster's catch-up
        # and polling (every row after a number).
        op.create_index(f"ix_{table}_{owner}_live", table, [owner, "live_seq"])
        op.create_index(f"ix_{table}_live_seq", table, ["live_seq"])
    op.execute(
        "UPDATE audit_head SET live_seq = max("
        "(SELECT coalesce(max(id), 0) FROM operation_events),"
        " (SELECT coalesce(max(id), 0) FROM notifications))"
        if op.get_bind().dialect.name == "sqlite"
        else "UPDATE audit_head SET live_seq = greatest("
        "(SELECT coalesce(max(id), 0) FROM operation_events),"
        " (SELECT coalesce(max(id), 0) FROM notifications))"
    )


def downgrade() -> None:
    for table, owner in TABLES.items():
        op.drop_index(f"ix_{table}_live_seq", table_name=table)
        op.drop_index(f"ix_{table}_{owner}_live", table_name=table)
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("live_seq")
    with op.batch_alter_table("audit_head") as batch_op:
        batch_op.drop_column("live_seq")
