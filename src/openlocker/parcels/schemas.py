"""Request and response models of the parcel API (see DESIGN.md, "Interfaces")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from openlocker.core.config import get_settings
from openlocker.lockers.schemas import Temperature

Status = Literal[
    "announced",
    "deposited",
    "picked_up",
    "cancelled",
    "expired",
    "returned",
    "awaiting_collection",
    "collected",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dimensions(Strict):
    """Outer dimensions in millimetres; any orientation is tried."""

    length: int = Field(gt=0, le=3000)
    width: int = Field(gt=0, le=3000)
    height: int = Field(gt=0, le=3000)


class Recipient(Strict):
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    #: Stored in E.164 (``+48600100200``); a number without a country code is read as one of
    #: ``OPENLOCKER_PHONE_REGION``. Its last digits stay those typed, for the PIN's phone suffix.
    phone: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    #: Where the recipient lives, for route planning (``openlocker plan routes --from-db``).
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("phone")
    @classmethod
    def _e164(cls, phone: str | None) -> str | None:
        return None if phone is None else normalise_phone(phone, get_settings().phone_region)


def normalise_phone(phone: str, region: str) -> str:
    """``phone`` in E.164; ``ValueError`` when it is not a possible, valid number."""
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"not a phone number ({error._msg})") from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number; give it with its country code, e.g. +48…")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class AnnounceIn(Strict):
    tracking_number: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    site_id: str = Field(min_length=1, max_length=40)
    size: str | None = Field(default=None, min_length=1, max_length=8)
    dimensions_mm: Dimensions | None = None
    weight_g: int | None = Field(default=None, gt=0, le=100_000)
    temperature: Temperature = "ambient"
    accessible: bool = False
    recipient: Recipient = Field(default_factory=Recipient)
    notify: Literal["openlocker", "sender"] = "openlocker"
    reserve: bool = False

    @model_validator(mode="after")
    def _needs_size_and_contact(self) -> AnnounceIn:
        if self.size is None and self.dimensions_mm is None:
            raise ValueError("give either size or dimensions_mm")
        if self.notify == "openlocker" and not (self.recipient.email or self.recipient.phone):
            raise ValueError("notify 'openlocker' needs recipient.email or recipient.phone")
        return self


class CompartmentRef(BaseModel):
    id: str
    label: str
    size: str


class PickupCredentials(BaseModel):
    """Returned only with ``notify: "sender"``; never stored in plain text."""

    pin: str
    qr: str
    link: str
    expires_at: datetime


class ParcelOut(BaseModel):
    """A parcel as clients see it; fields it does not have yet are left out."""

    id: str
    tracking_number: str
    site_id: str
    status: Status
    size: str | None = None
    dimensions_mm: Dimensions | None = None
    temperature: Temperature
    accessible: bool
    notify: str
    compartment: CompartmentRef | None = None
    reserved_until: datetime | None = None
    dwell_deadline: datetime | None = None
    announced_at: datetime
    deposited_at: datetime | None = None
    picked_up_at: datetime | None = None
    cancelled_at: datetime | None = None
    expired_at: datetime | None = None
    returned_at: datetime | None = None
    collected_at: datetime | None = None
    #: Set for an order's item (``/v1/orders``), which only its order moves.
    order_id: str | None = None
    deadline_extended_at: datetime | None = None
    pickup: PickupCredentials | None = None

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class ParcelList(BaseModel):
    items: list[ParcelOut]
    next_cursor: str | None = None


class PickupIn(Strict):
    pin: str | None = Field(default=None, min_length=1, max_length=32)
    qr: str | None = Field(default=None, min_length=1, max_length=512)
    link: str | None = Field(default=None, min_length=1, max_length=128)
    #: With ``pin`` only: the recipient's phone number, or at least its last 4 digits. Wrong
    #: PINs typed with a phone suffix are counted apart, so a lockout of PINs typed alone
    #: does not stop a recipient who adds theirs (docs/security.md).
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{4,24}$")
    #: ``kiosk``: the calling kiosk opens the door itself (a code its own store did not
    #: know), so no door command is queued; ``command`` (default): the server sends one.
    door: Literal["command", "kiosk"] = "command"

    @model_validator(mode="after")
    def _exactly_one(self) -> PickupIn:
        if sum(v is not None for v in (self.pin, self.qr, self.link)) != 1:
            raise ValueError("give exactly one of pin, qr or link")
        if self.phone is not None and self.pin is None:
            raise ValueError("phone goes only with pin")
        if self.phone is not None and sum(c.isdigit() for c in self.phone) < 4:
            raise ValueError("phone needs at least its last 4 digits")
        return self

    @property
    def kind_and_secret(self) -> tuple[str, str]:
        for kind in ("pin", "qr", "link"):
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        raise AssertionError("validated to hold one")


class PickupOut(BaseModel):
    """What opens: ``compartments`` lists every door (one for a parcel, each item still
    waiting for an order's code); ``parcel_id`` and ``compartment`` are the first of them."""

    parcel_id: str
    tracking_number: str
    status: Status
    compartment: CompartmentRef
    compartments: list[CompartmentRef]
    order_id: str | None = None
    #: The order's goods need an age check before they are handed over (the kiosk asks).
    age_restricted: bool | None = None

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}
