"""Response models of the outbox API (operators)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

State = Literal["pending", "sending", "sent", "skipped", "dead"]


class AttemptOut(BaseModel):
    """One try over one channel; ``error`` never holds a code."""

    channel: str
    at: datetime
    outcome: Literal["sent", "retry", "failed", "skipped", "unknown"]
    error: str | None = None


class OutboxOut(BaseModel):
    """A message in the outbox; its sealed credentials are never shown."""

    id: str
    topic: str
    parcel_id: str | None
    state: State
    attempts: int
    created_at: datetime | None
    available_at: datetime | None
    sent_at: datetime | None = None
    last_error: str | None = None
    #: Every delivery attempt, oldest first (only for one message, not in lists).
    deliveries: list[AttemptOut] | None = None


class OutboxList(BaseModel):
    items: list[OutboxOut]
    next_cursor: str | None = None
