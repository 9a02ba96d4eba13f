"""Webhook endpoints, their deliveries and each delivery's attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.audit.models import OutboxMessage
from openlocker.core.db import Base, UtcDateTime

DELIVERY_STATES = ("pending", "delivered", "failed")


class WebhookEndpoint(Base):
    """Where an organization wants its events, and the secret that signs them.

    Secrets are sealed (``Keyring.sealer("webhook-secret")``, bound to the endpoint's id): the
    server must read them to sign, so a digest would not do. A deleted endpoint keeps its row
    for its deliveries' history and loses its secrets.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(JSON)
    secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The secret before the last rotation, which also signs until ``previous_expires_at``.
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WebhookDelivery(Base):
    """One event for one endpoint: ``pending`` until an attempt gets a 2xx (``delivered``) or
    the retries run out (``failed``, replayable). Its id is the ``webhook-id`` header.

    A sender holds a delivery while ``lease_until`` is ahead and ``claim`` is its own; a
    process that dies mid-send lets the lease run out and another sends again.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    outbox_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(80))
    parcel_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: The JSON body, fixed at fan-out so every attempt signs the same bytes.
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    #: Attempts since the delivery was created or last replayed; picks the next delay.
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class WebhookAttempt(Base):
    """One try at a delivery: the answer's status, or why there was none."""

    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)


# The fan-out reads unsent webhook messages oldest first; recipients' messages that wait for
# a mail server must not make it walk past them.
Index(
    "ix_outbox_webhooks_pending",
    OutboxMessage.seq,
    sqlite_where=text("sent_at IS NULL AND topic LIKE 'webhook.%'"),
    postgresql_where=text("sent_at IS NULL AND topic LIKE 'webhook.%'"),
)
