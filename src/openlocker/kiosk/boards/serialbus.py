"""One RS-485 bus: a serial port, the thread that talks on it, and robust answer framing.

RS-485 is half duplex: one request and its answer at a time. Requests queue for the bus's
thread; unlocks go ahead of polls so a recipient never waits behind a sweep of the boards.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import serial

from openlocker.kiosk.boards.base import BoardDriver
from openlocker.kiosk.boards.faults import (
    BoardFault,
    BoardGarbled,
    BoardPortError,
    BoardTimeout,
    BoardWrongAddress,
)

log = logging.getLogger("openlocker.kiosk.boards")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a frame that starts like an answer is not the answer awaited."""

    kind: Literal["garbled", "wrong_address"]
    reason: str


@dataclass(frozen=True, slots=True)
class Expect:
    """The answer awaited: its start byte, its length, and a check that returns a
    ``Refusal`` for a frame of that length that is not it (None for the awaited answer)."""

    start: int
    length: int
    refuse: Callable[[bytes], Refusal | None]


@dataclass(slots=True)
class _Request:
    frame: bytes
    expect: Expect | None
    retries: int
    board: int
    lock: int | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bytes | None]


#: Queue entries: (priority, sequence, request); None asks the thread to stop.
_Entry = tuple[int, int, _Request | None]
_URGENT, _NORMAL, _LAST = 0, 1, 2


