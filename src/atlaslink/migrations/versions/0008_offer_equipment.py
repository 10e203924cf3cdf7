"""equipment offered with an answer to an assistance request

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:40:00

One new table, ``offer_equipment``: the items of its own inventory a unit includes in an offer,
the end of the period offered, and the operation loan made when the offer is accepted
(docs/adr/0005-equipment-reservations.md §12). It touches no existing table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_equipment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["equipment_items.id"],
            name=op.f("fk_offer_equipment_item_id_equipment_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            ["equipment_loans.id"],
            name=op.f("fk_offer_equipment_loan_id_equipment_loans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_offer_equipment_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_equipment")),
        sa.UniqueConstraint("offer_id", "item_id", name=op.f("uq_offer_equipment_offer_id")),
    )
    with op.batch_alter_table("offer_equipment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_equipment_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_equipment_loan_id"), ["loan_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_equipment_offer_id"), ["offer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("offer_equipment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offer_equipment_offer_id"))
        batch_op.drop_index(batch_op.f("ix_offer_equipment_loan_id"))
        batch_op.drop_index(batch_op.f("ix_offer_equipment_item_id"))
    op.drop_table("offer_equipment")
