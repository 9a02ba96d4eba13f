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
    prev_hash: str
    hash: str


class EventList(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = None
