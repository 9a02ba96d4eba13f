"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 10:33:18.939882
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=True),
        sa.Column("parcel_id", sa.String(length=40), nullable=True),
        sa.Column("compartment_id", sa.String(length=40), nullable=True),
        sa.Column("at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column(
            "chain_index", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("chain_index", name=op.f("uq_audit_events_chain_index")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_events_id")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_parcel", ["parcel_id"], unique=False)
        batch_op.create_index("ix_audit_events_site", ["site_id"], unique=False)
        batch_op.create_index(
            "ix_audit_events_unsealed",
            ["seq"],
            unique=False,
            sqlite_where=sa.text("chain_index IS NULL"),
            postgresql_where=sa.text("chain_index IS NULL"),
        )

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "endpoint", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("parcel_id", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=True),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("available_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_pending", ["sent_at", "available_at"], unique=False)

    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=400), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("opening_hours", sa.JSON(), nullable=False),
        sa.Column("dwell_hours", sa.Integer(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "size_classes",
        sa.Column("code", sa.String(length=8), nullable=False),
        sa.Column("width_mm", sa.Integer(), nullable=False),
        sa.Column("height_mm", sa.Integer(), nullable=False),
        sa.Column("depth_mm", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_size_classes")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_api_keys_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_api_keys_key_digest")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_org_id"), ["org_id"], unique=False)

    op.create_table(
        "compartments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("size_code", sa.String(length=8), nullable=False),
        sa.Column("temperature", sa.String(length=10), nullable=False),
        sa.Column("floor_height_mm", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("door", sa.String(length=8), nullable=False),
        sa.Column("use_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_compartments_site_id_sites")
        ),
        sa.ForeignKeyConstraint(
            ["size_code"],
            ["size_classes.code"],
            name=op.f("fk_compartments_size_code_size_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compartments")),
        sa.UniqueConstraint("site_id", "label", name=op.f("uq_compartments_site_id")),
        postgresql_with={
            "fillfactor": 50,
            "autovacuum_vacuum_scale_factor": 0.0,
            "autovacuum_vacuum_threshold": 1000,
        },
    )
    with op.batch_alter_table("compartments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compartments_site_id"), ["site_id"], unique=False)

    op.create_table(
        "kiosk_attempts",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_kiosk_attempts_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_kiosk_attempts")),
    )
    op.create_table(
        "parcels",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("carrier_org_id", sa.String(length=40), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size_code", sa.String(length=8), nullable=True),
        sa.Column("length_mm", sa.Integer(), nullable=True),
        sa.Column("width_mm", sa.Integer(), nullable=True),
        sa.Column("height_mm", sa.Integer(), nullable=True),
        sa.Column("weight_g", sa.Integer(), nullable=True),
        sa.Column("temperature", sa.String(length=10), nullable=False),
        sa.Column("accessible", sa.Boolean(), nullable=False),
        sa.Column("recipient", sa.JSON(), nullable=False),
        sa.Column("notify", sa.String(length=10), nullable=False),
        sa.Column("compartment_id", sa.String(length=40), nullable=True),
        sa.Column("reserved_until", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("dwell_deadline", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("announced_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("deposited_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("picked_up_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("expired_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("returned_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["carrier_org_id"],
            ["organizations.id"],
            name=op.f("fk_parcels_carrier_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["compartment_id"],
            ["compartments.id"],
            name=op.f("fk_parcels_compartment_id_compartments"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_parcels_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint(
            "carrier_org_id", "tracking_number", name=op.f("uq_parcels_carrier_org_id")
        ),
    )
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.create_index("ix_parcels_carrier_id", ["carrier_org_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_parcels_site_id"), ["site_id"], unique=False)
        batch_op.create_index(
            "ix_parcels_status_deadline", ["status", "dwell_deadline"], unique=False
        )
        batch_op.create_index(
            "uq_parcels_live_compartment",
            ["compartment_id"],
            unique=True,
            sqlite_where=sa.text(
                "compartment_id IS NOT NULL AND status IN ('announced','deposited','expired')"
            ),
            postgresql_where=sa.text(
                "compartment_id IS NOT NULL AND status IN ('announced','deposited','expired')"
            ),
        )

    op.create_table(
        "credentials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("parcel_id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("expires_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_credentials_parcel_id_parcels")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_credentials_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.create_index("ix_credentials_kind_digest", ["kind", "digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_credentials_parcel_id"), ["parcel_id"], unique=False)
        batch_op.create_index(
            "uq_credentials_active_digest",
            ["site_id", "kind", "digest"],
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )

    # The chain starts from a genesis hash; sealers lock this one row.
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("hash"), sa.column("count")),
        [{"id": 1, "hash": "0" * 64, "count": 0}],
    )
    # Default size classes (inner width, height, depth in mm); a network changes them as data.
    sizes = sa.table(
        "size_classes",
        sa.column("code"),
        sa.column("width_mm"),
        sa.column("height_mm"),
        sa.column("depth_mm"),
    )
    op.bulk_insert(
        sizes,
        [
            {"code": "S", "width_mm": 380, "height_mm": 80, "depth_mm": 640},
            {"code": "M", "width_mm": 380, "height_mm": 190, "depth_mm": 640},
            {"code": "L", "width_mm": 380, "height_mm": 410, "depth_mm": 640},
            {"code": "XL", "width_mm": 600, "height_mm": 600, "depth_mm": 640},
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_credentials_active_digest",
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )
        batch_op.drop_index(batch_op.f("ix_credentials_parcel_id"))
        batch_op.drop_index("ix_credentials_kind_digest")

    op.drop_table("credentials")
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_parcels_live_compartment",
            sqlite_where=sa.text(
                "compartment_id IS NOT NULL AND status IN ('announced','deposited','expired')"
            ),
            postgresql_where=sa.text(
                "compartment_id IS NOT NULL AND status IN ('announced','deposited','expired')"
            ),
        )
        batch_op.drop_index("ix_parcels_status_deadline")
        batch_op.drop_index(batch_op.f("ix_parcels_site_id"))
        batch_op.drop_index("ix_parcels_carrier_id")

    op.drop_table("parcels")
    op.drop_table("kiosk_attempts")
    with op.batch_alter_table("compartments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_compartments_site_id"))

    op.drop_table("compartments")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_org_id"))

    op.drop_table("api_keys")
    op.drop_table("size_classes")
    op.drop_table("sites")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")

    op.drop_table("outbox")
    op.drop_table("organizations")
    op.drop_table("idempotency_records")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_audit_events_unsealed",
            sqlite_where=sa.text("chain_index IS NULL"),
            postgresql_where=sa.text("chain_index IS NULL"),
        )
        batch_op.drop_index("ix_audit_events_site")
        batch_op.drop_index("ix_audit_events_parcel")

    op.drop_table("audit_events")
