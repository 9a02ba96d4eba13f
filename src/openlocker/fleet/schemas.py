"""Request and response models: courier codes, a kiosk's sync and event push, alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from openlocker.lockers.schemas import CompartmentOut

Id = Annotated[str, Field(min_length=1, max_length=40)]
#: An alarm kind: ``door_left_open``, ``door_forced``, ``item_left``, ``board_fault``, …
AlarmKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- courier codes -------------------------------------------------------------------------


class CourierIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    #: Where the code opens courier mode; absent or null: at every site.
    site_ids: list[Id] | None = Field(default=None, min_length=1, max_length=1000)


class CourierOut(BaseModel):
    id: str
    org_id: str
    name: str
    site_ids: list[str] | None
    active: bool
    created_at: datetime
    deactivated_at: datetime | None = None


class CourierCreated(CourierOut):
    #: The code itself, shown this once: the server keeps only a digest and a sealed copy.
    code: str


class CourierList(BaseModel):
    items: list[CourierOut]
    next_cursor: str | None = None


# --- sync ----------------------------------------------------------------------------------


class SyncSite(BaseModel):
    id: str
    name: str
    address: str
    language: str | None
    timezone: str | None
    opening_hours: dict[str, Any]


class PublicKey(BaseModel):
    version: int
    public_key: str


class CompartmentRef(BaseModel):
    id: str
    label: str


class SyncCredential(BaseModel):
    """A credential set as the kiosk stores it: kiosk digests only (``access.credentials``)."""

    id: str
    parcel_id: str
    order_id: str | None
    pin: str | None
    qr: str | None
    phone: str | None
    expires_at: datetime
    active: bool
    #: Used up by a pickup (the kiosk answers ``code_used`` rather than ``invalid_code``).
    used: bool
    #: The doors it opens now (the parcel's, or every waiting item's of an order).
    compartments: list[CompartmentRef]
    #: An order's items for adults only: the kiosk's pickup answer says so (ID first).
    age_restricted: bool = False


class SyncCourier(BaseModel):
    id: str
    org_id: str
    name: str
    #: The kiosk digest (kind ``courier``) of the code; null once inactive here.
    code: str | None
    active: bool


class SyncSize(BaseModel):
    """A size class of the network: a compartment's inner dimensions."""

    code: str
    width_mm: int
    height_mm: int
    depth_mm: int


class SyncExpected(BaseModel):
    parcel_id: str
    tracking_number: str
    org_id: str
    size: str | None
    #: The parcel's box, when announced with one (``length``, ``width``, ``height``).
    dimensions_mm: dict[str, int] | None = None
    temperature: str
    accessible: bool = False
    #: The reserved compartment, if any.
    compartment_id: str | None
    order_id: str | None
    active: bool


class SyncCommand(BaseModel):
    id: str
    type: Literal["open"] = "open"
    compartment_id: str
    label: str
    parcel_id: str | None
    reason: str
    expires_at: datetime
    created_at: datetime


class SyncOut(BaseModel):
    site: SyncSite
    digest_key: str
    public_keys: list[PublicKey]
    sizes: list[SyncSize]
    #: Whole in the answer that ends a run (``more`` false), null while ``more`` is true.
    compartments: list[CompartmentOut] | None
    credentials: list[SyncCredential]
    couriers: list[SyncCourier]
    expected: list[SyncExpected]
    commands: list[SyncCommand]
    cursor: str
    more: bool


# --- events --------------------------------------------------------------------------------


class KioskEvent(BaseModel):
    """What every event carries. Extra members are ignored (a newer kiosk may send more)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    seq: int | None = Field(default=None, ge=0, le=2**62)
    at: AwareDatetime
    offline: bool = False


class PickupEvent(KioskEvent):
    type: Literal["pickup"]
    credential_id: Id
    method: Literal["pin", "qr", "link"]
    compartments: list[Id] = Field(min_length=1, max_length=50)


class DepositEvent(KioskEvent):
    type: Literal["deposit"]
    parcel_id: Id
    compartment_id: Id
    courier_id: Id | None = None


class DoorEvent(KioskEvent):
    type: Literal["door"]
    compartment_id: Id
    door: Literal["open", "closed"]
    commanded: bool = False


class AlarmEvent(KioskEvent):
    type: Literal["alarm"]
    kind: AlarmKind
    compartment_id: Id | None = None
    state: Literal["raised", "cleared"] = "raised"
    detail: dict[str, Any] | str | None = None


class OutOfServiceEvent(KioskEvent):
    type: Literal["out_of_service"]
    compartment_id: Id
    reason: str = Field(default="", max_length=200)


class InServiceEvent(KioskEvent):
    type: Literal["in_service"]
    compartment_id: Id


class RefusedEvent(KioskEvent):
    type: Literal["refused"]
    method: Literal["pin", "qr", "link", "courier", "tracking_number"]
    reason: str = Field(min_length=1, max_length=64)
    count: int = Field(default=1, ge=1, le=1_000_000)
    #: With ``count`` over 1: when the last of them was refused (``at`` is the first).
    last_at: AwareDatetime | None = None


class CommandEvent(KioskEvent):
    type: Literal["command"]
    command_id: Id
    result: Literal["opened", "expired", "failed", "declined"]


AnyEvent = Annotated[
    PickupEvent
    | DepositEvent
    | DoorEvent
    | AlarmEvent
    | OutOfServiceEvent
    | InServiceEvent
    | RefusedEvent
    | CommandEvent,
    Field(discriminator="type"),
]


class EventsIn(Strict):
    #: Each event is checked on its own: a malformed one is ``rejected``, the rest go on.
    events: list[dict[str, Any]] = Field(max_length=500)


class EventResult(BaseModel):
    id: str | None
    status: Literal["applied", "duplicate", "conflict", "rejected"]
    code: str | None = None
    detail: str | None = None
    #: For ``duplicate``: what the first push of the event got.
    first_status: Literal["applied", "conflict", "rejected"] | None = None


class EventResults(BaseModel):
    results: list[EventResult]


# --- alarms --------------------------------------------------------------------------------


class AlarmOut(BaseModel):
    id: str
    site_id: str
    compartment_id: str | None
    kind: str
    state: Literal["open", "closed"]
    count: int
    detail: dict[str, Any]
    raised_by: str
    raised_at: datetime
    last_raised_at: datetime
    closed_at: datetime | None = None
    closed_reason: Literal["cleared", "acknowledged"] | None = None
    closed_by: str | None = None


class AlarmList(BaseModel):
    items: list[AlarmOut]
    next_cursor: str | None = None
