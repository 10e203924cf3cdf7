"""the audit log keeps only the indexes its readers use, and no foreign key to users

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:10:00

Most requests end by appending one read event, so every index and constraint on
``audit_events`` is paid on nearly every request. Dropped:

* the foreign key ``actor_user_id`` → ``users.id``: the log must outlive whatever it names
  (the actor's label is stored beside the id and both are under the hash chain), and checking it
  cost a lookup in ``users`` per append;
* the indexes on ``action``, ``actor_user_id`` and ``occurred_at``: nothing reads by them (the
  audit page filters by action prefix, object type, actor label and unit, newest first by
  ``seq``; a prefix ``LIKE`` cannot use a b-tree index under a non-C collation).

Kept: the primary key, ``seq`` (unique: the chain's order, and the audit page's order), and the
indexes on ``object_type`` and ``unit_id`` (the audit page's filters).

On SQLite dropping a foreign key rebuilds the table, which drops its triggers: the append-only
triggers of 0001 are created again.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_audit_events_actor_user_id_users"
INDEXES = {
    "ix_audit_events_action": "action",
    "ix_audit_events_actor_user_id": "actor_user_id",
    "ix_audit_events_occurred_at": "occurred_at",
}


def _sqlite_append_only_triggers() -> None:
    # As 0001 creates them (the verbs are these constants, never input).
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")
        for name in INDEXES:
            batch_op.drop_index(name)
    if not postgres:
        _sqlite_append_only_triggers()


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        for name, column in INDEXES.items():
            batch_op.create_index(name, [column], unique=False)
        batch_op.create_foreign_key(FK, "users", ["actor_user_id"], ["id"])
    if not postgres:
        _sqlite_append_only_triggers()
