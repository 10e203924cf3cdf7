"""matching: what the engine may use of each unit, and a covering index for ranking

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00

``units.matching_groups`` (sharing.matching_groups) is filled here from the stored agreements,
with the rule of sharing.policy at the time of writing: a group counts when its audience is
network, listed, support office or matching engine; the level, package and notice-to-move
groups count only if the existence group does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One bit per field group, in sharing.policy.FieldGroup's order: existence 1, level 2,
# package 4, notice 8, transport 16, contacts 32.
_FILL = """
UPDATE units SET matching_groups = (
    SELECT coalesce(sum(CASE r.field_group
        WHEN 'existence' THEN 1 WHEN 'level' THEN 2 WHEN 'package' THEN 4
        WHEN 'notice' THEN 8 WHEN 'transport' THEN 16 WHEN 'contacts' THEN 32 ELSE 0 END), 0)
    FROM sharing_rules r
    WHERE r.unit_id = units.id
      AND r.audience IN ('network', 'listed', 'support_office', 'matching'))
"""
# Without existence, the entry groups (level, package, notice) do not count: 63 - 14 = 49.
_ENTRY_GROUPS_NEED_EXISTENCE = (
    "UPDATE units SET matching_groups = matching_groups & 49 WHERE matching_groups & 1 = 0"
)
_COVERED = (
    "id",
    "unit_id",
    "level",
    "package_size",
    "notice_to_move_hours",
    "may_deploy_abroad",
    "may_carry_arms_abroad",
    "may_carry_explosives_abroad",
    "confirmed_on",
)


def upgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("matching_groups", sa.Integer(), server_default="0", nullable=False)
        )
    op.execute(_FILL)
    op.execute(_ENTRY_GROUPS_NEED_EXISTENCE)
    with op.batch_alter_table("capability_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_capability_entries_capability_type_id")
        batch_op.create_index(
            "ix_capability_entries_matching",
            ["capability_type_id"],
            unique=False,
            postgresql_include=list(_COVERED),
        )


def downgrade() -> None:
    with op.batch_alter_table("capability_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_capability_entries_matching")
        batch_op.create_index(
            "ix_capability_entries_capability_type_id", ["capability_type_id"], unique=False
        )
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_column("matching_groups")
