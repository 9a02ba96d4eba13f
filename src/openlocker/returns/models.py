"""Return codes: a customer drops a parcel at any locker; a courier collects it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

STATUSES = ("issued", "dropped_off", "collected")


class ReturnCode(Base):
    """A return the carrier or retailer expects; the code is stored only as an HMAC.

    At drop-off it becomes a parcel (``parcel_id``) that is ``awaiting_collection``.
    """

    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("org_id", "reference"),
        Index("ix_returns_org_id", "org_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    reference: Mapped[str] = mapped_column(String(48))
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    size_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    length_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    width_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height_mm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    customer: Mapped[dict[str, Any]] = mapped_column(JSON)
    parcel_id: Mapped[str | None] = mapped_column(ForeignKey("parcels.id"), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    dropped_off_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
