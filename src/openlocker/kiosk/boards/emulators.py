"""Kerong and 8A board emulators on a pseudo-terminal pair, for tests, the bench and the demo.

The emulator holds the master end and answers like the real boards; a driver opens
``emulator.port`` (the slave end's path) as if it were a USB adapter. Faults are injected
with ``inject()``, and the compartments behind the boards are a ``Bank``.

    with KerongEmulator(Bank(2, 16)) as board:
        driver = KerongBoard(board.port, boards=2)
"""

from __future__ import annotations

import enum
import os
import pty
import select
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from openlocker.kiosk.boards import bu8a, kerong
from openlocker.kiosk.boards.bank import Bank


class Fault(enum.Enum):
    """What goes wrong with the next request (``SILENT``) or the next answer (the others)."""

    SILENT = "silent"  # the board does not hear the request: no action, no answer
    GARBLED = "garbled"  # the answer's checksum is wrong
    PARTIAL = "partial"  # only the first half of the answer is sent
    WRONG_ADDRESS = "wrong_address"  # a well-formed answer, for the next board's address
    NOISE = "noise"  # line noise, a stray start byte among it, before a good answer


@dataclass(frozen=True, slots=True)
class Received:
    """A valid request frame and when it was read in full (``time.perf_counter()``)."""

    frame: bytes
    at: float


class PtyEmulator(ABC):
    """The boards of ``bank`` on one bus, answering on the master end of a pty pair."""

    start_bytes: frozenset[int]

    def __init__(self, bank: Bank) -> None:
        self.bank = bank
        self.received: list[Received] = []
        self._faults: deque[Fault] = deque()
        self._master, self._slave = pty.openpty()
        for fd in (self._master, self._slave):
            tty.setraw(fd)
        # The emulator keeps the slave open too, so the master never reads EIO between drivers.
        self.port = os.ttyname(self._slave)
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"emulator {self.port}", daemon=True)

    def inject(self, *faults: Fault) -> None:
        """Queue ``faults``: each applies to the next request it fits, in order."""
        self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        """Faults injected and not yet applied."""
        return len(self._faults)

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close both ends."""
        os.write(self._wake_write, b"x")
        self._thread.join()
        for fd in (self._master, self._slave, self._wake_read, self._wake_write):
            os.close(fd)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        buffer = bytearray()
        while True:
            ready, _, _ = select.select([self._master, self._wake_read], [], [])
            if self._wake_read in ready:
                return
            buffer += os.read(self._master, 256)
            now = time.perf_counter()
            while request := self._next_request(buffer):
                self.received.append(Received(request, now))
                self._serve(request)

    def _next_request(self, buffer: bytearray) -> bytes | None:
        """Take the next valid request off ``buffer``, skipping what is not one, as a board
        does; None when no complete request is there yet."""
        while True:
            start = next((i for i, byte in enumerate(buffer) if byte in self.start_bytes), None)
            del buffer[: len(buffer) if start is None else start]
            if len(buffer) < 5:
                return None
            request = bytes(buffer[:5])
            if self._valid(request):
                del buffer[:5]
                return request
            del buffer[:1]

    def _serve(self, request: bytes) -> None:
        if self._faults and self._faults[0] is Fault.SILENT:
            self._faults.popleft()
            return
        answer = self._answer(request)
        if answer is None:
            return
        fault = self._faults.popleft() if self._faults else None
        if fault is Fault.GARBLED:
            answer = answer[:-1] + bytes([answer[-1] ^ 0xFF])
        elif fault is Fault.PARTIAL:
            answer = answer[: len(answer) // 2]
        elif fault is Fault.WRONG_ADDRESS:
            answer = self._readdressed(answer)
        elif fault is Fault.NOISE:
            answer = bytes([0xFF, answer[0], 0x37, 0x00]) + answer
        os.write(self._master, answer)

    @abstractmethod
    def _valid(self, request: bytes) -> bool:
        """Whether five bytes are a well-formed request."""

    @abstractmethod
    def _answer(self, request: bytes) -> bytes | None:
        """Act on ``request`` and return the answer, or None when the board stays quiet."""

    @abstractmethod
    def _readdressed(self, answer: bytes) -> bytes:
        """``answer`` as the board at the next address would send it."""


class KerongEmulator(PtyEmulator):
    """Kerong CU16 boards at addresses 0 to ``bank.boards - 1``."""

    start_bytes = frozenset({kerong.STX})

    def _valid(self, request: bytes) -> bool:
        return request[3] == kerong.ETX and request[4] == kerong.checksum(request[:4])

    def _answer(self, request: bytes) -> bytes | None:
        board, lock = request[1] >> 4, request[1] & 0x0F
        if (board, lock) not in self.bank:
            return None
        if request[2] == kerong.UNLOCK:
            self.bank.pulse((board, lock))
            return None
        if request[2] != kerong.STATUS or lock:
            return None
        return self._status(board, board)

    def _status(self, board: int, answer_as: int) -> bytes:
        open_bits = item_bits = 0
        for lock in range(self.bank.locks):
            compartment = self.bank.snapshot((board, lock))
            open_bits |= compartment.door_open << lock
            item_bits |= compartment.item << lock
        return kerong.status_answer(answer_as, open_bits, item_bits)

    def _readdressed(self, answer: bytes) -> bytes:
        board = answer[1] >> 4
        return self._status(board, (board + 1) % 16)


class Bu8aEmulator(PtyEmulator):
    """8A boards numbered 1 to ``bank.boards`` on the wire, locks 1 to ``bank.locks``."""

    start_bytes = frozenset({bu8a.UNLOCK_HEAD, bu8a.QUERY_HEAD})

    def _valid(self, request: bytes) -> bool:
        return request[4] == bu8a.xor(request[:4])

    def _answer(self, request: bytes) -> bytes | None:
        head, address, code = request[0], (request[1] - 1, request[2] - 1), request[3]
        if address not in self.bank:
            return None
        if (head, code) == (bu8a.UNLOCK_HEAD, bu8a.UNLOCK):
            self.bank.pulse(address)
        elif (head, code) != (bu8a.QUERY_HEAD, bu8a.QUERY):
            return None
        door_open = self.bank.snapshot(address).door_open
        return bu8a.frame(head, *address, bu8a.OPEN if door_open else bu8a.CLOSED)

    def _readdressed(self, answer: bytes) -> bytes:
        return bu8a.frame(answer[0], answer[1], answer[2] - 1, answer[3])
