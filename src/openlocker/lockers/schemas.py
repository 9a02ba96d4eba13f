"""Request and response models for sites and compartments."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Temperature = Literal["ambient", "chilled", "frozen"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: Locks per board in the default map: compartment n of a site is lock n % 16 of board n // 16.
LOCKS_PER_BOARD = 16


class CompartmentIn(Strict):
    label: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9-]+$")
    size: str = Field(min_length=1, max_length=8)
    temperature: Temperature = "ambient"
    floor_height_mm: int = Field(ge=0, le=3000)
    #: The lock board (bus address) and lock that open its door; both or neither. Neither:
    #: compartment n of the site (from 0, in the order given) is board n // 16, lock n % 16.
    board: int | None = Field(default=None, ge=0, le=255)
    lock: int | None = Field(default=None, ge=0, le=255)

    @model_validator(mode="after")
    def _board_with_lock(self) -> CompartmentIn:
        if (self.board is None) != (self.lock is None):
            raise ValueError("give both board and lock, or neither")
        return self


class SiteIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=400)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    opening_hours: dict[str, Any] = Field(default_factory=lambda: {"always": True})
    dwell_hours: int = Field(default=72, ge=1, le=24 * 30)
    #: Hours a recipient may extend the deadline by, once, from the pickup page; 0: never.
    extension_hours: int = Field(default=24, ge=0, le=24 * 14)
    compartments: list[CompartmentIn] = Field(default_factory=list, max_length=2000)
    #: Recipients' messages: their language and time zone (unset: the network's defaults),
    #: a reminder this many hours before the deadline (``null``: none), a notice at expiry.
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    timezone: str | None = Field(default=None, max_length=64)
    reminder_hours: int | None = Field(default=24, ge=1, le=24 * 30)
    expiry_notice: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str | None) -> str | None:
        try:
            return None if name is None else ZoneInfo(name).key
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {name!r}") from error


class FreeCount(BaseModel):
    size: str
    temperature: Temperature
    free: int


class CompartmentOut(BaseModel):
    id: str
    label: str
    size: str
    temperature: str
    floor_height_mm: int
    state: str
    door: str
    #: The lock board and lock that open the door (None: not mapped yet).
    board: int | None = None
    lock: int | None = None


class CompartmentList(BaseModel):
    items: list[CompartmentOut]
    next_cursor: str | None = None


class SiteOut(BaseModel):
    id: str
    name: str
    address: str
    lat: float
    lon: float
    opening_hours: dict[str, Any]
    dwell_hours: int
    extension_hours: int
    public_key: str
    key_version: int
    compartments_total: int
    free: list[FreeCount]
    language: str | None = None
    timezone: str | None = None
    reminder_hours: int | None = None
    expiry_notice: bool = True
    compartments: list[CompartmentOut] | None = None


class SiteList(BaseModel):
    items: list[SiteOut]
    next_cursor: str | None = None


class ZoneIn(Strict):
    #: How long a parcel waits in the zone; at most the site's own ``dwell_hours``.
    dwell_hours: int = Field(ge=1, le=24 * 30)
    #: After a temperature fault, the zone's parcels must be collected within this time.
    fault_hours: int = Field(ge=1, le=72)


class ZoneOut(BaseModel):
    temperature: Temperature
    dwell_hours: int
    fault_hours: int


class ZoneList(BaseModel):
    items: list[ZoneOut]
