"""Request and response models for sites and compartments."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Temperature = Literal["ambient", "chilled", "frozen"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompartmentIn(Strict):
    label: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9-]+$")
    size: str = Field(min_length=1, max_length=8)
    temperature: Temperature = "ambient"
    floor_height_mm: int = Field(ge=0, le=3000)


class SiteIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=400)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    opening_hours: dict[str, Any] = Field(default_factory=lambda: {"always": True})
    dwell_hours: int = Field(default=72, ge=1, le=24 * 30)
    #: Hours a recipient may extend the deadline by, once, from the pickup page; 0: never.
    extension_hours: int = Field(default=24, ge=0, le=24 * 14)
    #: The language of pages and messages for recipients who gave none (``pl``, ``en`` …).
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    #: The IANA time zone deadlines are shown in (``Europe/Warsaw``).
    timezone: str = Field(default="UTC", max_length=64)
    compartments: list[CompartmentIn] = Field(default_factory=list, max_length=2000)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name


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


class SiteOut(BaseModel):
    id: str
    name: str
    address: str
    lat: float
    lon: float
    opening_hours: dict[str, Any]
    dwell_hours: int
    extension_hours: int
    language: str | None = None
    timezone: str
    public_key: str
    key_version: int
    compartments_total: int
    free: list[FreeCount]
    compartments: list[CompartmentOut] | None = None


class SiteList(BaseModel):
    items: list[SiteOut]
    next_cursor: str | None = None
