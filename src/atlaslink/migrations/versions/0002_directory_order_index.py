"""index for the unit directory's order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_units_directory_order", "units", ["country_iso2", "name", "id"])


def downgrade() -> None:
    op.drop_index("ix_units_directory_order", table_name="units")
