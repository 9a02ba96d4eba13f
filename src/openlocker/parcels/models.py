"""Parcels and idempotency records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

STATUSES = (
    "announced",
    "deposited",
    "picked_up",
    "cancelled",
    "expired",
    "returned",
    "awaiting_collection",
    "collected",
)
#: A parcel in one of these holds its compartment.
HOLDING = ("announced", "deposited", "expired", "awaiting_collection")
_LIVE = (
    "compartment_id IS NOT NULL"
    " AND status IN ('announced','deposited','expired','awaiting_collection')"
)


class Parcel(Base):
    __tablename__ = "parcels"
    __table_args__ = (
        UniqueConstraint("carrier_org_id", "tracking_number"),
        # Two live parcels never share a compartment, whatever the application does.
        Index(
            "uq_parcels_live_compartment",
            "compartment_id",
            unique=True,
            sqlite_where=text(_LIVE),
            postgresql_where=text(_LIVE),
        ),
        Index("ix_parcels_status_deadline", "status", "dwell_deadline"),
        Index("ix_parcels_carrier_id", "carrier_org_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    carrier_org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    tracking_number: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    size_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    length_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    width_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weight_g: Mapped[int | None] = mapped_column(Integer, nullable=True)
    temperature: Mapped[str] = mapped_column(String(10), default="ambient")
    accessible: Mapped[bool] = mapped_column(Boolean, default=False)
    recipient: Mapped[dict[str, Any]] = mapped_column(JSON)
    notify: Mapped[str] = mapped_column(String(10))
    compartment_id: Mapped[str | None] = mapped_column(ForeignKey("compartments.id"), nullable=True)
    reserved_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    dwell_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    announced_at: Mapped[datetime] = mapped_column(UtcDateTime())
    deposited_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    picked_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: A return's collection by its courier.
    collected_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: The order this parcel is an item of (``orders/``), if any. No foreign key: adding one
    #: to a table others refer to makes SQLite copy the table, which breaks their keys.
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    #: When the recipient extended the dwell deadline (once) from the pickup page.
    deadline_extended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class IdempotencyRecord(Base):
    """The first answer to a request sent with an ``Idempotency-Key``."""

    __tablename__ = "idempotency_records"

    org_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
