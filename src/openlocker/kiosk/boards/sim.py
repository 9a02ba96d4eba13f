"""The ``sim`` driver: a bank of compartments in memory, for tests and the demo."""

from __future__ import annotations

from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.base import DEFAULT_POLL_INTERVAL, BoardDriver, LockState
from openlocker.kiosk.boards.faults import Address, BoardTimeout


class SimBoard(BoardDriver):
    """Drives ``bank`` as a real board would: a pulse opens the door unless the lock is
    jammed, the door stays open until ``bank.close_door()``, and a silenced board times out.

    Tests and the demo act on the compartments through ``bank`` (close, force, jam, load).
    """

    def __init__(self, bank: Bank, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        super().__init__(boards=bank.boards, locks=bank.locks, poll_interval=poll_interval)
        self.bank = bank
        self._silent: set[int] = set()

    def silence(self, board: int, silent: bool = True) -> None:
        """Make ``board`` stop answering (unplugged, no power), or answer again."""
        if silent:
            self._silent.add(board)
        else:
            self._silent.discard(board)

    async def _connect(self) -> None:
        """Nothing to open: the bank is in memory."""

    async def _disconnect(self) -> None:
        """Nothing to release."""

    async def _read_board(self, board: int) -> list[LockState]:
        self._answer(board)
        return [self._state((board, lock)) for lock in range(self.locks)]

    async def _pulse(self, address: Address) -> LockState:
        self._answer(address[0])
        self.bank.pulse(address)
        return self._state(address)

    def _answer(self, board: int) -> None:
        if board in self._silent:
            raise BoardTimeout(f"simulated board {board} does not answer", board=board)

    def _state(self, address: Address) -> LockState:
        compartment = self.bank.snapshot(address)
        return LockState(
            address,
            locked=not compartment.door_open,
            door_open=compartment.door_open,
            item=compartment.item,
        )
