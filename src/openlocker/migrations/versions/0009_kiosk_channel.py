"""kiosk channel: lock map, kiosk digests, courier codes, alarms, event receipts, commands by site

Revision ID: 0009_kiosk_channel
Revises: 0007
Create Date: 2026-12-10 10:00:00

Compartments learn the lock board and lock that open them (existing ones stay unmapped,
NULL, until an operator maps them). Credential sets keep the kiosk's digests of their codes
beside the server's (sets issued before stay without: the kiosk asks the server for those).
Courier codes, alarms and the receipts of kiosk events are new tables. The outbox learns
each locker command's site, so a kiosk finds its pending ones by index; commands queued
before are skipped, since no kiosk ever fetched them and they carry no expiry. The audit
trail gets the index a kiosk's sync cursor walks: a site's events by chain index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import openlocker.core.db

revision: str = "0009_kiosk_channel"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING_COMMANDS = "topic = 'kiosk.open_compartment' AND state = 'pending'"
_COURIER_EVENTS = "name IN ('courier.created', 'courier.deactivated')"
_UTC = openlocker.core.db.UtcDateTime(timezone=True)


def upgrade() -> None:
    # In place, not in batch mode: SQLite would copy the tables, and the rows that refer to
    # them would break their foreign keys.
    op.add_column("compartments", sa.Column("board", sa.Integer(), nullable=True))
    op.add_column("compartments", sa.Column("lock", sa.Integer(), nullable=True))
    op.create_index(
        "uq_compartments_board_lock", "compartments", ["site_id", "board", "lock"], unique=True
    )
    for column in ("kiosk_pin", "kiosk_qr", "kiosk_phone"):
        op.add_column("credential_sets", sa.Column(column, sa.String(length=64), nullable=True))
    op.create_index(
        "ix_credential_sets_site_active",
        "credential_sets",
        ["site_id", "id"],
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    op.add_column("outbox", sa.Column("site_id", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE outbox SET state = 'skipped',"
        " last_error = 'queued before kiosks took commands' WHERE " + _PENDING_COMMANDS
    )
    op.create_index(
        "ix_outbox_site_commands",
        "outbox",
        ["site_id", "seq"],
        sqlite_where=sa.text(_PENDING_COMMANDS),
        postgresql_where=sa.text(_PENDING_COMMANDS),
    )
    op.drop_index("ix_audit_events_site", table_name="audit_events")
    op.create_index("ix_audit_events_site_chain", "audit_events", ["site_id", "chain_index"])
    op.create_index(
        "ix_audit_events_couriers",
        "audit_events",
        ["chain_index"],
        sqlite_where=sa.text(_COURIER_EVENTS),
        postgresql_where=sa.text(_COURIER_EVENTS),
    )

    op.create_table(
        "courier_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("code_sealed", sa.Text(), nullable=False),
        sa.Column("all_sites", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("deactivated_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_courier_codes_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courier_codes")),
    )
    op.create_index(
        "uq_courier_codes_active_code",
        "courier_codes",
        ["code_digest"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    op.create_index("ix_courier_codes_org", "courier_codes", ["org_id", "id"])
    op.create_table(
        "courier_code_sites",
        sa.Column("courier_id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["courier_id"],
            ["courier_codes.id"],
            name=op.f("fk_courier_code_sites_courier_id_courier_codes"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_courier_code_sites_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("courier_id", "site_id", name=op.f("pk_courier_code_sites")),
    )
    op.create_index(
        op.f("ix_courier_code_sites_site_id"), "courier_code_sites", ["site_id"], unique=False
    )

    op.create_table(
        "alarms",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("compartment_id", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("raised_by", sa.String(length=80), nullable=False),
        sa.Column("raised_at", _UTC, nullable=False),
        sa.Column("last_raised_at", _UTC, nullable=False),
        sa.Column("closed_at", _UTC, nullable=True),
        sa.Column("closed_reason", sa.String(length=16), nullable=True),
        sa.Column("closed_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["compartment_id"],
            ["compartments.id"],
            name=op.f("fk_alarms_compartment_id_compartments"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_alarms_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    op.create_index(
        "uq_alarms_open",
        "alarms",
        ["site_id", "kind", "compartment_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_alarms_site", "alarms", ["site_id", "id"])

    op.create_table(
        "kiosk_event_receipts",
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", _UTC, nullable=True),
        sa.Column("received_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_kiosk_event_receipts_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("site_id", "id", name=op.f("pk_kiosk_event_receipts")),
    )


def downgrade() -> None:
    op.drop_table("kiosk_event_receipts")
    op.drop_index("ix_alarms_site", table_name="alarms")
    op.drop_index("uq_alarms_open", table_name="alarms")
    op.drop_table("alarms")
    op.drop_index(op.f("ix_courier_code_sites_site_id"), table_name="courier_code_sites")
    op.drop_table("courier_code_sites")
    op.drop_index("ix_courier_codes_org", table_name="courier_codes")
    op.drop_index("uq_courier_codes_active_code", table_name="courier_codes")
    op.drop_table("courier_codes")
    op.drop_index("ix_audit_events_couriers", table_name="audit_events")
    op.drop_index("ix_audit_events_site_chain", table_name="audit_events")
    op.create_index("ix_audit_events_site", "audit_events", ["site_id"])
    op.drop_index("ix_outbox_site_commands", table_name="outbox")
    # In place, as added (SQLite 3.35 or later drops a column itself).
    op.drop_column("outbox", "site_id")
    op.drop_index("ix_credential_sets_site_active", table_name="credential_sets")
    for column in ("kiosk_phone", "kiosk_qr", "kiosk_pin"):
        op.drop_column("credential_sets", column)
    op.drop_index("uq_compartments_board_lock", table_name="compartments")
    op.drop_column("compartments", "lock")
    op.drop_column("compartments", "board")
