"""Delivery attempts of outbox messages, and the demo's mailbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.audit.models import BigId
from openlocker.core.db import Base, UtcDateTime

#: An attempt's outcome: delivered, failed for now (retried), failed for good, not sent
#: because it is no longer useful, or not known (a dispatcher stopped while sending).
OUTCOMES = ("sent", "retry", "failed", "skipped", "unknown")


class DeliveryAttempt(Base):
    """One try at delivering one outbox message over one channel (``email``, ``sms``).

    ``error`` is the channel's answer with every code of the message taken out.
    """

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_outbox", "outbox_id", "channel"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class MailboxMessage(Base):
    """A message as its recipient would see it, kept by the demo's built-in mailbox.

    This table holds pickup codes in plain text, as an inbox does: it is written only when
    the mailbox transport is on (``openlocker demo``), never in production.
    """

    __tablename__ = "mailbox_messages"
    __table_args__ = (UniqueConstraint("outbox_id", "channel"),)

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(400), nullable=True)
    #: The whole email (MIME) or the SMS text.
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
