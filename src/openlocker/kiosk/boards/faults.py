"""Board faults: typed exceptions with a stable ``code`` the agent turns into alarms."""

from __future__ import annotations

Address = tuple[int, int]
"""(board, lock), both counted from 0 as in the site's compartment map."""


class BoardFault(Exception):
    """A lock board did not do what it was asked. ``code`` is stable; the agent branches on it.

    ``board`` is the board at fault; ``lock`` is set when one lock is at fault.
    """

    code = "board_fault"

    def __init__(self, detail: str, *, board: int, lock: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.board = board
        self.lock = lock


class BoardTimeout(BoardFault):
    """No complete answer came within the timeout, on every attempt."""

    code = "board_timeout"


class BoardGarbled(BoardFault):
    """Answers came, but none was a valid frame (checksum, length, end byte, command)."""

    code = "board_garbled"


class BoardWrongAddress(BoardFault):
    """Only well-formed answers for another address came: two boards share a DIP setting,
    or the wiring crosses buses."""

    code = "board_wrong_address"


class BoardPortError(BoardFault):
    """The serial port cannot be opened, read or written (unplugged adapter, wrong path).

    Opening the port concerns every board on it; ``board`` is 0 then."""

    code = "board_port_error"


class LockStuck(BoardFault):
    """The lock still reads closed after an unlock and one more pulse."""

    code = "lock_stuck"


class UnknownLock(BoardFault):
    """The address is not on this driver's boards: the compartment map and the boards disagree."""

    code = "unknown_lock"
