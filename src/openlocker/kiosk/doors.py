"""Every lock of the locker behind one set of addresses, whichever bus a board is on.

``--board SPEC`` may be given several times, one bus each. Boards are numbered across the
specs in the order given: the first spec's boards are 0 to n1 - 1, the next spec's follow,
and so on; the site's compartment map uses these numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from openlocker.kiosk.boards import (
    Address,
    BoardDriver,
    BoardEvent,
    BoardFault,
    BoardFaulted,
    BoardRecovered,
    LockState,
    Reading,
    StateChanged,
    UnknownLock,
)


class Doors:
    """The drivers of every bus, one address space: (board, lock) across all of them."""

    def __init__(self, drivers: Sequence[BoardDriver]) -> None:
        if not drivers:
            raise ValueError("a kiosk needs at least one board")
        self.drivers = list(drivers)
        self._first: list[int] = []
        first = 0
        for driver in self.drivers:
            self._first.append(first)
            first += driver.boards

    @property
    def boards(self) -> int:
        return self._first[-1] + self.drivers[-1].boards

    def has(self, address: Address) -> bool:
        try:
            driver, (_, lock) = self.locate(address)
        except UnknownLock:
            return False
        return lock < driver.locks

    async def start(self) -> Reading:
        """Open every bus and read every lock; pulses nothing."""
        states: dict[Address, LockState] = {}
        faults: dict[int, BoardFault] = {}
        for index, driver in enumerate(self.drivers):
            reading = await driver.start()
            states.update(
                (self._global(index, s).address, self._global(index, s))
                for s in reading.states.values()
            )
            faults.update(
                (self._first[index] + b, self._fault(index, f)) for b, f in reading.faults.items()
            )
        return Reading(states, faults)

    async def open(self, address: Address) -> LockState:
        """Pulse the lock (``BoardDriver.open``: always, checked, once more, then ``LockStuck``)."""
        driver, local = self.locate(address)
        index = self.drivers.index(driver)
        try:
            return self._global(index, await driver.open(local))
        except BoardFault as fault:
            raise self._fault(index, fault) from None

    async def read(self, address: Address) -> LockState:
        driver, local = self.locate(address)
        index = self.drivers.index(driver)
        try:
            return self._global(index, await driver.read(local))
        except BoardFault as fault:
            raise self._fault(index, fault) from None

    async def changes(self) -> AsyncIterator[BoardEvent]:
        """What every driver's ``changes()`` yields, in global addresses, as it comes."""
        queue: asyncio.Queue[BoardEvent] = asyncio.Queue()

        async def follow(index: int, driver: BoardDriver) -> None:
            async for event in driver.changes():
                await queue.put(self._event(index, event))

        tasks = [asyncio.create_task(follow(i, d)) for i, d in enumerate(self.drivers)]
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait([getter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    for task in done:
                        task.result()  # a driver's poll loop died: let its error out
                yield getter.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def close(self) -> None:
        for driver in self.drivers:
            with contextlib.suppress(BoardFault):
                await driver.close()

    def locate(self, address: Address) -> tuple[BoardDriver, Address]:
        """The driver of ``address`` and the address on that driver; ``UnknownLock`` if none."""
        board, lock = address
        for index in range(len(self.drivers) - 1, -1, -1):
            if board >= self._first[index]:
                driver = self.drivers[index]
                if board - self._first[index] < driver.boards and board >= 0:
                    return driver, (board - self._first[index], lock)
                break
        raise UnknownLock(
            f"no board {board}: this kiosk drives boards 0 to {self.boards - 1}",
            board=board,
            lock=lock,
        )

    def _global(self, index: int, state: LockState) -> LockState:
        board, lock = state.address
        return replace(state, address=(board + self._first[index], lock))

    def _fault(self, index: int, fault: BoardFault) -> BoardFault:
        if not self._first[index]:
            return fault
        return type(fault)(fault.detail, board=fault.board + self._first[index], lock=fault.lock)

    def _event(self, index: int, event: BoardEvent) -> BoardEvent:
        if isinstance(event, StateChanged):
            before = None if event.before is None else self._global(index, event.before)
            return StateChanged(before, self._global(index, event.after))
        if isinstance(event, BoardFaulted):
            return BoardFaulted(self._fault(index, event.fault))
        return BoardRecovered(event.board + self._first[index])
