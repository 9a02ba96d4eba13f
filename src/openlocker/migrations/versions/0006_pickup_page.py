"""pickup page: sealed credentials for the link, presence-code lockouts, site policy

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-04 10:00:00

The recipient's page ``/p/{token}`` shows the PIN and QR code, which the server keeps only
as digests: each credential set now also holds them sealed under a key derived from its
link token (``credential_sets.sealed``, docs/decisions/0005-sealed-credentials-for-the-link.md).
Wrong presence codes typed on the page are counted per set. Sites get the page's policy
(hours a deadline may be extended by; their language and time zone come with 0005); a
parcel remembers its one extension. Unknown link tokens are counted per client slot in
``link_misses``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0006"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("extension_hours", sa.Integer(), nullable=False, server_default="24")
        )
    with op.batch_alter_table("parcels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "deadline_extended_at",
                openlocker.core.db.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("presence_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "presence_last_failure_at",
                openlocker.core.db.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "presence_locked_until",
                openlocker.core.db.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
    op.create_table(
        "link_misses",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_link_misses")),
    )


def downgrade() -> None:
    op.drop_table("link_misses")
    # Plain DROP COLUMN (SQLite 3.35+): a batch would rebuild parcels and sites, which other
    # tables' foreign keys refer to. The columns carry no index or constraint.
    for table, column in (
        ("credential_sets", "presence_locked_until"),
        ("credential_sets", "presence_last_failure_at"),
        ("credential_sets", "presence_failures"),
        ("credential_sets", "sealed"),
        ("parcels", "deadline_extended_at"),
        ("sites", "extension_hours"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
