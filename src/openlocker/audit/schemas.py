"""Response models of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class EventOut(BaseModel):
    seq: int
    id: str
    name: str
    actor: str
    site_id: str | None
    parcel_id: str | None
    compartment_id: str | None
    at: datetime
    data: dict[str, Any]
    #: Set once the sealer has appended the event to the chain (within about a second).
    chain_index: int | None
    prev_hash: str | None
    hash: str | None


class EventList(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = None
