"""The interface every lock-board driver offers the kiosk agent.

A driver owns the boards on one bus (or, for ``sim``, in memory). Its methods are
coroutines: the agent is asyncio, and serial drivers run their blocking port I/O on one
thread per bus (see ``docs/decisions/0002-async-board-drivers.md``).
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from openlocker.kiosk.boards.faults import Address, BoardFault, LockStuck, UnknownLock

log = logging.getLogger("openlocker.kiosk.boards")

#: Seconds between two polls of every board by ``changes()`` unless a driver is told otherwise.
DEFAULT_POLL_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class LockState:
    """What a board reports for one lock.

    ``locked`` is the latch, ``door_open`` the door sensor, ``item`` the item (IR) sensor or
    None when the board has none. Kerong and 8A boards report one bit per lock, so on them
    ``door_open`` is that bit and ``locked`` its inverse.
    """

    address: Address
    locked: bool
    door_open: bool
    item: bool | None


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A lock reads differently from what the driver last reported (``before`` is None when
    its board had not answered before)."""

    before: LockState | None
    after: LockState


@dataclass(frozen=True, slots=True)
class BoardFaulted:
    """A board stopped answering properly; ``fault`` says how."""

    fault: BoardFault


@dataclass(frozen=True, slots=True)
class BoardRecovered:
    """A board answers again after a ``BoardFaulted``."""

    board: int


BoardEvent = StateChanged | BoardFaulted | BoardRecovered


@dataclass(frozen=True, slots=True)
class Reading:
    """Every lock of every board that answered, and the fault of each board that did not."""

    states: dict[Address, LockState]
    faults: dict[int, BoardFault]


class BoardDriver(ABC):
    """Drives ``boards`` boards of ``locks`` locks each, addressed (board, lock) from 0.

    Call ``start()`` once before anything else and ``close()`` at the end. Calls may overlap:
    a serial driver runs one request at a time on its bus, unlocks ahead of polls.
    """

    def __init__(self, *, boards: int, locks: int, poll_interval: float) -> None:
        if boards < 1 or locks < 1:
            raise ValueError("a driver needs at least one board of one lock")
        if poll_interval <= 0:
            raise ValueError("the poll interval must be positive")
        self.boards = boards
        self.locks = locks
        self.poll_interval = poll_interval
        self._known: dict[Address, LockState] = {}
        self._faulted: set[int] = set()

    @property
    def addresses(self) -> list[Address]:
        """Every (board, lock) this driver drives, in order."""
        return [(board, lock) for board in range(self.boards) for lock in range(self.locks)]

    async def start(self) -> Reading:
        """Open the bus and read every lock's state. Pulses nothing.

        Raises ``BoardPortError`` when the port cannot be opened; a board that does not
        answer is in the reading's ``faults``, not raised.
        """
        await self._connect()
        return await self.read_all()

    async def open(self, address: Address) -> LockState:
        """Pulse the lock at ``address`` and return its state once it reads open.

        Always pulses, even when the door already reads open: a broken sensor wire must not
        keep a parcel in. A lock still closed after the pulse is pulsed once more, then
        ``LockStuck`` is raised. Other ``BoardFault``s pass through.
        """
        self._check(address)
        for attempt in (1, 2):
            state = await self._pulse(address)
            self._known[address] = state
            if not state.locked:
                return state
            log.warning(
                "lock still closed after unlock",
                extra={"board": address[0], "lock": address[1], "attempt": attempt},
            )
        raise LockStuck(
            f"lock {address[1]} of board {address[0]} still closed after two pulses",
            board=address[0],
            lock=address[1],
        )

    async def read(self, address: Address) -> LockState:
        """The state of one lock, read from its board now."""
        self._check(address)
        state = await self._read_lock(address)
        self._known[address] = state
        return state

    async def read_board(self, board: int) -> list[LockState]:
        """The states of every lock of ``board``, read now, in lock order."""
        self._check((board, 0))
        states = await self._read_board(board)
        self._remember(states)
        return states

    async def read_all(self) -> Reading:
        """Every board's locks; a board's fault is reported in the reading, not raised."""
        states: dict[Address, LockState] = {}
        faults: dict[int, BoardFault] = {}
        for board in range(self.boards):
            try:
                board_states = await self.read_board(board)
            except BoardFault as fault:
                faults[board] = fault
                self._faulted.add(board)
                continue
            self._faulted.discard(board)
            states.update((state.address, state) for state in board_states)
        return Reading(states, faults)

    async def changes(self) -> AsyncIterator[BoardEvent]:
        """Poll every board each ``poll_interval`` seconds, forever, and yield what changed.

        A lock's state is yielded when it differs from what this driver last reported by any
        call (so an ``open()`` the agent awaited is not reported again). A board's health is
        yielded when it changes from what ``read_all()`` or this iterator last reported. Run
        one iterator per driver: each polls the bus on its own.
        """
        while True:
            for board in range(self.boards):
                try:
                    states = await self._read_board(board)
                except BoardFault as fault:
                    if board not in self._faulted:
                        self._faulted.add(board)
                        yield BoardFaulted(fault)
                    continue
                if board in self._faulted:
                    self._faulted.discard(board)
                    yield BoardRecovered(board)
                for change in self._remember(states):
                    yield change
            await asyncio.sleep(self.poll_interval)

    async def close(self) -> None:
        """Release the bus. The driver cannot be used afterwards."""
        await self._disconnect()

    def _check(self, address: Address) -> None:
        board, lock = address
        if not (0 <= board < self.boards and 0 <= lock < self.locks):
            raise UnknownLock(
                f"no lock {lock} on board {board}: this driver has {self.boards} boards "
                f"of {self.locks} locks",
                board=board,
                lock=lock,
            )

    def _remember(self, states: list[LockState]) -> list[StateChanged]:
        changes = [
            StateChanged(self._known.get(state.address), state)
            for state in states
            if self._known.get(state.address) != state
        ]
        self._known.update((state.address, state) for state in states)
        return changes

    async def _read_lock(self, address: Address) -> LockState:
        """One lock's state; drivers that can ask for one lock alone override this."""
        return (await self._read_board(address[0]))[address[1]]

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _disconnect(self) -> None: ...

    @abstractmethod
    async def _read_board(self, board: int) -> list[LockState]:
        """Every lock of ``board`` in lock order, or a ``BoardFault``."""

    @abstractmethod
    async def _pulse(self, address: Address) -> LockState:
        """Pulse the lock once and return its state as the board reports it afterwards."""
