"""The ``kerong`` driver: Kerong KR-CU16 lock boards on RS-485, 19200 8N1 by default.

Frames (``docs/kiosk-boards.md``): a request is ``02 ADDR CMD 03 SUM`` with SUM the low byte
of the sum of the bytes before it. Unlock is CMD ``31`` with ADDR ``(board << 4) | lock`` and
gets no answer; status is CMD ``30`` with ADDR ``board << 4``, answered
``02 ADDR 35 L1-8 L9-16 IR1-8 IR9-16 03 SUM`` (lock bit set = unlocked/open, IR bit set = item).
"""

from __future__ import annotations

import asyncio

from openlocker.kiosk.boards.base import DEFAULT_POLL_INTERVAL, LockState
from openlocker.kiosk.boards.faults import Address
from openlocker.kiosk.boards.serialbus import Expect, Refusal, SerialBoard

STX, ETX = 0x02, 0x03
UNLOCK, STATUS, STATUS_ANSWER = 0x31, 0x30, 0x35
REQUEST_LENGTH, ANSWER_LENGTH = 5, 9
LOCKS = 16
MAX_BOARDS = 10
DEFAULT_BAUD = 19200


def checksum(body: bytes) -> int:
    """The low byte of the sum of ``body``."""
    return sum(body) & 0xFF


def _framed(body: bytes) -> bytes:
    return body + bytes([checksum(body)])


def unlock_frame(board: int, lock: int) -> bytes:
    """``02 (board<<4 | lock) 31 03 SUM``: board 0 lock 0 is ``02 00 31 03 36``."""
    return _framed(bytes([STX, board << 4 | lock, UNLOCK, ETX]))


def status_frame(board: int) -> bytes:
    """``02 (board<<4) 30 03 SUM``."""
    return _framed(bytes([STX, board << 4, STATUS, ETX]))


def status_answer(board: int, open_bits: int, item_bits: int) -> bytes:
    """The board's answer: bit n of ``open_bits`` (``item_bits``) is lock n open (item in)."""
    return _framed(
        bytes(
            [
                STX,
                board << 4,
                STATUS_ANSWER,
                open_bits & 0xFF,
                open_bits >> 8 & 0xFF,
                item_bits & 0xFF,
                item_bits >> 8 & 0xFF,
                ETX,
            ]
        )
    )


def refuse_status_answer(board: int) -> Expect:
    """What a status answer from ``board`` must look like."""

    def refuse(frame: bytes) -> Refusal | None:
        if frame[7] != ETX:
            return Refusal("garbled", f"end byte {frame[7]:02x}, not 03")
        if frame[8] != checksum(frame[:8]):
            return Refusal("garbled", f"checksum {frame[8]:02x}, not {checksum(frame[:8]):02x}")
        if frame[2] != STATUS_ANSWER:
            return Refusal("garbled", f"command {frame[2]:02x}, not {STATUS_ANSWER:02x}")
        if frame[1] != board << 4:
            return Refusal(
                "wrong_address", f"answer for address {frame[1]:02x}, not {board << 4:02x}"
            )
        return None

    return Expect(STX, ANSWER_LENGTH, refuse)


def decode_status(frame: bytes, board: int) -> list[LockState]:
    """The 16 lock states of a valid status answer."""
    open_bits = frame[3] | frame[4] << 8
    item_bits = frame[5] | frame[6] << 8
    return [
        LockState(
            (board, lock),
            locked=not open_bits >> lock & 1,
            door_open=bool(open_bits >> lock & 1),
            item=bool(item_bits >> lock & 1),
        )
        for lock in range(LOCKS)
    ]


class KerongBoard(SerialBoard):
    """``boards`` Kerong CU16 boards (addresses 0 to ``boards - 1``) on the bus at ``port``.

    An unlock is verified by a status request ``settle`` seconds after the pulse, time for the
    latch to release and its feedback switch to change.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUD,
        *,
        boards: int = 1,
        timeout: float = 0.2,
        retries: int = 2,
        settle: float = 0.2,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        if not 1 <= boards <= MAX_BOARDS:
            raise ValueError(f"a Kerong bus has 1 to {MAX_BOARDS} boards")
        super().__init__(
            port,
            baudrate,
            boards=boards,
            locks=LOCKS,
            timeout=timeout,
            retries=retries,
            settle=settle,
            poll_interval=poll_interval,
        )

    async def _read_board(self, board: int, *, urgent: bool = False) -> list[LockState]:
        answer = await self.bus.request(
            status_frame(board), refuse_status_answer(board), board=board, urgent=urgent
        )
        assert answer is not None
        return decode_status(answer, board)

    async def _pulse(self, address: Address) -> LockState:
        board, lock = address
        await self.bus.request(unlock_frame(board, lock), None, board=board, lock=lock, urgent=True)
        await asyncio.sleep(self.settle)
        return (await self._read_board(board, urgent=True))[lock]
