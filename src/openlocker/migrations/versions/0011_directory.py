"""recipient directory: a site's directory entries and its kiosk's search counts

Revision ID: 0011_directory
Revises: 0010
Create Date: 2026-12-11 10:00:00

Directory entries are new rows of their own (parcels copy their recipient from an entry at
open deposit, so nothing refers to an entry). Searches are counted per site and minute in a
table of one row per site.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0011_directory"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = openlocker.core.db.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "directory_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=True),
        sa.Column("family_name", sa.String(length=100), nullable=True),
        sa.Column("unit", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("user_name", sa.String(length=200), nullable=True),
        sa.Column("user_name_key", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("search_key", sa.String(length=600), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_directory_entries_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_entries")),
        sa.UniqueConstraint("site_id", "external_id", name="uq_directory_entries_external_id"),
        sa.UniqueConstraint("site_id", "email", name="uq_directory_entries_email"),
        sa.UniqueConstraint("site_id", "user_name_key", name="uq_directory_entries_user_name_key"),
    )
    op.create_index("ix_directory_entries_site_id", "directory_entries", ["site_id", "id"])
    op.create_table(
        "directory_searches",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("searches", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_directory_searches_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_directory_searches")),
    )


def downgrade() -> None:
    op.drop_table("directory_searches")
    op.drop_index("ix_directory_entries_site_id", table_name="directory_entries")
    op.drop_table("directory_entries")
