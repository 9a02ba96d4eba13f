"""Request and response models of returns and collection manifests (docs/orders.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import EmailStr, Field, field_validator, model_validator

from openlocker.core.config import get_settings
from openlocker.orders.schemas import WithoutNulls
from openlocker.parcels.schemas import (
    CompartmentRef,
    Dimensions,
    Status,
    Strict,
    normalise_phone,
)

ReturnStatus = Literal["issued", "dropped_off", "collected"]


class Customer(Strict):
    """Who drops the return off. The receipt goes to ``email`` and, by SMS, to ``phone``
    (validated and stored as at announce: E.164); with neither, no receipt is sent."""

    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=200)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")

    @field_validator("phone")
    @classmethod
    def _e164(cls, phone: str | None) -> str | None:
        return None if phone is None else normalise_phone(phone, get_settings().phone_region)


class ReturnIn(Strict):
    reference: str = Field(min_length=1, max_length=48, pattern=r"^[\x21-\x7e]+$")
    size: str | None = Field(default=None, min_length=1, max_length=8)
    dimensions_mm: Dimensions | None = None
    customer: Customer
    #: The code works at any site for this many days.
    valid_days: int = Field(default=30, ge=1, le=90)

    @model_validator(mode="after")
    def _needs_size(self) -> ReturnIn:
        if self.size is None and self.dimensions_mm is None:
            raise ValueError("give either size or dimensions_mm")
        return self


class ReturnOut(WithoutNulls):
    id: str
    reference: str
    status: ReturnStatus
    size: str | None = None
    dimensions_mm: Dimensions | None = None
    expires_at: datetime
    created_at: datetime
    parcel_id: str | None = None
    dropped_off_at: datetime | None = None
    #: Only in the answer that issues it: the server keeps an HMAC, never the code.
    code: str | None = None


class DropOffIn(Strict):
    #: The return code, as printed (``XXXX-XXXX-XXXX-XXXX``) or typed in any case.
    code: str = Field(min_length=16, max_length=40)
    #: ``kiosk``: the kiosk opens the door itself (its own screen), so no door command is
    #: queued; by default the server sends the site's kiosk one.
    door: Literal["command", "kiosk"] = "command"


class DropOffOut(WithoutNulls):
    return_id: str
    reference: str
    parcel_id: str
    status: Status
    compartment: CompartmentRef


class ManifestItem(WithoutNulls):
    parcel_id: str
    tracking_number: str
    status: Status
    kind: Literal["return", "expired"]
    compartment: CompartmentRef | None = None
    #: A return's reference.
    reference: str | None = None


class Manifest(WithoutNulls):
    site_id: str
    items: list[ManifestItem]


class ScanIn(Strict):
    #: ``missing``: the door opened on an empty compartment (a discrepancy).
    outcome: Literal["collected", "missing"] = "collected"
    #: With the site's kiosk key: the courier signed in at the kiosk, whose organization's
    #: manifest this is.
    courier_id: str | None = Field(default=None, max_length=40)
    #: ``kiosk``: the kiosk opened the door itself; no door command is queued.
    door: Literal["command", "kiosk"] = "command"


class ScanOut(WithoutNulls):
    parcel_id: str
    status: Status
    outcome: Literal["collected", "missing"]
    compartment: CompartmentRef | None = None
