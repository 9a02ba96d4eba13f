"""Directory entries and the per-site count of directory searches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base, UtcDateTime

#: Where an entry came from, and so who keeps it: a CSV import, an identity provider, the API.
SOURCES = ("csv", "scim", "api")


class DirectoryEntry(Base):
    """Someone who gets parcels at a site. A unit (flat, office) may have several entries.

    ``email`` is stored lower-case and ``phone`` in E.164. ``user_name`` is the SCIM
    ``userName`` an identity provider gave (``user_name_key`` its case-folded form, for
    uniqueness); an entry without one answers to its email there. ``search_key`` is the
    display name and unit folded for search (``directory.search.search_key``).
    """

    __tablename__ = "directory_entries"
    __table_args__ = (
        UniqueConstraint("site_id", "external_id", name="uq_directory_entries_external_id"),
        UniqueConstraint("site_id", "email", name="uq_directory_entries_email"),
        UniqueConstraint("site_id", "user_name_key", name="uq_directory_entries_user_name_key"),
        Index("ix_directory_entries_site_id", "site_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    display_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(40), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    user_name_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(8))
    search_key: Mapped[str] = mapped_column(String(600))
    #: Counts every change: the SCIM ETag.
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DirectorySearches(Base):
    """Directory searches of one site's kiosk in one minute: one row per site, reused."""

    __tablename__ = "directory_searches"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    #: Minutes since the epoch of the count below.
    minute: Mapped[int] = mapped_column(BigInteger)
    searches: Mapped[int] = mapped_column(Integer)
