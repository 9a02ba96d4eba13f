"""Response models of the audit log and its checkpoints."""

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


class CheckpointOut(BaseModel):
    #: The chain's length when signed, and the hash of its last event then.
    count: int
    hash: str
    at: datetime
    #: Which key signed it (``CheckpointList.key_id`` unless the secret key changed since).
    key_id: str
    #: Ed25519, base64url, over ``b"openlocker/audit-checkpoint\0"``, the count (8 bytes),
    #: the hash (32 bytes) and ``at`` in unix microseconds (8 bytes), big-endian.
    signature: str


class CheckpointList(BaseModel):
    #: The server's audit public key (base64url, raw 32 bytes), and its short name.
    public_key: str
    key_id: str
    items: list[CheckpointOut]
    next_cursor: str | None = None
