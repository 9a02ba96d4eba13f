"""Requests and answers of the fleet channel's routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from openlocker.core.mqtt import CompartmentState


class RemoteOpenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Why the door is opened (kept in the audit log and sent to the kiosk).
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class CompartmentRef(BaseModel):
    id: str
    label: str


class RemoteOpenOut(BaseModel):
    """A remote open and what the kiosk answered: ``confirmed`` when its lock reads open."""

    command_id: str
    transaction_id: str
    site_id: str
    compartment: CompartmentRef
    expires_at: datetime
    confirmed: bool
    #: ``opened``, ``failed``, ``expired``, ``refused``, ``declined`` (the kiosk's answer,
    #: over MQTT or by its event push, whichever came first; a push's expired or declined
    #: reads ``skipped``, as does a command withdrawn or expired on the server), or
    #: ``pending`` (no answer yet; still delivered until ``expires_at``).
    result: str
    reason: str | None = None
    answered_at: datetime | None = None
    #: Whether the command reached the broker yet.
    published: bool
    door: Literal["open", "closed"] | None = None
    locked: bool | None = None


class KioskStateOut(BaseModel):
    sent_at: datetime
    compartments: list[CompartmentState] = Field(default_factory=list)


class KioskOut(BaseModel):
    """A site's kiosk as the fleet channel last heard of it."""

    site_id: str
    #: ``online``, ``offline``, or ``unknown`` (never heard over MQTT).
    status: Literal["online", "offline", "unknown"]
    status_reason: str | None = None
    status_since: datetime | None = None
    last_seen_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    version: str | None = None
    uptime_seconds: float | None = None
    queued_events: int | None = None
    clock_offset_ms: int | None = None
    #: Not heard for ``silence_seconds``: offline, and ``kiosk_silent`` raised.
    silent: bool
    silence_seconds: float
    state: KioskStateOut | None = None
