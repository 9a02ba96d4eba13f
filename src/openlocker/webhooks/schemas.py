"""Request and response models for webhook endpoints and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from openlocker.webhooks.events import EventType


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000, description="https:// on a public address")
    events: list[EventType] = Field(min_length=1, max_length=50)


class EndpointChange(BaseModel):
    """A change to an endpoint; members left out stay as they are."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2000)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=50)
    enabled: bool | None = Field(
        default=None, description="true turns an endpoint disabled by a 410 back on"
    )


class EndpointOut(BaseModel):
    id: str
    org_id: str
    url: str
    events: list[str]
    created_at: datetime
    rotated_at: datetime | None = None
    #: Until then the secret before the last rotation signs too.
    previous_secret_expires_at: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    deleted_at: datetime | None = None


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="whsec_…: shown this once and never again.")


class EndpointList(BaseModel):
    items: list[EndpointOut]
    next_cursor: str | None = None


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str = Field(description="The webhook-id header of every attempt")
    endpoint_id: str
    event_type: str
    parcel_id: str | None = None
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None
    attempts: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = None
