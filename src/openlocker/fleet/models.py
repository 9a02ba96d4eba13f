"""Courier codes, alarms, and the receipts of kiosk events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

ALARM_STATES = ("open", "closed")
EVENT_STATUSES = ("applied", "conflict", "rejected")


class CourierCode(Base):
    """A code a carrier gives one of its couriers to sign in at kiosks.

    Kept as an HMAC (``code_digest``, unique among active codes) for lookups, and sealed
    (``Keyring.sealer("courier-code")``, bound to the row's id) because each site's kiosk
    needs its own digest of it (``fleet.sync``), which the server cannot derive from an HMAC.
    """

    __tablename__ = "courier_codes"
    __table_args__ = (
        Index(
            "uq_courier_codes_active_code",
            "code_digest",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
        Index("ix_courier_codes_org", "org_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    code_digest: Mapped[str] = mapped_column(String(64))
    code_sealed: Mapped[str] = mapped_column(Text)
    #: Valid at every site; else only at the sites in ``courier_code_sites``.
    all_sites: Mapped[bool] = mapped_column(Boolean)
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    deactivated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CourierCodeSite(Base):
    """A site where a courier code limited to some sites is valid."""

    __tablename__ = "courier_code_sites"

    courier_id: Mapped[str] = mapped_column(ForeignKey("courier_codes.id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True, index=True)


class Alarm(Base):
    """Something at a site an operator must look at: ``open`` until the kiosk clears it or an
    operator acknowledges it. Raised again while open, it counts up instead of repeating."""

    __tablename__ = "alarms"
    __table_args__ = (
        # One open alarm of a kind per compartment (site-wide ones are kept one by a lock).
        Index(
            "uq_alarms_open",
            "site_id",
            "kind",
            "compartment_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_alarms_site", "site_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    compartment_id: Mapped[str | None] = mapped_column(ForeignKey("compartments.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(8))
    #: Times it was raised while open.
    count: Mapped[int] = mapped_column(Integer)
    #: What the last raise said (a kiosk's reading, a feature's numbers); never a code.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Who raised it first (an audit actor: ``key:…``, ``system:…``).
    raised_by: Mapped[str] = mapped_column(String(80))
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: ``cleared`` (its cause ended) or ``acknowledged`` (an operator took it).
    closed_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class KioskEventReceipt(Base):
    """What became of one event a kiosk pushed: a replayed push finds it and changes nothing."""

    __tablename__ = "kiosk_event_receipts"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    #: The kiosk's own id for the event.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), nullable=True
    )
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: When it happened, by the kiosk's clock (at most the time it arrived).
    at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
