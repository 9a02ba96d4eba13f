"""Courier mode and door commands at the kiosk, offline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from openlocker.kiosk.boards.bank import Bank
from tests.kiosk.helpers import (
    START,
    Kiosk,
    compartment,
    courier,
    credential,
    expected,
    page,
    run_kiosk,
)

SIZES = [("S", 400, 100, 600), ("M", 400, 200, 600), ("L", 400, 400, 600)]
SITE = page(
    compartments=[
        compartment(0, size="S", state="occupied"),
        compartment(1, size="M", state="reserved"),
        compartment(2, size="M"),
        compartment(3, size="L"),
        compartment(4, size="M", temperature="chilled"),
        compartment(5, size="S"),
    ],
    couriers=[courier("cou_1", "org_dpx", "4444555566"), courier("cou_2", "org_other", "7777")],
    expected=[
        expected("prc_r", "TRK-RESERVED", "org_dpx", compartment_id="cmp_001"),
        expected("prc_m", "TRK-M", "org_dpx"),
        expected("prc_m2", "TRK-M2", "org_dpx"),
        expected("prc_s", "TRK-S", "org_dpx", size="S"),
        expected("prc_c", "TRK-COLD", "org_dpx", temperature="chilled"),
        expected("prc_x", "TRK-OTHER", "org_other"),
    ],
    sizes=SIZES,
)


async def _login(k: Kiosk, code: str = "4444555566") -> None:
    answer = await k.api.post("/api/courier/login", json={"code": code})
    assert answer.status_code == 200, answer.text


async def _deposit(k: Kiosk, tracking: str) -> tuple[int, dict[str, object]]:
    answer = await k.api.post("/api/courier/deposit", json={"tracking_number": tracking})
    return answer.status_code, answer.json()


def test_a_courier_deposits_parcel_after_parcel_and_closing_confirms_each(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await _login(k)
        state = (await k.api.get("/api/state")).json()
        assert state["courier"]["id"] == "cou_1"
        placed = {}
        for tracking in ["TRK-RESERVED", "TRK-M", "TRK-S", "TRK-COLD", "TRK-M2"]:
            status, body = await _deposit(k, tracking)
            assert status == 200, body
            placed[tracking] = body["compartment"]["label"]  # type: ignore[index]
        # Reserved one; then the best free of the size; chilled apart; M full → L.
        assert placed == {
            "TRK-RESERVED": "A2",
            "TRK-M": "A3",
            "TRK-S": "A6",
            "TRK-COLD": "A5",
            "TRK-M2": "A4",
        }
        assert k.events("deposit") == []  # confirmed only when the doors close
        for n in (1, 2, 5, 4, 3):
            k.bank.load((0, n))
            k.bank.close_door((0, n))
        await k.settle()
        deposits = {e.body["parcel_id"]: e.body for e in k.events("deposit")}
        assert deposits["prc_r"] == {
            "parcel_id": "prc_r",
            "compartment_id": "cmp_001",
            "courier_id": "cou_1",
            "offline": True,
        }
        assert len(deposits) == 5
        assert k.store.compartment("cmp_002").state == "occupied"  # type: ignore[union-attr]
        status, body = await _deposit(k, "TRK-M")
        assert (status, body["code"]) == (403, "already_deposited")

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_a_door_closed_on_an_empty_compartment_confirms_nothing(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await _login(k)
        status, _ = await _deposit(k, "TRK-M")
        assert status == 200
        k.bank.close_door((0, 2))
        await k.settle()
        assert k.events("deposit") == []
        status, body = await _deposit(k, "TRK-M")
        assert status == 200 and body["compartment"]["id"] == "cmp_002"  # type: ignore[index]

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_a_stuck_door_goes_out_of_service_and_the_next_one_opens(tmp_path: Path) -> None:
    bank = Bank(2, 16)
    bank.jam((0, 2))

    async def scenario(k: Kiosk) -> None:
        await _login(k)
        status, body = await _deposit(k, "TRK-M")
        assert status == 200
        assert body["compartment"]["id"] == "cmp_003"  # type: ignore[index]
        assert [e.body["compartment_id"] for e in k.events("out_of_service")] == ["cmp_002"]
        assert [a["compartment_id"] for a in k.alarms("door_jammed")] == ["cmp_002"]

    run_kiosk(tmp_path, scenario, pages=[SITE], bank=bank)


def test_scanning_a_parcel_again_opens_its_door_again(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        await _login(k)
        await _deposit(k, "TRK-M")
        k.bank.close_door((0, 2))  # closed before the parcel went in
        _status, body = await _deposit(k, "TRK-M")
        assert body["compartment"]["id"] == "cmp_002" and k.pulses(2) == 2  # type: ignore[index]

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_courier_refusals(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        status, body = await _deposit(k, "TRK-M")
        assert (status, body["code"]) == (401, "courier_required")
        wrong = await k.api.post("/api/courier/login", json={"code": "0000"})
        assert (wrong.status_code, wrong.json()["code"]) == (403, "invalid_code")
        await _login(k)
        assert (await _deposit(k, "NOPE"))[1]["code"] == "parcel_not_expected"
        assert (await _deposit(k, "TRK-OTHER"))[1]["code"] == "wrong_carrier"
        await _deposit(k, "TRK-S")
        await _deposit(k, "TRK-RESERVED")
        await _deposit(k, "TRK-M")
        await _deposit(k, "TRK-M2")  # takes the L
        status, body = await _deposit(k, "TRK-COLD")
        assert status == 200
        assert (await k.api.post("/api/courier/logout")).status_code == 204
        assert (await _deposit(k, "TRK-M"))[1]["code"] == "courier_required"
        refused = [(e.body["method"], e.body["reason"]) for e in k.events("refused")]
        assert refused == [
            ("courier", "invalid_code"),
            ("tracking_number", "parcel_not_expected"),
            ("tracking_number", "wrong_carrier"),
        ]

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_no_free_compartment_of_the_size_is_site_full(tmp_path: Path) -> None:
    full = page(
        compartments=[compartment(0, size="M", state="occupied"), compartment(1, size="S")],
        couriers=[courier("cou_1", "org_dpx", "1")],
        expected=[expected("prc_m", "TRK-M", "org_dpx")],
        sizes=SIZES,
    )

    async def scenario(k: Kiosk) -> None:
        await _login(k, "1")
        status, body = await _deposit(k, "TRK-M")
        assert (status, body["code"]) == (409, "site_full")
        assert k.pulses(1) == 0

    run_kiosk(tmp_path, scenario, pages=[full])


def test_a_command_runs_once_by_id_and_an_expired_one_not_at_all(tmp_path: Path) -> None:
    async def scenario(k: Kiosk) -> None:
        command = {
            "id": "obx_1",
            "type": "open",
            "compartment_id": "cmp_000",
            "parcel_id": "prc_9",
            "reason": "remote_open",
            "expires_at": (START + timedelta(minutes=5)).isoformat(),
        }
        assert await k.agent.run_command(command) == "opened"
        assert await k.agent.run_command(command) == "opened"
        assert k.pulses(0) == 1
        late = command | {"id": "obx_2", "expires_at": (START - timedelta(seconds=1)).isoformat()}
        assert await k.agent.run_command(late) == "expired"
        elsewhere = command | {"id": "obx_3", "compartment_id": "cmp_999"}
        assert await k.agent.run_command(elsewhere) == "failed"
        acks = [(e.body["command_id"], e.body["result"]) for e in k.events("command")]
        assert acks == [("obx_1", "opened"), ("obx_2", "expired"), ("obx_3", "failed")]
        await k.settle()
        # A commanded door is no forced door.
        assert k.alarms("door_forced") == []

    run_kiosk(tmp_path, scenario, pages=[SITE])


def test_a_command_on_a_stuck_lock_fails_and_takes_the_compartment_out(tmp_path: Path) -> None:
    bank = Bank(2, 16)
    bank.jam((0, 3))

    async def scenario(k: Kiosk) -> None:
        command = {"id": "obx_9", "type": "open", "compartment_id": "cmp_003"}
        assert await k.agent.run_command(command) == "failed"
        assert await k.agent.run_command(command) == "failed"
        assert k.pulses(3) == 2
        assert [e.body["result"] for e in k.events("command")] == ["failed"]
        assert len(k.events("out_of_service")) == 1

    run_kiosk(tmp_path, scenario, pages=[SITE], bank=bank)


def test_a_pickups_command_for_a_parcel_picked_up_here_is_declined(tmp_path: Path) -> None:
    site = page(
        compartments=[compartment(0, state="occupied")],
        credentials=[credential("crd_1", "prc_1", [0], pin="12121212")],
    )

    async def scenario(k: Kiosk) -> None:
        assert (await k.pickup(pin="12121212")).status_code == 200
        command = {"id": "obx_5", "compartment_id": "cmp_000", "parcel_id": "prc_1",
                   "reason": "pickup"}  # fmt: skip
        assert await k.agent.run_command(command) == "declined"
        assert k.pulses(0) == 1
        other = command | {"id": "obx_6", "reason": "retrieval"}
        assert await k.agent.run_command(other) == "opened"

    run_kiosk(tmp_path, scenario, pages=[site])
