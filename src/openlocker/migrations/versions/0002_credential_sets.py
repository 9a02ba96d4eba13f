"""credentials: one row per issue (PIN, QR and link digests together)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:05:00

A deposit wrote three credential rows (twelve index entries, six foreign-key checks) and
a pickup rewrote all three; one row per issue halves the index work and checks its
foreign key once. Existing credentials are carried over, grouped by parcel and issue time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _digest(kind: str) -> str:
    return f"MAX(CASE WHEN kind = '{kind}' THEN digest END)"


def upgrade() -> None:
    op.create_table(
        "credential_sets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("parcel_id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("pin_digest", sa.String(length=64), nullable=False),
        sa.Column("qr_digest", sa.String(length=64), nullable=False),
        sa.Column("link_digest", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("expires_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("used_kind", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["parcel_id"], ["parcels.id"], name=op.f("fk_credential_sets_parcel_id_parcels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_sets")),
    )
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credential_sets_parcel_id"), ["parcel_id"], unique=False
        )
        batch_op.create_index("ix_credential_sets_pin_digest", ["pin_digest"], unique=False)
        batch_op.create_index("ix_credential_sets_qr_digest", ["qr_digest"], unique=False)
        batch_op.create_index("ix_credential_sets_link_digest", ["link_digest"], unique=False)
        batch_op.create_index(
            "uq_credential_sets_active_pin",
            ["site_id", "pin_digest"],
            unique=True,
            sqlite_where=sa.text("active"),
            postgresql_where=sa.text("active"),
        )
    # The three codes of one issue share their parcel and creation time.
    op.execute(
        "INSERT INTO credential_sets (id, parcel_id, site_id, pin_digest, qr_digest,"
        " link_digest, active, expires_at, created_at, used_at, used_kind)"
        f" SELECT MIN(id), parcel_id, MIN(site_id), {_digest('pin')}, {_digest('qr')},"
        f" {_digest('link')},"
        " CASE WHEN SUM(CASE WHEN active THEN 1 ELSE 0 END) > 0 THEN TRUE ELSE FALSE END,"
        " MIN(expires_at), created_at, MAX(used_at),"
        " MAX(CASE WHEN used_at IS NOT NULL THEN kind END)"
        " FROM credentials GROUP BY parcel_id, created_at"
    )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_index("uq_credentials_active_digest")
        batch_op.drop_index(batch_op.f("ix_credentials_parcel_id"))
        batch_op.drop_index("ix_credentials_kind_digest")
    op.drop_table("credentials")


def downgrade() -> None:
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
    # The PIN's row keeps the set's id (the shortest, so an upgrade picks it again).
    for kind, suffix in (("pin", ""), ("qr", "q"), ("link", "l")):
        op.execute(
            "INSERT INTO credentials (id, parcel_id, site_id, kind, digest, active, expires_at,"
            f" created_at, used_at) SELECT id || '{suffix}', parcel_id, site_id, '{kind}',"
            f" {kind}_digest, active, expires_at, created_at,"
            f" CASE WHEN used_kind = '{kind}' THEN used_at END FROM credential_sets"
        )
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.drop_index("uq_credential_sets_active_pin")
        batch_op.drop_index("ix_credential_sets_link_digest")
        batch_op.drop_index("ix_credential_sets_qr_digest")
        batch_op.drop_index("ix_credential_sets_pin_digest")
        batch_op.drop_index(batch_op.f("ix_credential_sets_parcel_id"))
    op.drop_table("credential_sets")
