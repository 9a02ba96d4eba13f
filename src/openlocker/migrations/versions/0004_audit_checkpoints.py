"""audit checkpoints: the chain's length and head, signed with the server's audit key

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:20:00

A plain hash chain can be cut and re-chained by anyone who can write to the database. The
sealer now signs its length and head hash every few seconds, into this table and into a
file in the data folder, and refuses to seal below them (docs/security.md, "The audit log").
Existing chains get their first checkpoint at the next sealing pass.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column(
            "count",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=86), nullable=False),
        sa.PrimaryKeyConstraint("count", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index("ix_audit_checkpoints_key", ["key_id", "count"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_checkpoints_key")
    op.drop_table("audit_checkpoints")