class SerialBus:
    """A serial port at ``baudrate`` 8N1 and the thread that owns it.

    ``port`` is a device path or any pyserial URL (``socket://``, ``rfc2217://``, ``loop://``).
    An answer must be complete within ``timeout`` seconds of its request; a request without a
    valid answer is sent ``retries`` more times before its fault is raised.
    """

    def __init__(self, port: str, baudrate: int, *, timeout: float, retries: int) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError("the timeout must be positive and the retries not negative")
        self.port = port
        self.baudrate = baudrate
        self.timeout = timeout
        self.retries = retries
        self._serial: serial.Serial | None = None
        self._queue: queue.PriorityQueue[_Entry] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    async def connect(self) -> None:
        """Open the port and start the bus thread; ``BoardPortError`` when it cannot open."""
        try:
            self._serial = serial.serial_for_url(
                self.port,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=self.timeout,
                write_timeout=self.timeout,
            )
        except (serial.SerialException, OSError, ValueError) as error:
            raise BoardPortError(f"cannot open {self.port}: {error}", board=0) from error
        self._thread = threading.Thread(target=self._run, name=f"bus {self.port}", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Finish the request on the wire, stop the thread and close the port."""
        if self._thread is not None:
            self._queue.put((_LAST, next(self._seq), None))
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    async def request(
        self,
        frame: bytes,
        expect: Expect | None,
        *,
        board: int,
        lock: int | None = None,
        urgent: bool = False,
        retries: int | None = None,
    ) -> bytes | None:
        """Send ``frame`` and return the valid answer (None when ``expect`` is None: the
        request has no answer). ``urgent`` requests go ahead of the others waiting; ``retries``
        overrides the bus's count (0 for a request that must not be repeated).

        Raises ``BoardTimeout``, ``BoardGarbled`` or ``BoardWrongAddress`` when no attempt
        got a valid answer, ``BoardPortError`` when the port fails.
        """
        if self._thread is None:
            raise BoardPortError(f"the bus on {self.port} is not connected", board=board)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        request = _Request(
            frame, expect, self.retries if retries is None else retries, board, lock, loop, future
        )
        self._queue.put((_URGENT if urgent else _NORMAL, next(self._seq), request))
        return await future

    def _run(self) -> None:
        while (request := self._queue.get()[2]) is not None:
            if request.future.cancelled():
                continue  # the caller gave up before its turn: send nothing
            try:
                answer: bytes | BaseException | None = self._exchange(request)
            except BoardFault as fault:
                answer = fault
            except (serial.SerialException, OSError, termios.error) as error:
                # termios.error is no OSError: a flush on an unplugged adapter raises it, and
                # a thread that died of it would leave every later request waiting forever.
                answer = BoardPortError(f"{self.port}: {error}", board=request.board)
            request.loop.call_soon_threadsafe(_settle, request.future, answer)

    def _exchange(self, request: _Request) -> bytes | None:
        port = self._serial
        assert port is not None
        if request.expect is None:
            port.write(request.frame)
            port.flush()
            return None
        refusals: list[Refusal] = []
        for _ in range(1 + request.retries):
            port.reset_input_buffer()  # a late answer to an earlier request is not this one's
            port.write(request.frame)
            port.flush()
            answer = self._read_answer(port, request, refusals)
            if answer is not None:
                return answer
        raise _fault(request, refusals)

    def _read_answer(
        self, port: serial.Serial, request: _Request, refusals: list[Refusal]
    ) -> bytes | None:
        """The first valid answer before the timeout, resynchronising on the start byte;
        None when the time is up (a partial frame included) or when a refused frame leaves
        no start byte behind."""
        expect = request.expect
        assert expect is not None
        buffer = bytearray()
        deadline = time.monotonic() + self.timeout
        while True:
            start = buffer.find(expect.start)
            del buffer[: len(buffer) if start < 0 else start]
            if len(buffer) >= expect.length:
                frame = bytes(buffer[: expect.length])
                refusal = expect.refuse(frame)
                if refusal is None:
                    return frame
                refusals.append(refusal)
                _log_refused(request, refusal.reason, frame)
                # A well-formed frame for another address is skipped whole; a garbled one
                # only loses its start byte, since the real start may be inside it.
                del buffer[: expect.length if refusal.kind == "wrong_address" else 1]
                if expect.start not in buffer:
                    return None  # the board has had its say: ask again now, not at the timeout
                continue
            if time.monotonic() >= deadline:
                if buffer:
                    _log_refused(request, "partial frame timed out", bytes(buffer))
                return None
            buffer += port.read(expect.length - len(buffer))


class SerialBoard(BoardDriver):
    """A driver whose boards share one ``SerialBus``; ``settle`` is the seconds between a
    pulse and the status read that verifies it."""

    def __init__(
        self,
        port: str,
        baudrate: int,
        *,
        boards: int,
        locks: int,
        timeout: float,
        retries: int,
        settle: float,
        poll_interval: float,
    ) -> None:
        super().__init__(boards=boards, locks=locks, poll_interval=poll_interval)
        self.settle = settle
        self.bus = SerialBus(port, baudrate, timeout=timeout, retries=retries)

    async def _connect(self) -> None:
        await self.bus.connect()

    async def _disconnect(self) -> None:
        await self.bus.close()


def _fault(request: _Request, refusals: list[Refusal]) -> BoardFault:
    attempts = 1 + request.retries
    kinds = {refusal.kind for refusal in refusals}
    where = f"board {request.board}" + ("" if request.lock is None else f" lock {request.lock}")
    if "garbled" in kinds:
        return BoardGarbled(
            f"{where}: no valid answer in {attempts} attempts; last refused: {refusals[-1].reason}",
            board=request.board,
            lock=request.lock,
        )
    if "wrong_address" in kinds:
        return BoardWrongAddress(
            f"{where}: only answers for another address in {attempts} attempts; "
            f"{refusals[-1].reason}",
            board=request.board,
            lock=request.lock,
        )
    return BoardTimeout(
        f"{where}: no answer in {attempts} attempts", board=request.board, lock=request.lock
    )


def _log_refused(request: _Request, reason: str, frame: bytes) -> None:
    log.warning(
        "board answer refused",
        extra={
            "board": request.board,
            "lock": request.lock,
            "reason": reason,
            "frame": frame.hex(" "),
        },
    )


def _settle(future: asyncio.Future[bytes | None], answer: bytes | BaseException | None) -> None:
    if future.cancelled():
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)
