"""What the fleet channel knows of each kiosk, and of each command it carried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime


class FleetKiosk(Base):
    """A site's kiosk as the consumer last heard of it. Written by the consumer alone."""

    __tablename__ = "fleet_kiosks"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    #: ``online`` or ``offline``; why (``connected``, ``heartbeat``, ``shutdown``,
    #: ``connection_lost``, ``silent``) and since when.
    status: Mapped[str] = mapped_column(String(8))
    status_reason: Mapped[str] = mapped_column(String(20))
    status_since: Mapped[datetime] = mapped_column(UtcDateTime())
    #: When the server last received anything live from the kiosk (its own clock aside).
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    version: Mapped[str | None] = mapped_column(String(40), nullable=True)
    uptime_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    queued_events: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The kiosk's clock minus the server's at the last heartbeat (commands expire by it).
    clock_offset_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: ``sent_at`` of the newest presence or heartbeat applied: older ones arriving late
    #: (a last will after a reconnect, a retained message) change nothing.
    last_message_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: Marked offline for silence, with ``kiosk_silent`` raised, until it is heard again.
    silent: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    state_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class FleetCommand(Base):
    """A kiosk command (an outbox row, by the same id) as the channel carried it."""

    __tablename__ = "fleet_commands"
    __table_args__ = (Index("ix_fleet_commands_site", "site_id"),)

    command_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(40))
    compartment_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    transaction_id: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    publish_count: Mapped[int] = mapped_column(Integer, default=0)
    first_published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: Published again from then on while unanswered and not expired.
    next_publish_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    result: Mapped[str | None] = mapped_column(String(12), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    #: The kiosk's answer as it came (door, lock, detail).
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
