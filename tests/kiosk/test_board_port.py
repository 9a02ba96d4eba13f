"""A serial adapter pulled out under a running driver: a clear fault, never a hang."""

from __future__ import annotations

import asyncio

import pytest

from openlocker.kiosk.boards import BoardPortError
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.emulators import KerongEmulator
from openlocker.kiosk.boards.kerong import KerongBoard


def test_a_port_that_goes_away_raises_board_port_error_on_every_request() -> None:
    async def scenario() -> None:
        emulator = KerongEmulator(Bank(1, 16))
        emulator.start()
        driver = KerongBoard(emulator.port, boards=1, timeout=0.1)
        await driver.start()
        emulator.stop()  # both ends of the pty close: reads and flushes fail with EIO
        for _ in range(2):
            with pytest.raises(BoardPortError):
                await asyncio.wait_for(driver.read((0, 0)), 5)
        await driver.close()

    asyncio.run(scenario())
