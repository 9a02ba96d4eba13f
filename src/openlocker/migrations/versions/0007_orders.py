"""orders, zone policies, returns: an order's items are parcels; one credential set per order

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-09 10:00:00

Click & collect orders keep the parcel lifecycle: each item is a parcel with ``order_id``,
and the order's single credential set carries ``order_id`` too. Returns become parcels at
drop-off, ``awaiting_collection`` (a status that holds its compartment, so the index of live
compartments learns it) until a courier's scan makes them ``collected``.

Down, returns' parcels become ``expired`` and ``returned`` (the old lifecycle's waiting for
and done with courier retrieval); an order's items stay parcels, and its credential set
opens only its first item.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE_BEFORE = "compartment_id IS NOT NULL AND status IN ('announced','deposited','expired')"
_LIVE_AFTER = (
    "compartment_id IS NOT NULL"
    " AND status IN ('announced','deposited','expired','awaiting_collection')"
)


def _live_compartment_index(where: str) -> None:
    op.drop_index("uq_parcels_live_compartment", table_name="parcels")
    op.create_index(
        "uq_parcels_live_compartment",
        "parcels",
        ["compartment_id"],
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("retailer_org_id", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=48), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.JSON(), nullable=False),
        sa.Column("notify", sa.String(length=10), nullable=False),
        sa.Column("age_restricted", sa.Boolean(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("ready_from", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("collect_by", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ready_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["retailer_org_id"],
            ["organizations.id"],
            name=op.f("fk_orders_retailer_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_orders_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("retailer_org_id", "reference", name=op.f("uq_orders_retailer_org_id")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_retailer_id", ["retailer_org_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_site_id"), ["site_id"], unique=False)
    op.create_table(
        "zone_policies",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("temperature", sa.String(length=10), nullable=False),
        sa.Column("dwell_hours", sa.Integer(), nullable=False),
        sa.Column("fault_hours", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_zone_policies_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", "temperature", name=op.f("pk_zone_policies")),
    )
    # In place, not in batch mode: SQLite would copy ``parcels`` to a new table, and the rows
    # that refer to it (credential sets) would break their foreign keys.
    op.add_column(
        "parcels",
        sa.Column("collected_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
    )
    op.add_column("parcels", sa.Column("order_id", sa.String(length=40), nullable=True))
    op.create_index(op.f("ix_parcels_order_id"), "parcels", ["order_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # SQLite does not enforce the length
        op.alter_column(
            "parcels", "status", type_=sa.String(length=20), existing_type=sa.String(length=16)
        )
    _live_compartment_index(_LIVE_AFTER)
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("order_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_credential_sets_order_id_orders"), "orders", ["order_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_credential_sets_order_id"), ["order_id"], unique=False)
    op.create_table(
        "returns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=48), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size_code", sa.String(length=8), nullable=True),
        sa.Column("length_mm", sa.Integer(), nullable=True),
        sa.Column("width_mm", sa.Integer(), nullable=True),
        sa.Column("height_mm", sa.Integer(), nullable=True),
        sa.Column("customer", sa.JSON(), nullable=False),
        sa.Column("parcel_id", sa.String(length=40), nullable=True),
        sa.Column("expires_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("dropped_off_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_returns_org_id_organizations")
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_returns_parcel_id_parcels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_returns_code_digest")),
        sa.UniqueConstraint("org_id", "reference", name=op.f("uq_returns_org_id")),
    )
    with op.batch_alter_table("returns", schema=None) as batch_op:
        batch_op.create_index("ix_returns_org_id", ["org_id", "id"], unique=False)


def downgrade() -> None:
    # The old lifecycle's names for waiting for, and done with, courier retrieval.
    op.execute("UPDATE parcels SET status = 'expired' WHERE status = 'awaiting_collection'")
    op.execute(
        "UPDATE parcels SET status = 'returned', returned_at = collected_at"
        " WHERE status = 'collected'"
    )
    op.drop_index("ix_returns_org_id", table_name="returns")
    op.drop_table("returns")
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_sets_order_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_credential_sets_order_id_orders"), type_="foreignkey"
        )
        batch_op.drop_column("order_id")
    _live_compartment_index(_LIVE_BEFORE)
    op.drop_index(op.f("ix_parcels_order_id"), table_name="parcels")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "parcels", "status", type_=sa.String(length=16), existing_type=sa.String(length=20)
        )
    # In place, as added (SQLite 3.35 or later drops a column itself).
    op.drop_column("parcels", "order_id")
    op.drop_column("parcels", "collected_at")
    op.drop_table("zone_policies")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_site_id"))
        batch_op.drop_index("ix_orders_retailer_id")
    op.drop_table("orders")
