"""Lock-board drivers: one interface (``BoardDriver``), the ``sim``, ``kerong`` and ``bu8a``
drivers, and ``board_from_spec`` for ``--board SPEC``. See ``docs/kiosk-boards.md``."""

from openlocker.kiosk.boards.base import (
    BoardDriver,
    BoardEvent,
    BoardFaulted,
    BoardRecovered,
    LockState,
    Reading,
    StateChanged,
)
from openlocker.kiosk.boards.faults import (
    Address,
    BoardFault,
    BoardGarbled,
    BoardPortError,
    BoardTimeout,
    BoardWrongAddress,
    LockStuck,
    UnknownLock,
)
from openlocker.kiosk.boards.spec import board_from_spec

__all__ = [
    "Address",
    "BoardDriver",
    "BoardEvent",
    "BoardFault",
    "BoardFaulted",
    "BoardGarbled",
    "BoardPortError",
    "BoardRecovered",
    "BoardTimeout",
    "BoardWrongAddress",
    "LockState",
    "LockStuck",
    "Reading",
    "StateChanged",
    "UnknownLock",
    "board_from_spec",
]
