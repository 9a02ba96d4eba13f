"""Sites, size classes and compartments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

COMPARTMENT_STATES = ("free", "reserved", "occupied", "out_of_service")
TEMPERATURES = ("ambient", "chilled", "frozen")
ALWAYS_OPEN: dict[str, Any] = {"always": True}


class SizeClass(Base):
    """A compartment size: inner dimensions in mm. Sizes are data, so a network adds its own."""

    __tablename__ = "size_classes"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    width_mm: Mapped[int] = mapped_column(Integer)
    height_mm: Mapped[int] = mapped_column(Integer)
    depth_mm: Mapped[int] = mapped_column(Integer)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    dwell_hours: Mapped[int] = mapped_column(Integer, default=72)
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    #: Hours a recipient may extend the dwell deadline by, once, from the pickup page (0: never).
    extension_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    #: Recipients' messages: language and time zone (unset: the network's defaults), a
    #: reminder this many hours before the deadline (unset: none), a notice at expiry.
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reminder_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expiry_notice: Mapped[bool] = mapped_column(Boolean, server_default=true())


class Compartment(Base):
    __tablename__ = "compartments"
    __table_args__ = (
        UniqueConstraint("site_id", "label"),
        # One lock drives one door (NULLs, compartments not mapped yet, do not collide).
        Index("uq_compartments_board_lock", "site_id", "board", "lock", unique=True),
        # Every lifecycle updates its compartment twice. With room left on each page and no
        # index on the columns that change, PostgreSQL updates in place (HOT) and vacuums
        # the small, hot table often, so claims do not slow down as dead rows pile up.
        {
            "postgresql_with": {
                "fillfactor": 50,
                "autovacuum_vacuum_scale_factor": 0.0,
                "autovacuum_vacuum_threshold": 1000,
            }
        },
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    label: Mapped[str] = mapped_column(String(16))
    size_code: Mapped[str] = mapped_column(ForeignKey("size_classes.code"))
    temperature: Mapped[str] = mapped_column(String(10), default="ambient")
    floor_height_mm: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="free")
    door: Mapped[str] = mapped_column(String(8), default="closed")
    use_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Which lock board (its bus address) and which lock on it opens the door, for the
    #: site's kiosk; None for compartments created before the kiosk channel, until mapped.
    board: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lock: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ZonePolicy(Base):
    """A site's rules for one temperature zone; a zone without a row uses ``DEFAULT_ZONES``."""

    __tablename__ = "zone_policies"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    temperature: Mapped[str] = mapped_column(String(10), primary_key=True)
    #: How long a parcel waits in this zone (at most the site's ``dwell_hours``).
    dwell_hours: Mapped[int] = mapped_column(Integer)
    #: After a temperature fault, parcels of the zone must be collected within this time.
    fault_hours: Mapped[int] = mapped_column(Integer)
