"""A bank of simulated compartments: the physics behind the ``sim`` driver and the emulators.

A pulse unlatches a lock and its spring pushes the door open; the door stays open until
someone closes it, and then the lock latches again. Thread-safe: an emulator's thread and
the test that drives it share one bank.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from openlocker.kiosk.boards.faults import Address


@dataclass
class Compartment:
    """One lock, its door and its item sensor."""

    door_open: bool = False
    item: bool = False
    jammed: bool = False
    pulses: int = 0


class Bank:
    """``boards`` boards of ``locks`` compartments each, all closed and empty at first."""

    def __init__(self, boards: int = 1, locks: int = 16) -> None:
        self.boards = boards
        self.locks = locks
        self._lock = threading.Lock()
        self._compartments = {
            (board, lock): Compartment() for board in range(boards) for lock in range(locks)
        }

    def __contains__(self, address: object) -> bool:
        return address in self._compartments

    def pulse(self, address: Address) -> None:
        """Energise the lock: the door springs open unless the lock is jammed."""
        with self._lock:
            compartment = self._compartments[address]
            compartment.pulses += 1
            if not compartment.jammed:
                compartment.door_open = True

    def close_door(self, address: Address) -> None:
        """Someone pushes the door shut; the lock latches."""
        with self._lock:
            self._compartments[address].door_open = False

    def force(self, address: Address) -> None:
        """The door is pried open without any pulse."""
        with self._lock:
            self._compartments[address].door_open = True

    def jam(self, address: Address, jammed: bool = True) -> None:
        """A jammed lock ignores pulses (a broken solenoid, a bent latch)."""
        with self._lock:
            self._compartments[address].jammed = jammed

    def load(self, address: Address, item: bool = True) -> None:
        """Put an item in (or, with ``item=False``, take it out): the IR sensor sees it."""
        with self._lock:
            self._compartments[address].item = item

    def snapshot(self, address: Address) -> Compartment:
        """A copy of the compartment as it is now."""
        with self._lock:
            compartment = self._compartments[address]
            return Compartment(
                compartment.door_open, compartment.item, compartment.jammed, compartment.pulses
            )
