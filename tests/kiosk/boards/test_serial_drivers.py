"""Both serial drivers end to end against their pty emulators, faults included."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from openlocker.kiosk.boards import (
    BoardEvent,
    BoardFault,
    BoardFaulted,
    BoardGarbled,
    BoardPortError,
    BoardRecovered,
    BoardTimeout,
    BoardWrongAddress,
    LockStuck,
    StateChanged,
    bu8a,
    kerong,
)
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.emulators import Fault
from openlocker.kiosk.boards.kerong import KerongBoard
from tests.kiosk.boards.rigs import Rig, make_rig

T = TypeVar("T")


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.reason for r in caplog.records if r.getMessage() == "board answer refused"]


async def settled() -> None:
    """A scenario that only lets ``start()`` run."""


def test_start_reads_every_lock_and_pulses_nothing(rig: Rig) -> None:
    rig.bank.force((1, 7))
    rig.bank.load((0, 3))

    rig.run(settled)

    assert rig.reading is not None
    assert rig.reading.faults == {}
    assert len(rig.reading.states) == 32
    assert rig.reading.states[(1, 7)].door_open
    assert not rig.reading.states[(1, 7)].locked
    assert sum(state.door_open for state in rig.reading.states.values()) == 1
    # The Kerong has an item sensor, the 8A board none.
    assert rig.reading.states[(0, 3)].item is (True if rig.kind == "kerong" else None)
    assert rig.unlocks() == []
    assert all(rig.bank.snapshot(address).pulses == 0 for address in rig.driver.addresses)


def test_open_pulses_once_and_reports_the_door_open(rig: Rig) -> None:
    state = rig.run(lambda: rig.driver.open((1, 5)))

    assert state.door_open and not state.locked
    assert rig.unlocks() == [(1, 5)]
    assert rig.bank.snapshot((1, 5)).pulses == 1
    assert rig.bank.snapshot((1, 4)).pulses == 0


def test_open_pulses_even_when_the_door_already_reads_open(rig: Rig) -> None:
    # A broken sensor wire reads open; the parcel must still come out.
    rig.bank.force((0, 9))

    state = rig.run(lambda: rig.driver.open((0, 9)))

    assert state.door_open
    assert rig.unlocks() == [(0, 9)]
    assert rig.bank.snapshot((0, 9)).pulses == 1


def test_a_jammed_lock_is_pulsed_twice_then_stuck(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.bank.jam((1, 0))

    with pytest.raises(LockStuck) as stuck:
        rig.run(lambda: rig.driver.open((1, 0)))

    assert stuck.value.code == "lock_stuck"
    assert (stuck.value.board, stuck.value.lock) == (1, 0)
    assert rig.unlocks() == [(1, 0), (1, 0)]
    assert rig.bank.snapshot((1, 0)).pulses == 2
    assert [r.attempt for r in caplog.records if r.getMessage().startswith("lock still")] == [1, 2]


def test_a_lost_unlock_frame_is_pulsed_again_after_the_lock_reads_closed(rig: Rig) -> None:
    state = rig.run(lambda: injected(rig, [Fault.SILENT], rig.driver.open((0, 2))))

    assert state.door_open
    assert rig.unlocks() == [(0, 2), (0, 2)]
    assert rig.bank.snapshot((0, 2)).pulses == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault.GARBLED, "checksum"),
        (Fault.WRONG_ADDRESS, "answer for"),
        (Fault.PARTIAL, "partial frame timed out"),
    ],
)
def test_a_bad_answer_is_refused_logged_and_asked_again(
    rig: Rig, caplog: pytest.LogCaptureFixture, fault: Fault, reason: str
) -> None:
    rig.bank.force((1, 1))

    state, asked = rig.run(lambda: counted(rig, [fault], rig.driver.read((1, 1))))

    assert state.door_open
    assert asked == 2  # the request the bad answer came to, and its retry
    # A start byte inside the refused frame's data may add a partial frame to the log.
    assert reason in refusals(caplog)[0]
    assert rig.emulator.pending_faults == 0


def test_line_noise_before_an_answer_is_skipped_without_asking_again(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.bank.force((0, 0))

    state, asked = rig.run(lambda: counted(rig, [Fault.NOISE], rig.driver.read((0, 0))))

    assert state.door_open
    assert asked == 1
    assert refusals(caplog)  # the stray start byte's frame was refused, then resynchronised


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (Fault.SILENT, BoardTimeout, "board_timeout"),
        (Fault.PARTIAL, BoardTimeout, "board_timeout"),
        (Fault.GARBLED, BoardGarbled, "board_garbled"),
        (Fault.WRONG_ADDRESS, BoardWrongAddress, "board_wrong_address"),
    ],
)
def test_no_valid_answer_after_the_retries_is_a_clear_fault(
    rig: Rig, fault: Fault, error: type[Exception], code: str
) -> None:
    async def scenario() -> BoardFault:
        with pytest.raises(error) as raised:
            await rig.driver.read((1, 3))
        return raised.value

    fault_raised, asked = rig.run(lambda: counted(rig, [fault] * 3, scenario()))

    assert asked == 3  # one request and two retries
    assert fault_raised.code == code
    assert (fault_raised.board, fault_raised.lock) == (1, None if rig.kind == "kerong" else 3)
    assert rig.unlocks() == []


def test_changes_report_a_closed_door_a_forced_door_and_an_item(rig: Rig) -> None:
    async def scenario() -> list[BoardEvent]:
        await rig.driver.open((0, 4))
        events = rig.driver.changes()
        rig.bank.close_door((0, 4))
        rig.bank.force((1, 12))
        seen = [await anext(events), await anext(events)]
        await events.aclose()
        return seen

    events = rig.run(scenario)

    assert all(isinstance(event, StateChanged) for event in events)
    changes = {event.after.address: event for event in events if isinstance(event, StateChanged)}
    assert changes[(0, 4)].before is not None and changes[(0, 4)].before.door_open
    assert changes[(0, 4)].after.locked
    assert changes[(1, 12)].after.door_open
    assert changes[(1, 12)].before is not None and not changes[(1, 12)].before.door_open


def test_changes_report_a_board_that_stops_answering_and_comes_back(rig: Rig) -> None:
    async def scenario() -> list[BoardEvent]:
        events = rig.driver.changes()
        # Board 0 hears nothing for a whole request (1 + 2 retries; the 8A's first lock).
        rig.emulator.inject(Fault.SILENT, Fault.SILENT, Fault.SILENT)
        seen = [await anext(events), await anext(events)]
        await events.aclose()
        return seen

    faulted, recovered = rig.run(scenario)

    assert isinstance(faulted, BoardFaulted)
    assert faulted.fault.code == "board_timeout" and faulted.fault.board == 0
    assert recovered == BoardRecovered(0)


def test_an_unlock_goes_ahead_of_the_reads_waiting_for_the_bus(rig: Rig) -> None:
    async def scenario() -> int:
        asked = rig.requests()
        reads = [rig.driver.read((1, lock)) for lock in range(16)]
        await asyncio.gather(*reads, rig.driver.open((0, 8)))
        return asked

    asked = rig.run(scenario)

    unlock = (kerong if rig.kind == "kerong" else bu8a).unlock_frame(0, 8)
    frames = [received.frame for received in rig.emulator.received[asked:]]
    assert frames.index(unlock) < 8  # queued last, sent before most of the 16 reads


def test_the_8a_never_repeats_an_unlock_whose_answer_was_lost() -> None:
    rig = make_rig("bu8a", Bank(1, 16))
    with rig.emulator:
        # The board pulses but its answer is cut short: the driver asks, it does not re-pulse.
        state = rig.run(lambda: injected(rig, [Fault.PARTIAL], rig.driver.open((0, 6))))

    assert state.door_open
    assert rig.unlocks() == [(0, 6)]
    assert rig.bank.snapshot((0, 6)).pulses == 1


def test_a_kerong_board_missing_from_the_bus_is_a_fault_of_that_board_only() -> None:
    rig = make_rig("kerong", Bank(2, 16), boards=3)
    with rig.emulator:
        rig.run(settled)

    assert rig.reading is not None
    assert set(rig.reading.faults) == {2}
    assert rig.reading.faults[2].code == "board_timeout"
    assert {board for board, _ in rig.reading.states} == {0, 1}


def test_a_port_that_does_not_exist_is_a_port_error(tmp_path: os.PathLike[str]) -> None:
    driver = KerongBoard(os.path.join(tmp_path, "ttyUSB9"))

    with pytest.raises(BoardPortError) as raised:
        asyncio.run(driver.start())

    assert raised.value.code == "board_port_error"


async def injected(rig: Rig, faults: list[Fault], call: Awaitable[T]) -> T:
    """Inject ``faults`` once the driver has started, then await ``call``."""
    rig.emulator.inject(*faults)
    return await call


async def counted(rig: Rig, faults: list[Fault], call: Awaitable[T]) -> tuple[T, int]:
    """What ``call`` returns with ``faults`` injected, and how many requests it sent."""
    asked = rig.requests()
    result = await injected(rig, faults, call)
    return result, rig.requests() - asked
