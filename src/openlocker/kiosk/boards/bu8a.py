"""The ``bu8a`` driver: the common "8A" lock boards, 9600 8N1 by default.

Every frame is ``HEAD BB LL CODE XOR`` with XOR the exclusive or of the four bytes before it.
Unlock is ``8A BB LL 11``, answered ``8A BB LL STATE``; a query is ``80 BB LL 33``, answered
``80 BB LL STATE``; STATE is ``11`` for closed and ``00`` for open. BB and LL are the board's
own numbers, counted from 1 (lock 0 means "every lock" on these boards), so address
(board, lock) goes on the wire as ``board + 1, lock + 1``.
"""

from __future__ import annotations

import asyncio
import functools
import operator

from openlocker.kiosk.boards.base import DEFAULT_POLL_INTERVAL, LockState
from openlocker.kiosk.boards.faults import Address, BoardFault
from openlocker.kiosk.boards.serialbus import Expect, Refusal, SerialBoard

UNLOCK_HEAD, QUERY_HEAD = 0x8A, 0x80
UNLOCK, QUERY = 0x11, 0x33
CLOSED, OPEN = 0x11, 0x00
FRAME_LENGTH = 5
DEFAULT_BAUD = 9600
#: The wire numbers are one byte and 0 is reserved, so 255 boards of 255 locks at most.
MAX_WIRE = 0xFF


def xor(body: bytes) -> int:
    """The exclusive or of every byte of ``body``."""
    return functools.reduce(operator.xor, body, 0)


def frame(head: int, board: int, lock: int, code: int) -> bytes:
    """``head board+1 lock+1 code XOR`` for address (board, lock)."""
    body = bytes([head, board + 1, lock + 1, code])
    return body + bytes([xor(body)])


def unlock_frame(board: int, lock: int) -> bytes:
    """Address (0, 0), the board's own "board 1 lock 1", is ``8A 01 01 11 9B``."""
    return frame(UNLOCK_HEAD, board, lock, UNLOCK)


def refuse_answer(head: int, board: int, lock: int) -> Expect:
    """What the answer to a request with ``head`` for (board, lock) must look like."""

    def refuse(answer: bytes) -> Refusal | None:
        if answer[4] != xor(answer[:4]):
            return Refusal("garbled", f"checksum {answer[4]:02x}, not {xor(answer[:4]):02x}")
        if answer[3] not in (OPEN, CLOSED):
            return Refusal("garbled", f"state {answer[3]:02x}, neither 00 nor 11")
        if (answer[1], answer[2]) != (board + 1, lock + 1):
            return Refusal(
                "wrong_address",
                f"answer for board {answer[1]} lock {answer[2]}, not {board + 1} {lock + 1}",
            )
        return None

    return Expect(head, FRAME_LENGTH, refuse)


def decode_answer(answer: bytes, address: Address) -> LockState:
    """The lock state a valid answer carries; these boards have no item sensor."""
    door_open = answer[3] == OPEN
    return LockState(address, locked=not door_open, door_open=door_open, item=None)


class Bu8aBoard(SerialBoard):
    """``boards`` 8A boards of ``locks`` locks each on the bus at ``port``.

    A sweep asks each lock on its own, so an unlock waits for one query at most. An unlock
    is never repeated on a missing answer: the lock is queried ``settle`` seconds later
    instead, and only a lock that reads closed gets a second pulse.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUD,
        *,
        boards: int = 1,
        locks: int = 16,
        timeout: float = 0.2,
        retries: int = 2,
        settle: float = 0.2,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        if boards > MAX_WIRE or locks > MAX_WIRE:
            raise ValueError(f"an 8A bus has at most {MAX_WIRE} boards of {MAX_WIRE} locks")
        super().__init__(
            port,
            baudrate,
            boards=boards,
            locks=locks,
            timeout=timeout,
            retries=retries,
            settle=settle,
            poll_interval=poll_interval,
        )

    async def _read_board(self, board: int) -> list[LockState]:
        return [await self._read_lock((board, lock)) for lock in range(self.locks)]

    async def _read_lock(self, address: Address, *, urgent: bool = False) -> LockState:
        return await self._ask(QUERY_HEAD, QUERY, address, urgent=urgent)

    async def _pulse(self, address: Address) -> LockState:
        try:
            state = await self._ask(UNLOCK_HEAD, UNLOCK, address, urgent=True, retries=0)
            if state.door_open:
                return state
        except BoardFault:
            pass  # the pulse may have happened: ask the lock rather than pulse again
        # Some boards answer before the latch has released: look again before a second pulse.
        await asyncio.sleep(self.settle)
        return await self._read_lock(address, urgent=True)

    async def _ask(
        self, head: int, code: int, address: Address, *, urgent: bool, retries: int | None = None
    ) -> LockState:
        board, lock = address
        answer = await self.bus.request(
            frame(head, board, lock, code),
            refuse_answer(head, board, lock),
            board=board,
            lock=lock,
            urgent=urgent,
            retries=retries,
        )
        assert answer is not None
        return decode_answer(answer, address)
