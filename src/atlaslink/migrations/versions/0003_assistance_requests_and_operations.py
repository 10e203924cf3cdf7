"""assistance requests and operations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:07:46.047471
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bilateral_agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("country_a", sa.String(length=2), nullable=False),
        sa.Column("country_b", sa.String(length=2), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "country_a < country_b", name=op.f("ck_bilateral_agreements_ordered_pair")
        ),
        sa.ForeignKeyConstraint(
            ["country_a"],
            ["countries.iso2"],
            name=op.f("fk_bilateral_agreements_country_a_countries"),
        ),
        sa.ForeignKeyConstraint(
            ["country_b"],
            ["countries.iso2"],
            name=op.f("fk_bilateral_agreements_country_b_countries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bilateral_agreements")),
    )
    with op.batch_alter_table("bilateral_agreements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bilateral_agreements_country_a"), ["country_a"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_bilateral_agreements_country_b"), ["country_b"], unique=False
        )

    op.create_table(
        "country_settings",
        sa.Column("country_iso2", sa.String(length=2), nullable=False),
        sa.Column("national_approval_required", sa.Boolean(), nullable=False),
        sa.Column("requires_bilateral_agreement", sa.Boolean(), nullable=False),
        sa.Column("prohibits_foreign_arms", sa.Boolean(), nullable=False),
        sa.Column("prohibits_foreign_explosives", sa.Boolean(), nullable=False),
        sa.Column("excluded_from_2008_617", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["country_iso2"],
            ["countries.iso2"],
            name=op.f("fk_country_settings_country_iso2_countries"),
        ),
        sa.PrimaryKeyConstraint("country_iso2", name=op.f("pk_country_settings")),
    )
    op.create_table(
        "assistance_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("requesting_country", sa.String(length=2), nullable=False),
        sa.Column("requesting_unit_id", sa.Integer(), nullable=True),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_by_label", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("crisis_category", sa.String(length=32), nullable=False),
        sa.Column("location_name", sa.String(length=300), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("nature", sa.JSON(), nullable=False),
        sa.Column("operational_necessity", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=True),
        sa.Column("bilateral_agreement_id", sa.Integer(), nullable=True),
        sa.Column("classification", sa.String(length=32), nullable=False),
        sa.Column("distribution_marking", sa.String(length=64), nullable=False),
        sa.Column("handling_code", sa.String(length=2), nullable=False),
        sa.Column("handling_note", sa.Text(), nullable=False),
        sa.Column("ack_minutes", sa.Integer(), nullable=False),
        sa.Column("max_escalations", sa.Integer(), nullable=False),
        sa.Column("lapse_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pre_alert_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("debrief", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bilateral_agreement_id"],
            ["bilateral_agreements.id"],
            name=op.f("fk_assistance_requests_bilateral_agreement_id_bilateral_agreements"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_assistance_requests_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["pre_alert_id"],
            ["assistance_requests.id"],
            name=op.f("fk_assistance_requests_pre_alert_id_assistance_requests"),
        ),
        sa.ForeignKeyConstraint(
            ["requesting_country"],
            ["countries.iso2"],
            name=op.f("fk_assistance_requests_requesting_country_countries"),
        ),
        sa.ForeignKeyConstraint(
            ["requesting_unit_id"],
            ["units.id"],
            name=op.f("fk_assistance_requests_requesting_unit_id_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assistance_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_assistance_requests_reference")),
    )
    with op.batch_alter_table("assistance_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assistance_requests_requesting_country"),
            ["requesting_country"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_assistance_requests_requesting_unit_id"),
            ["requesting_unit_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_assistance_requests_status"), ["status"], unique=False)
        batch_op.create_index(
            "ix_assistance_requests_status_lapse", ["status", "lapse_at"], unique=False
        )

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("user_id", "key", name=op.f("uq_idempotency_keys_user_id")),
    )
    op.create_table(
        "user_preferences",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_preferences_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_preferences")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("email_to", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("exercise", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_state", sa.String(length=12), nullable=False),
        sa.Column("email_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_attempts", sa.Integer(), nullable=False),
        sa.Column("email_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_notifications_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_email_due", ["email_state", "email_next_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notifications_request_id"), ["request_id"], unique=False
        )
        batch_op.create_index("ix_notifications_user_unread", ["user_id", "read_at"], unique=False)

    op.create_table(
        "request_addressees",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("ring", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("addressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("addressed_by_label", sa.String(length=200), nullable=False),
        sa.Column("ack_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_label", sa.String(length=200), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column(
            "support_office_alerted_at",
            sa.DateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_request_addressees_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_request_addressees_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_addressees")),
        sa.UniqueConstraint("request_id", "unit_id", name=op.f("uq_request_addressees_request_id")),
    )
    with op.batch_alter_table("request_addressees", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_addressees_next_check_at"), ["next_check_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_request_addressees_request_id"), ["request_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_request_addressees_unit_id"), ["unit_id"], unique=False
        )

    op.create_table(
        "request_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("grantee", sa.String(length=16), nullable=False),
        sa.Column("country_iso2", sa.String(length=2), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("granted_by_label", sa.String(length=200), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["country_iso2"],
            ["countries.iso2"],
            name=op.f("fk_request_grants_country_iso2_countries"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_request_grants_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_request_grants_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_grants")),
    )
    with op.batch_alter_table("request_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_grants_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "request_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("capability_type_id", sa.Integer(), nullable=False),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("needed_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("removed_in_version", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "min_level BETWEEN 0 AND 3", name=op.f("ck_request_lines_min_level_range")
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_request_lines_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["capability_type_id"],
            ["capability_types.id"],
            name=op.f("fk_request_lines_capability_type_id_capability_types"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_request_lines_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_lines")),
        sa.UniqueConstraint("request_id", "line_no", name=op.f("uq_request_lines_request_id")),
    )
    with op.batch_alter_table("request_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_lines_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "request_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_label", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_request_versions_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_versions")),
        sa.UniqueConstraint("request_id", "version", name=op.f("uq_request_versions_request_id")),
    )
    with op.batch_alter_table("request_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_versions_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("addressee_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("request_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("nature", sa.JSON(), nullable=False),
        sa.Column("package", sa.Text(), nullable=False),
        sa.Column("eta_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("costs", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_label", sa.String(length=200), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_site_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("home_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lock_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["addressee_id"],
            ["request_addressees.id"],
            name=op.f("fk_offers_addressee_id_request_addressees"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_offers_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_offers_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offers_addressee_id"), ["addressee_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offers_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offers_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_offers_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "arrangements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("liaison_officer", sa.String(length=200), nullable=False),
        sa.Column("liaison_contact", sa.String(length=200), nullable=False),
        sa.Column("working_language", sa.String(length=2), nullable=False),
        sa.Column("costs", sa.Text(), nullable=False),
        sa.Column("liability", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column(
            "requester_confirmed_at",
            sa.DateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("requester_confirmed_by", sa.String(length=200), nullable=True),
        sa.Column(
            "assisting_confirmed_at",
            sa.DateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("assisting_confirmed_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_arrangements_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrangements")),
        sa.UniqueConstraint("offer_id", name=op.f("uq_arrangements_offer_id")),
    )
    op.create_table(
        "manifest_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("serial_numbers", sa.Text(), nullable=False),
        sa.Column("host_decision", sa.String(length=16), nullable=False),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_manifest_items_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_manifest_items_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manifest_items")),
    )
    with op.batch_alter_table("manifest_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manifest_items_offer_id"), ["offer_id"], unique=False)

    op.create_table(
        "movement_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("country_iso2", sa.String(length=2), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["country_iso2"],
            ["countries.iso2"],
            name=op.f("fk_movement_records_country_iso2_countries"),
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_movement_records_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_movement_records")),
    )
    with op.batch_alter_table("movement_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_movement_records_offer_id"), ["offer_id"], unique=False
        )

    op.create_table(
        "offer_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("request_line_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("accepted_quantity", sa.Integer(), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_offer_lines_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_offer_lines_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["request_line_id"],
            ["request_lines.id"],
            name=op.f("fk_offer_lines_request_line_id_request_lines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_lines")),
        sa.UniqueConstraint("offer_id", "request_line_id", name=op.f("uq_offer_lines_offer_id")),
    )
    with op.batch_alter_table("offer_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_lines_offer_id"), ["offer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_offer_lines_request_line_id"), ["request_line_id"], unique=False
        )

    op.create_table(
        "operation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_operation_events_actor_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_operation_events_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["assistance_requests.id"],
            name=op.f("fk_operation_events_request_id_assistance_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_operation_events_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operation_events")),
    )
    with op.batch_alter_table("operation_events", schema=None) as batch_op:
        batch_op.create_index("ix_operation_events_request_seq", ["request_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("operation_events", schema=None) as batch_op:
        batch_op.drop_index("ix_operation_events_request_seq")

    op.drop_table("operation_events")
    with op.batch_alter_table("offer_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offer_lines_request_line_id"))
        batch_op.drop_index(batch_op.f("ix_offer_lines_offer_id"))

    op.drop_table("offer_lines")
    with op.batch_alter_table("movement_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_movement_records_offer_id"))

    op.drop_table("movement_records")
    with op.batch_alter_table("manifest_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manifest_items_offer_id"))

    op.drop_table("manifest_items")
    op.drop_table("arrangements")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_offers_unit_id"))
        batch_op.drop_index(batch_op.f("ix_offers_status"))
        batch_op.drop_index(batch_op.f("ix_offers_request_id"))
        batch_op.drop_index(batch_op.f("ix_offers_addressee_id"))

    op.drop_table("offers")
    with op.batch_alter_table("request_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_versions_request_id"))

    op.drop_table("request_versions")
    with op.batch_alter_table("request_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_lines_request_id"))

    op.drop_table("request_lines")
    with op.batch_alter_table("request_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_grants_request_id"))

    op.drop_table("request_grants")
    with op.batch_alter_table("request_addressees", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_addressees_unit_id"))
        batch_op.drop_index(batch_op.f("ix_request_addressees_request_id"))
        batch_op.drop_index(batch_op.f("ix_request_addressees_next_check_at"))

    op.drop_table("request_addressees")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_unread")
        batch_op.drop_index(batch_op.f("ix_notifications_request_id"))
        batch_op.drop_index("ix_notifications_email_due")

    op.drop_table("notifications")
    op.drop_table("user_preferences")
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("assistance_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_assistance_requests_status_lapse")
        batch_op.drop_index(batch_op.f("ix_assistance_requests_status"))
        batch_op.drop_index(batch_op.f("ix_assistance_requests_requesting_unit_id"))
        batch_op.drop_index(batch_op.f("ix_assistance_requests_requesting_country"))

    op.drop_table("assistance_requests")
    op.drop_table("country_settings")
    with op.batch_alter_table("bilateral_agreements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bilateral_agreements_country_b"))
        batch_op.drop_index(batch_op.f("ix_bilateral_agreements_country_a"))

    op.drop_table("bilateral_agreements")
