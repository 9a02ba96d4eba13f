"""The hash-chained audit log, its signed checkpoints, and the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")
#: The audit events of courier codes, which every site's kiosk syncs.
COURIER_EVENTS = "name IN ('courier.created', 'courier.deactivated')"
#: Pending locker commands, which a site's kiosk syncs (``fleet.sync``).
PENDING_COMMANDS = "topic = 'kiosk.open_compartment' AND state = 'pending'"


class AuditEvent(Base):
    """One state change, written in the transaction that made it.

    The sealer later gives it its place in the chain (``chain_index``) and ``hash``, which
    covers the event and ``prev_hash``, the hash of the event before it in the chain.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_parcel", "parcel_id"),
        # A site's sealed trail in order: the kiosk's sync cursor (``fleet.sync``).
        Index("ix_audit_events_site_chain", "site_id", "chain_index"),
        # Courier codes belong to no one site; every kiosk's sync reads their changes.
        Index(
            "ix_audit_events_couriers",
            "chain_index",
            sqlite_where=text(COURIER_EVENTS),
            postgresql_where=text(COURIER_EVENTS),
        ),
        Index(
            "ix_audit_events_unsealed",
            "seq",
            sqlite_where=text("chain_index IS NULL"),
            postgresql_where=text("chain_index IS NULL"),
        ),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    actor: Mapped[str] = mapped_column(String(80))
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    parcel_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    compartment_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    chain_index: Mapped[int | None] = mapped_column(BigId, unique=True, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditHead(Base):
    """The chain's last hash and length; locking this row serializes sealers."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigId)


class AuditCheckpoint(Base):
    """The chain's length and head hash at one moment, signed with the server's audit key.

    A copy of each row is appended to ``audit-checkpoints.jsonl`` in the data folder, out of
    reach of someone who can only write to the database (``audit.checkpoints``).
    """

    __tablename__ = "audit_checkpoints"
    #: The sealer's newest checkpoint of its key is one index lookup, however many there are.
    __table_args__ = (Index("ix_audit_checkpoints_key", "key_id", "count"),)

    count: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: Which key signed it (``audit.checkpoints.key_id``): the secret key may have changed since.
    key_id: Mapped[str] = mapped_column(String(16))
    #: Ed25519 over ``audit.checkpoints.signed_bytes``, base64url.
    signature: Mapped[str] = mapped_column(String(86))


#: Topics of which a parcel gets at most one message (``notify.service.queue_notices``).
ONCE_PER_PARCEL = ("recipient.reminder", "recipient.expired")
_ONCE = "topic IN ('recipient.reminder', 'recipient.expired')"


class OutboxMessage(Base):
    """A side effect waiting to leave after its transaction committed.

    ``state``: ``pending`` (due at ``available_at``), ``sending`` (claimed by a dispatcher
    until ``claimed_until``), ``sent``, ``skipped`` (no longer worth sending, with the reason
    in ``last_error``) or ``dead`` (failed for good; an operator may retry it).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "sent_at", "available_at"),
        Index("ix_outbox_due", "state", "topic", "available_at"),
        # Sealed credentials are kept until their parcel leaves the locker (for reminders).
        Index(
            "ix_outbox_sealed",
            "parcel_id",
            sqlite_where=text("sealed IS NOT NULL"),
            postgresql_where=text("sealed IS NOT NULL"),
        ),
        Index(
            "uq_outbox_once",
            "parcel_id",
            "topic",
            unique=True,
            sqlite_where=text(_ONCE),
            postgresql_where=text(_ONCE),
        ),
        Index(
            "ix_outbox_site_commands",
            "site_id",
            "seq",
            sqlite_where=text(PENDING_COMMANDS),
            postgresql_where=text(PENDING_COMMANDS),
        ),
    )

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    topic: Mapped[str] = mapped_column(String(80))
    parcel_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Credentials for the recipient's message, AES-GCM sealed with the server key.
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    available_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(12), server_default="pending")
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: Why the last attempt failed or the message was skipped; never holds a code.
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The site a locker command is for, so its kiosk finds its own commands.
    site_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
