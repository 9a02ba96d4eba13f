"""delivery: outbox states and leases, delivery attempts, the demo mailbox, sites' notices

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-08 10:00:00

The dispatcher (``openlocker.notify``) claims outbox rows with a lease (``state``,
``claimed_until``) and records every attempt. Messages still waiting (``sent_at`` empty)
start ``pending``. Sites gain what recipients' messages need: a language, a time zone, the
reminder's lead time (24 h, as before there was none) and whether expiry is announced.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONCE = "topic IN ('recipient.reminder', 'recipient.expired')"
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=12), server_default="pending", nullable=False)
        )
        batch_op.add_column(
            sa.Column("claimed_until", openlocker.core.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_outbox_due", ["state", "topic", "available_at"], unique=False)
        batch_op.create_index(
            "ix_outbox_sealed",
            ["parcel_id"],
            unique=False,
            sqlite_where=sa.text("sealed IS NOT NULL"),
            postgresql_where=sa.text("sealed IS NOT NULL"),
        )
        batch_op.create_index(
            "uq_outbox_once",
            ["parcel_id", "topic"],
            unique=True,
            sqlite_where=sa.text(_ONCE),
            postgresql_where=sa.text(_ONCE),
        )
    op.execute("UPDATE outbox SET state = 'sent' WHERE sent_at IS NOT NULL")
    # Added in place: batch mode would copy ``sites`` anew, which SQLite refuses while
    # parcels and compartments refer to it.
    op.add_column("sites", sa.Column("language", sa.String(length=8), nullable=True))
    op.add_column("sites", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("sites", sa.Column("reminder_hours", sa.Integer(), nullable=True))
    op.add_column(
        "sites", sa.Column("expiry_notice", sa.Boolean(), server_default=sa.true(), nullable=False)
    )
    op.execute("UPDATE sites SET reminder_hours = 24")
    op.create_table(
        "delivery_attempts",
        sa.Column("seq", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_attempts_outbox", ["outbox_id", "channel"], unique=False)
    op.create_table(
        "mailbox_messages",
        sa.Column("seq", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("at", openlocker.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_mailbox_messages")),
        sa.UniqueConstraint("outbox_id", "channel", name=op.f("uq_mailbox_messages_outbox_id")),
    )


def downgrade() -> None:
    op.drop_table("mailbox_messages")
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_attempts_outbox")
    op.drop_table("delivery_attempts")
    # In place, as they were added (SQLite drops columns itself since 3.35).
    for column in ("expiry_notice", "reminder_hours", "timezone", "language"):
        op.execute(f"ALTER TABLE sites DROP COLUMN {column}")
    # The old schema knows only sent and waiting: a dead or skipped message waits again.
    op.execute("UPDATE outbox SET sent_at = NULL WHERE state <> 'sent'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("uq_outbox_once")
        batch_op.drop_index("ix_outbox_sealed")
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_column("last_error")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("state")
