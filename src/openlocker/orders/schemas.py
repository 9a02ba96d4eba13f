"""Request and response models of the order API (docs/orders.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from openlocker.lockers.schemas import Temperature
from openlocker.parcels.schemas import (
    CompartmentRef,
    Dimensions,
    PickupCredentials,
    Recipient,
    Status,
    Strict,
)

OrderStatus = Literal[
    "reserved", "loading", "ready", "partially_collected", "collected", "expired", "cancelled"
]
#: Most items one order may have: a locker column, and a bound on one transaction's claims.
MAX_ITEMS = 20


class WithoutNulls(BaseModel):
    """Leaves out fields that are None: a thing shows only what it has."""

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class OrderItemIn(Strict):
    size: str | None = Field(default=None, min_length=1, max_length=8)
    dimensions_mm: Dimensions | None = None
    temperature: Temperature = "ambient"

    @model_validator(mode="after")
    def _needs_size(self) -> OrderItemIn:
        if self.size is None and self.dimensions_mm is None:
            raise ValueError("give either size or dimensions_mm")
        return self


class OrderIn(Strict):
    #: The retailer's own order number; unique per retailer. Items are tracked as
    #: ``<reference>#<n>``.
    reference: str = Field(min_length=1, max_length=48, pattern=r"^[\x21-\x22\x24-\x7e]+$")
    site_id: str = Field(min_length=1, max_length=40)
    items: list[OrderItemIn] = Field(min_length=1, max_length=MAX_ITEMS)
    recipient: Recipient = Field(default_factory=Recipient)
    notify: Literal["openlocker", "sender"] = "openlocker"
    ready_from: AwareDatetime
    collect_by: AwareDatetime
    age_restricted: bool = False

    @model_validator(mode="after")
    def _needs_contact(self) -> OrderIn:
        if self.notify == "openlocker" and not (self.recipient.email or self.recipient.phone):
            raise ValueError("notify 'openlocker' needs recipient.email or recipient.phone")
        return self


class OrderItemOut(WithoutNulls):
    parcel_id: str
    tracking_number: str
    status: Status
    size: str | None = None
    dimensions_mm: Dimensions | None = None
    temperature: Temperature
    compartment: CompartmentRef | None = None
    dwell_deadline: datetime | None = None
    deposited_at: datetime | None = None
    picked_up_at: datetime | None = None


class OrderOut(WithoutNulls):
    """An order as the retailer sees it; fields it does not have yet are left out."""

    id: str
    reference: str
    site_id: str
    status: OrderStatus
    notify: str
    age_restricted: bool
    ready_from: datetime
    collect_by: datetime
    created_at: datetime
    ready_at: datetime | None = None
    closed_at: datetime | None = None
    items: list[OrderItemOut]
    #: The doors this call opened (``load``): one per item it loaded.
    opened: list[CompartmentRef] | None = None
    #: With ``notify: "sender"``, in the answer of the load that made the order ready.
    pickup: PickupCredentials | None = None


class OrderList(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = None


class LoadIn(Strict):
    #: One item to load (a kiosk loads item by item); without it every item left is loaded.
    parcel_id: str | None = Field(default=None, min_length=1, max_length=40)


class LeftIn(Strict):
    """A kiosk's report that an item of an order's pickup is still in its compartment."""

    reason: Literal["door_not_opened", "item_left"]


class ZoneFaultIn(Strict):
    #: What the kiosk measured, for the audit trail and the retailer.
    measured_celsius: float | None = Field(default=None, ge=-60, le=80)


class ZoneFaultOut(BaseModel):
    site_id: str
    temperature: Temperature
    #: Parcels of the zone must now be collected by then.
    collect_by: datetime
    moved: int
    orders: list[str]
