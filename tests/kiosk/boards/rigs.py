"""A serial driver on one end of a pty pair and its board's emulator on the other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from openlocker.kiosk.boards import bu8a, kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.base import BoardDriver, Reading
from openlocker.kiosk.boards.bu8a import Bu8aBoard
from openlocker.kiosk.boards.emulators import Bu8aEmulator, KerongEmulator, PtyEmulator
from openlocker.kiosk.boards.kerong import KerongBoard

#: Long enough that a busy machine does not miss an answer, short enough to keep faults quick.
TIMEOUT = 0.2


@dataclass
class Rig:
    """An emulator answering and a driver, not yet started, of one board kind."""

    kind: str
    emulator: PtyEmulator
    driver: BoardDriver
    reading: Reading | None = None

    @property
    def bank(self) -> Bank:
        return self.emulator.bank

    def run(self, scenario: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``scenario`` in a fresh event loop, the driver started before and closed after."""

        async def started() -> Any:
            self.reading = await self.driver.start()
            try:
                return await scenario()
            finally:
                await self.driver.close()

        return asyncio.run(started())

    def unlocks(self) -> list[tuple[int, int]]:
        """The addresses of the unlock frames the board received, in order."""
        return [address for frame, address in self._frames() if self._is_unlock(frame)]

    def requests(self) -> int:
        return len(self.emulator.received)

    def _frames(self) -> list[tuple[bytes, tuple[int, int]]]:
        frames = [received.frame for received in self.emulator.received]
        if self.kind == "kerong":
            return [(frame, (frame[1] >> 4, frame[1] & 0x0F)) for frame in frames]
        return [(frame, (frame[1] - 1, frame[2] - 1)) for frame in frames]

    def _is_unlock(self, frame: bytes) -> bool:
        if self.kind == "kerong":
            return frame[2] == kerong.UNLOCK
        return frame[0] == bu8a.UNLOCK_HEAD


def make_rig(kind: str, bank: Bank, **options: Any) -> Rig:
    """``options`` go to the driver, over quick test defaults."""
    settings: dict[str, Any] = {
        "boards": bank.boards,
        "timeout": TIMEOUT,
        "settle": 0.01,
        "poll_interval": 0.01,
    }
    settings.update(options)
    if kind == "kerong":
        emulator: PtyEmulator = KerongEmulator(bank)
        driver: BoardDriver = KerongBoard(emulator.port, **settings)
    else:
        emulator = Bu8aEmulator(bank)
        driver = Bu8aBoard(emulator.port, locks=bank.locks, **settings)
    return Rig(kind, emulator, driver)
