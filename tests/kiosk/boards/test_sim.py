"""The sim driver behaves to the agent like a real board."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from openlocker.kiosk.boards import (
    BoardFaulted,
    BoardRecovered,
    LockStuck,
    StateChanged,
    UnknownLock,
)
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard

T = TypeVar("T")


def run(board: SimBoard, scenario: Callable[[], Awaitable[T]]) -> T:
    async def started() -> T:
        await board.start()
        try:
            return await scenario()
        finally:
            await board.close()

    return asyncio.run(started())


def test_a_pulsed_door_stays_open_until_closed_then_latches() -> None:
    board = SimBoard(Bank(3, 16), poll_interval=0.001)

    async def scenario() -> tuple[bool, bool, bool]:
        opened = await board.open((2, 15))
        still_open = (await board.read((2, 15))).door_open
        board.bank.close_door((2, 15))
        closed = await board.read((2, 15))
        return opened.door_open, still_open, closed.locked and not closed.door_open

    assert run(board, scenario) == (True, True, True)
    assert board.bank.snapshot((2, 15)).pulses == 1


def test_start_pulses_nothing_and_sees_items_and_open_doors() -> None:
    bank = Bank(2, 16)
    bank.load((1, 1))
    bank.force((0, 3))
    board = SimBoard(bank)

    reading = run(board, board.read_all)

    assert reading.states[(1, 1)].item is True
    assert reading.states[(0, 3)].door_open
    assert sum(state.door_open for state in reading.states.values()) == 1
    assert all(bank.snapshot(address).pulses == 0 for address in board.addresses)


def test_a_jammed_lock_is_stuck_after_two_pulses() -> None:
    board = SimBoard(Bank())
    board.bank.jam((0, 4))

    with pytest.raises(LockStuck):
        run(board, lambda: board.open((0, 4)))

    assert board.bank.snapshot((0, 4)).pulses == 2


def test_an_open_door_is_pulsed_all_the_same() -> None:
    board = SimBoard(Bank())
    board.bank.force((0, 0))

    run(board, lambda: board.open((0, 0)))

    assert board.bank.snapshot((0, 0)).pulses == 1


def test_a_lock_the_boards_do_not_have_is_refused_without_a_pulse() -> None:
    board = SimBoard(Bank(1, 16))

    with pytest.raises(UnknownLock) as unknown:
        run(board, lambda: board.open((1, 0)))

    assert unknown.value.code == "unknown_lock"
    assert all(board.bank.snapshot(address).pulses == 0 for address in board.addresses)


def test_changes_report_forced_doors_items_and_a_silent_board() -> None:
    board = SimBoard(Bank(2, 16), poll_interval=0.001)

    async def scenario() -> list[object]:
        events = board.changes()
        board.bank.force((1, 2))
        forced = await anext(events)
        board.bank.load((0, 7))
        loaded = await anext(events)
        board.silence(1)
        faulted = await anext(events)
        board.silence(1, False)
        recovered = await anext(events)
        await events.aclose()
        return [forced, loaded, faulted, recovered]

    forced, loaded, faulted, recovered = run(board, scenario)

    assert isinstance(forced, StateChanged) and forced.after.address == (1, 2)
    assert forced.after.door_open and forced.before is not None and forced.before.locked
    assert isinstance(loaded, StateChanged) and loaded.after.item is True
    assert isinstance(faulted, BoardFaulted) and faulted.fault.code == "board_timeout"
    assert faulted.fault.board == 1
    assert recovered == BoardRecovered(1)


def test_an_open_the_agent_awaited_is_not_reported_again_but_its_closing_is() -> None:
    board = SimBoard(Bank(), poll_interval=0.001)

    async def scenario() -> object:
        events = board.changes()
        await board.open((0, 5))
        board.bank.close_door((0, 5))
        first = await anext(events)
        await events.aclose()
        return first

    first = run(board, scenario)

    assert isinstance(first, StateChanged)
    assert first.after.address == (0, 5) and first.after.locked
