"""pin attempts: counted per site and per phone suffix; credentials carry the phone's tag

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 17:10:00

One count per site let a prankster lock every PIN-only recipient of a site out. Typed PINs
are now counted in buckets: the site's PIN-alone bucket (``bucket = ''``, what
``kiosk_attempts`` held) and one bucket per phone suffix typed with the PIN, whose tag a
credential set carries (docs/security.md, "Guessing PINs").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pin_attempts",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("locked_until", openlocker.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("refusals", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_pin_attempts_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", "bucket", name=op.f("pk_pin_attempts")),
    )
    op.execute(
        "INSERT INTO pin_attempts (site_id, bucket, consecutive_failures, last_failure_at,"
        " locked_until, refusals) SELECT site_id, '', consecutive_failures, last_failure_at,"
        " locked_until, 0 FROM kiosk_attempts"
    )
    op.drop_table("kiosk_attempts")
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_tag", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credential_sets", schema=None) as batch_op:
        batch_op.drop_column("phone_tag")
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
    # Every site had its row; the phone buckets have no place in the old schema.
    op.execute(
        "INSERT INTO kiosk_attempts (site_id, consecutive_failures, last_failure_at,"
        " locked_until) SELECT s.id, COALESCE(a.consecutive_failures, 0), a.last_failure_at,"
        " a.locked_until FROM sites s LEFT JOIN pin_attempts a"
        " ON a.site_id = s.id AND a.bucket = ''"
    )
    op.drop_table("pin_attempts")
