"""A kiosk process killed with SIGKILL in the middle of a pickup, on a Kerong emulator."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from openlocker.kiosk.boards import kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.emulators import KerongEmulator
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.run import spawn_kiosk, stop_kiosk
from openlocker.kiosk.store import INTENDED, INTERRUPTED, KioskStore
from tests.kiosk.helpers import SITE, START, closed_port, compartment, credential, page
from tests.servers import _free_port


def _unlocks(emulator: KerongEmulator) -> list[int]:
    return [r.frame[1] & 0x0F for r in emulator.received if r.frame[2] == kerong.UNLOCK]


def _kill_mid_pickup(
    emulator: KerongEmulator, kiosk: subprocess.Popen[bytes], first: KioskSettings
) -> None:
    """Ask for a pickup and SIGKILL the kiosk once its unlock frame is on the wire."""
    assert _unlocks(emulator) == []  # start reads every lock, pulses none
    answers: list[object] = []

    def pick_up() -> None:
        try:
            answers.append(
                httpx.post(
                    f"http://127.0.0.1:{first.ui_port}/api/pickup",
                    json={"pin": "13572468"},
                    timeout=10,
                )
            )
        except httpx.HTTPError as error:
            answers.append(error)

    asking = threading.Thread(target=pick_up)
    asking.start()
    deadline = time.monotonic() + 10
    while not _unlocks(emulator):
        assert time.monotonic() < deadline, "the kiosk never pulsed"
        time.sleep(0.005)
    os.killpg(kiosk.pid, signal.SIGKILL)
    kiosk.wait()
    asking.join()
    assert isinstance(answers[0], httpx.HTTPError)  # killed before it could answer


def test_sigkill_mid_pickup_loses_no_event_and_never_pulses_twice(tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    store = KioskStore(data / "kiosk.db")
    store.apply_pull(
        page(
            compartments=[compartment(n, state="occupied") for n in range(16)],
            # The child runs on the real clock.
            credentials=[
                credential(
                    "crd_1",
                    "prc_1",
                    [5],
                    pin="13572468",
                    expires_at=datetime.now(UTC) + timedelta(days=3),
                )
            ],
        ),
        START,
    )
    store.close()
    with KerongEmulator(Bank(1, 16)) as emulator:

        def settings(settle: float) -> KioskSettings:
            return KioskSettings(
                site_id=SITE,
                server=f"http://127.0.0.1:{closed_port()}",
                key="olk_test",
                # A long settle: the kiosk is killed after the pulse, before it is verified.
                boards=(f"kerong:{emulator.port},settle={settle},poll=0.05",),
                data_dir=data,
                ui_port=_free_port(),
            )

        first = settings(2.0)
        log = (tmp_path / "first.log").open("wb")
        kiosk = spawn_kiosk(first, log=log)
        try:
            _kill_mid_pickup(emulator, kiosk, first)
        finally:
            stop_kiosk(kiosk)
        assert _unlocks(emulator) == [5]

        left = KioskStore(data / "kiosk.db")
        event, *later = left.events()
        assert event.type == "pickup" and event.body["compartments"] == ["cmp_005"]
        # A busy machine may let a board poll see the door open before the kill; nothing else.
        assert all(
            (e.type, e.body["compartment_id"], e.body["door"]) == ("door", "cmp_005", "open")
            for e in later
        ), [(e.type, e.body) for e in later]
        assert [p.state for p in left.pulses()] == [INTENDED]
        left.close()

        second = settings(0.2)
        kiosk = spawn_kiosk(second, log=(tmp_path / "second.log").open("wb"))
        try:
            again = httpx.post(
                f"http://127.0.0.1:{second.ui_port}/api/pickup", json={"pin": "13572468"}
            )
            assert again.status_code == 403 and again.json()["code"] == "code_used"
            health = httpx.get(f"http://127.0.0.1:{second.ui_port}/healthz").json()
            assert health["online"] is False and health["queued"] >= 1
            time.sleep(0.3)  # a few polls
            assert _unlocks(emulator) == [5]
        finally:
            assert stop_kiosk(kiosk) == 0
        after = KioskStore(data / "kiosk.db")
        assert [e.type for e in after.events()].count("pickup") == 1
        assert [p.state for p in after.pulses()] == [INTERRUPTED]
        assert next(e.id for e in after.pushable(100)) == event.id
        after.close()
