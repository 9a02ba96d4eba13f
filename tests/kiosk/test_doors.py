"""Doors and alarms on sim boards: forced, left open, board faults, a restart mid-pickup."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openlocker.kiosk.boards import BoardFault
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.doors import Doors
from openlocker.kiosk.store import INTENDED, INTERRUPTED, OPENED, KioskStore
from tests.kiosk.helpers import START, Kiosk, compartment, credential, page, run_kiosk

SITE = page(
    compartments=[compartment(n, state="occupied" if n < 2 else "free") for n in range(32)],
    credentials=[credential("crd_1", "prc_1", [1], pin="12345678")],
)


def test_a_door_opened_without_a_command_raises_door_forced(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        k.bank.force((1, 4))
        await k.settle()
        (alarm,) = k.alarms("door_forced")
        assert alarm["compartment_id"] == "cmp_020" and alarm["state"] == "raised"
        assert [e.body for e in k.events("door")] == [
            {"compartment_id": "cmp_020", "door": "open", "commanded": False}
        ]
        state = (await k.api.get("/api/state")).json()
        assert state["open_doors"][0]["compartment"]["label"] == "A21"
        assert state["open_doors"][0]["purpose"] == "unexpected"

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_a_door_left_open_raises_door_left_open_and_clears_it_when_closed(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        assert (await k.pickup(pin="12345678")).status_code == 200
        await k.settle(0.05)
        assert k.alarms("door_left_open") == []
        await k.settle(0.3)
        assert [a["state"] for a in k.alarms("door_left_open")] == ["raised"]
        k.bank.close_door((0, 1))
        await k.settle()
        assert [a["state"] for a in k.alarms("door_left_open")] == ["raised", "cleared"]
        assert (await k.api.get("/api/state")).json()["open_doors"] == []

    run_kiosk(tmp_path, scenario, pages=[SITE], door_left_open_s=0.2)


def test_a_door_closed_in_time_raises_nothing(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await k.pickup(pin="12345678")
        await k.settle(0.05)
        k.bank.close_door((0, 1))
        await k.settle(0.3)
        assert k.events("alarm") == []

    run_kiosk(tmp_path, scenario, pages=[SITE], door_left_open_s=0.2)


def test_a_board_that_stops_answering_raises_board_fault_and_clears_it_when_back(
    tmp_path: Path,
) -> None:
    async def scenario(k: Kiosk) -> None:
        (sim,) = k.agent.doors.drivers
        sim.silence(1)  # type: ignore[attr-defined]
        await k.settle()
        alarms = k.alarms("board_fault")
        assert [(a["state"], a["detail"].split(":")[0]) for a in alarms] == [("raised", "board 1")]
        assert (await k.api.get("/healthz")).json()["faulted_boards"] == [1]
        sim.silence(1, False)  # type: ignore[attr-defined]
        await k.settle()
        assert [a["state"] for a in k.alarms("board_fault")] == ["raised", "cleared"]

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_a_pickup_on_a_silent_board_is_refused_and_the_code_kept(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        (sim,) = k.agent.doors.drivers
        sim.silence(0)  # type: ignore[attr-defined]
        answer = await k.pickup(pin="12345678")
        assert answer.status_code == 503 and answer.json()["code"] == "board_fault"
        assert k.events("pickup") == []
        sim.silence(0, False)  # type: ignore[attr-defined]
        assert (await k.pickup(pin="12345678")).status_code == 200

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_start_reads_every_lock_and_pulses_nothing(tmp_path: Path) -> None:
    bank = Bank(2, 16)
    bank.force((0, 7))

    async def scenario(k: Kiosk) -> None:
        assert all(k.pulses(n) == 0 for n in range(32))
        # Found open at start: reported, but not called forced (nobody knows why).
        assert [e.body for e in k.events("door")] == [
            {"compartment_id": "cmp_007", "door": "open", "commanded": False}
        ]
        assert k.events("alarm") == []

    run_kiosk(tmp_path, scenario, pages=[SITE], bank=bank)


def test_a_restart_after_the_journal_was_written_never_pulses_again(tmp_path: Path) -> None:
    """As if the kiosk died between committing a pickup and pulsing: the event is kept and
    released, the unlock is marked interrupted, and the door is not pulsed at start."""
    store = KioskStore(tmp_path / "kiosk" / "kiosk.db")
    store.apply_pull(SITE, START)
    target = store.compartment("cmp_001")
    assert target is not None
    with store.write() as tx:
        event = tx.queue("pickup", START, {"credential_id": "crd_1", "method": "pin",
                                           "compartments": ["cmp_001"], "offline": True},
                         held=True)  # fmt: skip
        tx.use_credential("crd_1", START, event)
        tx.intend_pulse(target, START, event)
        tx.set_task("cmp_001", "pickup", START, parcel_id="prc_1")
    assert store.pushable(10) == []
    store.close()

    async def scenario(k: Kiosk) -> None:
        assert k.pulses(1) == 0
        assert [p.state for p in k.store.pulses()] == [INTERRUPTED]
        assert [e.id for e in k.store.pushable(10)] == [event]
        again = await k.pickup(pin="12345678")
        assert again.json()["code"] == "code_used"
        assert k.pulses(1) == 0

    run_kiosk(tmp_path, scenario)


def test_every_pulse_is_journalled_and_settled(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await k.pickup(pin="12345678")
        assert [(p.compartment_id, p.state) for p in k.store.pulses()] == [("cmp_001", OPENED)]
        assert k.store.pulses(INTENDED) == []

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_a_door_that_reads_open_is_pulsed_all_the_same(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        k.bank.force((0, 1))  # a broken sensor wire, or someone holding it
        await k.settle()
        assert (await k.pickup(pin="12345678")).status_code == 200
        assert k.pulses(1) == 1

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_boards_are_numbered_across_buses_in_the_order_given() -> None:
    first, second = SimBoard(Bank(2, 16)), SimBoard(Bank(1, 8))
    doors = Doors([first, second])

    async def scenario() -> list[tuple[int, int]]:
        reading = await doors.start()
        assert len(reading.states) == 2 * 16 + 8
        state = await doors.open((2, 7))
        second.silence(0)
        with pytest.raises(BoardFault) as fault:
            await doors.read((2, 0))
        assert fault.value.board == 2
        assert not doors.has((2, 8)) and not doors.has((3, 0)) and doors.has((1, 15))
        await doors.close()
        return [state.address]

    assert asyncio.run(scenario()) == [(2, 7)]
    assert second.bank.snapshot((0, 7)).pulses == 1
    assert first.bank.snapshot((0, 7)).pulses == 0


def test_the_sim_endpoint_acts_as_the_person_at_the_door(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await k.pickup(pin="12345678")
        load = await k.api.post("/api/sim/doors/cmp_001", json={"action": "load"})
        assert load.json() == {"door_open": True, "item": True, "jammed": False}
        await k.api.post("/api/sim/doors/cmp_001", json={"action": "close"})
        await k.settle()
        assert len(k.alarms("item_left")) == 1
        missing = await k.api.post("/api/sim/doors/cmp_999", json={"action": "close"})
        assert missing.status_code == 404
        state = (await k.api.get("/api/state")).json()
        assert state["online"] is False and state["presence_code"] is None
        assert state["site"]["name"] == "Test site"

    run_kiosk(tmp_path, scenario, pages=[SITE])
