"""Click & collect orders: the retailer's view of several parcels collected together."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

STATUSES = (
    "reserved",
    "loading",
    "ready",
    "partially_collected",
    "collected",
    "expired",
    "cancelled",
)


class Order(Base):
    """An order; each of its items is a parcel (``parcels.order_id``) in the parcel lifecycle.

    ``status`` follows from its items' statuses (``orders.service.order_status``) and is
    stored so lists can filter on it.
    """

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("retailer_org_id", "reference"),
        Index("ix_orders_retailer_id", "retailer_org_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    retailer_org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    reference: Mapped[str] = mapped_column(String(48))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[dict[str, Any]] = mapped_column(JSON)
    notify: Mapped[str] = mapped_column(String(10))
    age_restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    item_count: Mapped[int] = mapped_column(Integer)
    ready_from: Mapped[datetime] = mapped_column(UtcDateTime())
    collect_by: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
