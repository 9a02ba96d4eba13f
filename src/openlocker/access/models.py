"""Pickup credentials, kept only as HMAC digests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

KINDS = ("pin", "qr", "link")


class CredentialSet(Base):
    """The PIN, QR token and link token issued to a parcel together, as HMAC digests.

    One row per issue, not per code: a deposit writes (and a pickup voids) one row with
    its indexes, and its foreign key is checked once.
    """

    __tablename__ = "credential_sets"
    __table_args__ = (
        # A PIN is unique among the site's active parcels.
        Index(
            "uq_credential_sets_active_pin",
            "site_id",
            "pin_digest",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
        # Lookups by code, active or not (a used or voided code gets its own answer).
        Index("ix_credential_sets_pin_digest", "pin_digest"),
        Index("ix_credential_sets_qr_digest", "qr_digest"),
        Index("ix_credential_sets_link_digest", "link_digest"),
        # A kiosk's first sync pages through its site's active sets by id.
        Index(
            "ix_credential_sets_site_active",
            "site_id",
            "id",
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    parcel_id: Mapped[str] = mapped_column(ForeignKey("parcels.id"), index=True)
    #: The parcel's site, for the PIN's uniqueness (the foreign key is the parcel's).
    site_id: Mapped[str] = mapped_column(String(40))
    pin_digest: Mapped[str] = mapped_column(String(64))
    qr_digest: Mapped[str] = mapped_column(String(64))
    link_digest: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: Which of the three opened the compartment.
    used_kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    #: HMAC of the recipient's phone suffix, when the parcel has a phone: a PIN typed with
    #: that suffix is counted in its own bucket (``PinAttempts``).
    phone_tag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Set for an order's one set, which opens every item of the order; ``parcel_id`` is then
    #: the order's first item. Such a set is voided with its order, not with a parcel.
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    #: The PIN and QR token, AES-GCM sealed under a key derived from the link token, so the
    #: link's page can show them and nobody without the link can (``credentials.seal_for_link``).
    sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Wrong presence codes typed on the link's page, with the PIN's lockout schedule.
    presence_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    presence_last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    presence_locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: The PIN, QR token and phone suffix as the site's kiosk sees them: HMACs under the
    #: site's kiosk digest key (``access.credentials.kiosk_digest``), so the kiosk decides
    #: offline and its store opens nothing elsewhere. None for sets issued before them.
    kiosk_pin: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kiosk_qr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kiosk_phone: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PinAttempts(Base):
    """Consecutive wrong typed PINs in one bucket of a site, shared by every server process.

    ``bucket`` is ``''`` for PINs typed alone, else the tag of the phone suffix typed with
    them. Rows appear with the first wrong PIN of their bucket.
    """

    __tablename__ = "pin_attempts"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    #: Typed PINs refused during the current lockout; only the first one is an audit event.
    refusals: Mapped[int] = mapped_column(Integer, default=0)
