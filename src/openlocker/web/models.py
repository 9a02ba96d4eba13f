"""Unknown link tokens counted per client slot: a table of at most ``SLOTS`` rows."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from openlocker.core.db import Base

#: Client addresses are hashed into this many slots, so the table never grows past it.
SLOTS = 4096


class LinkMisses(Base):
    """Unknown tokens asked for from the client addresses of one slot in one minute.

    One row per slot, reused minute after minute: no cleanup job, and a flood from
    millions of addresses still writes at most ``SLOTS`` rows.
    """

    __tablename__ = "link_misses"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: Minutes since the epoch of the count below.
    minute: Mapped[int] = mapped_column(BigInteger)
    misses: Mapped[int] = mapped_column(Integer)
