"""fleet channel: each kiosk's presence, heartbeat and state; each command it carried

Revision ID: 0010
Revises: 0009_kiosk_channel
Create Date: 2026-12-12 10:00:00

The MQTT consumer keeps one row per site's kiosk (online or offline, last heard, version,
the retained compartment snapshot) and one per door command it published, by the outbox
row's id, with the kiosk's answer. Nothing existing changes, so down drops both tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0010"
down_revision: str | None = "0009_kiosk_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = openlocker.core.db.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "fleet_kiosks",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("status_reason", sa.String(length=20), nullable=False),
        sa.Column("status_since", _TIME, nullable=False),
        sa.Column("last_seen_at", _TIME, nullable=False),
        sa.Column("last_heartbeat_at", _TIME, nullable=True),
        sa.Column("version", sa.String(length=40), nullable=True),
        sa.Column("uptime_seconds", sa.Float(), nullable=True),
        sa.Column("queued_events", sa.Integer(), nullable=True),
        sa.Column("clock_offset_ms", sa.Integer(), nullable=True),
        sa.Column("last_message_at", _TIME, nullable=True),
        sa.Column("silent", sa.Boolean(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=True),
        sa.Column("state_sent_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_fleet_kiosks_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_fleet_kiosks")),
    )
    op.create_table(
        "fleet_commands",
        sa.Column("command_id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("compartment_id", sa.String(length=40), nullable=True),
        sa.Column("transaction_id", sa.String(length=40), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("publish_count", sa.Integer(), nullable=False),
        sa.Column("first_published_at", _TIME, nullable=True),
        sa.Column("next_publish_at", _TIME, nullable=False),
        sa.Column("answered_at", _TIME, nullable=True),
        sa.Column("result", sa.String(length=12), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_fleet_commands")),
    )
    op.create_index("ix_fleet_commands_site", "fleet_commands", ["site_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_fleet_commands_site", table_name="fleet_commands")
    op.drop_table("fleet_commands")
    op.drop_table("fleet_kiosks")
