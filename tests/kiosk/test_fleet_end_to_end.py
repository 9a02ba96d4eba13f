"""The kiosk agent on the fleet channel, end to end: a real ``openlocker serve`` whose
consumer leads on Mosquitto, the real kiosk (``openlocker kiosk --mqtt``) on sim boards or
the Kerong driver on its pty emulator; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker import __version__
from openlocker.core.context import Context
from openlocker.core.ids import new_id
from openlocker.kiosk.boards import kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.emulators import KerongEmulator
from openlocker.kiosk.boards.kerong import KerongBoard
from openlocker.kiosk.run import spawn_kiosk, stop_kiosk
from tests.factories import Factory
from tests.fleet.mqtt.agents import (
    fleet_locker,
    fleet_server,
    fleet_settings,
    kiosk_of,
    remote_open,
)
from tests.fleet.mqtt.harness import (
    SHARED_BROKER,
    Listener,
    Mosquitto,
    forget,
    free_port,
    unique_root,
)
from tests.kiosk.e2e import (
    address_of,
    audit_of,
    clock,  # noqa: F401 (the real clock, for the server and the kiosk)
    wait_for,
)
from tests.web.helpers import link_token, served_code


def _compartment(ctx: Context, site: str, label: str) -> tuple[str, tuple[int, int]]:
    with ctx.db.engine.connect() as conn:
        cid, board, lock = conn.execute(
            text("SELECT id, board, lock FROM compartments WHERE site_id = :s AND label = :l"),
            {"s": site, "l": label},
        ).one()
    return str(cid), (int(board), int(lock))


def _answered_over_mqtt(ctx: Context, command_id: str) -> bool:
    """The fleet consumer recorded the kiosk's MQTT answer to ``command_id``."""
    with ctx.db.engine.connect() as conn:
        answered = conn.execute(
            text("SELECT answered_at FROM fleet_commands WHERE command_id = :c"),
            {"c": command_id},
        ).scalar_one_or_none()
    return answered is not None


def _alarms(base: str, operator: dict[str, str], site: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/v1/alarms", headers=operator, params={"site_id": site})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return [a for a in items if a["site_id"] == site]


def test_a_remote_open_is_confirmed_by_the_kiosk_and_its_door_opens_once(
    ctx: Context,
    factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = factory.site("SSSS")
    key = factory.kiosk(site).key
    operator = factory.operator().headers
    door, address = _compartment(ctx, site, "A2")
    root = unique_root()
    bank = Bank(1, 16)
    with fleet_server(ctx, monkeypatch, root) as base:
        # A sync every 30 s: the door command can only come this fast over MQTT.
        settings = fleet_settings(
            tmp_path, site, key, base, broker=SHARED_BROKER, root=root, sync_interval_s=30
        )
        with fleet_locker(settings, bank) as k:
            wait_for(lambda: k.synced() and kiosk_of(base, site, operator)["state"], "online")
            started = time.monotonic()
            answer = remote_open(base, door, operator, "customer locked out")
            took = time.monotonic() - started
            assert answer.status_code == 200, answer.text
            body = answer.json()
            # Its event push or its MQTT answer, whichever came first (``door`` comes with MQTT).
            assert (body["confirmed"], body["result"]) == (True, "opened")
            assert body["door"] in (None, "open")
            assert took < 2.0, took
            assert bank.snapshot(address).door_open and bank.snapshot(address).pulses == 1
            # The snapshot follows the door; the kiosk reports the opening as its event too.
            wait_for(
                lambda: any(
                    c["compartment_id"] == door and c["door"] == "open"
                    for c in kiosk_of(base, site, operator)["state"]["compartments"]
                ),
                "the snapshot with the door open",
            )
            kiosk = kiosk_of(base, site, operator)
            assert (kiosk["status"], kiosk["version"]) == ("online", __version__)
            assert kiosk["last_heartbeat_at"] is not None and kiosk["queued_events"] is not None
            wait_for(lambda: _answered_over_mqtt(ctx, body["command_id"]), "the MQTT answer")
            bank.close_door(address)
            wait_for(lambda: k.synced(), "the kiosk's events pushed")
            # The HTTP sync carried the same command meanwhile: run once all the same.
            time.sleep(0.5)
            assert bank.snapshot(address).pulses == 1
    assert [a["compartment_id"] for a in audit_of(ctx, site, "compartment.remote_open_requested")]
    assert [e["compartment_id"] for e in audit_of(ctx, site, "kiosk.command_answered")] == [door]
    assert audit_of(ctx, site, "compartment.door_closed")


def test_the_operator_sees_the_kiosk_online_then_offline_and_a_silent_one_raises_an_alarm(
    ctx: Context,
    factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kiosk process (``python -m openlocker.kiosk --mqtt``) says online with its version;
    stopped, it says offline (``shutdown``); killed, it goes silent: ``kiosk_silent``."""
    site = factory.site("SSSS")
    key = factory.kiosk(site).key
    operator = factory.operator().headers
    root = unique_root()
    with fleet_server(ctx, monkeypatch, root, silence_seconds=1) as base:
        settings = fleet_settings(
            tmp_path, site, key, base, broker=SHARED_BROKER, root=root, sync_interval_s=1
        )
        settings = dataclasses.replace(settings, boards=("sim:1x16",))
        try:
            kiosk = spawn_kiosk(settings, log=(tmp_path / "kiosk.log").open("wb"))
            try:
                online = wait_for(
                    lambda: (k := kiosk_of(base, site, operator))["status"] == "online" and k,
                    "the kiosk online",
                )
                assert online["version"] == __version__ and online["silent"] is False
                time.sleep(1.5)  # longer than the silence: the heartbeats keep it online
                assert kiosk_of(base, site, operator)["status"] == "online"
            finally:
                assert stop_kiosk(kiosk) == 0
            stopped = kiosk_of(base, site, operator)
            assert (stopped["status"], stopped["status_reason"]) == ("offline", "shutdown")

            kiosk = spawn_kiosk(settings, log=(tmp_path / "again.log").open("wb"))
            wait_for(lambda: kiosk_of(base, site, operator)["status"] == "online", "back")
            kiosk.kill()  # no goodbye, and the broker's will comes only after the keepalive
            kiosk.wait()
            silent = wait_for(
                lambda: (k := kiosk_of(base, site, operator))["silent"] and k, "silence"
            )
            assert (silent["status"], silent["status_reason"]) == ("offline", "silent")
            kinds = [a["kind"] for a in _alarms(base, operator, site)]
            assert "kiosk_silent" in kinds, kinds
        finally:
            asyncio.run(forget(SHARED_BROKER, f"kiosk-{site}", root, site))


def test_open_my_compartment_on_the_pickup_page_reaches_the_door_over_mqtt(
    ctx: Context,
    factory: Factory,
    client: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    carrier = factory.org()
    site = factory.site("SSSS")
    kiosk_key = factory.kiosk(site)
    root = unique_root()
    bank = Bank(1, 16)
    with fleet_server(ctx, monkeypatch, root) as base:
        settings = fleet_settings(
            tmp_path,
            site,
            kiosk_key.key,
            base,
            broker=SHARED_BROKER,
            root=root,
            sync_interval_s=30,
        )
        with fleet_locker(settings, bank) as k:
            wait_for(lambda: k.synced(), "the first sync")
            parcel = factory.deposited(carrier, site, notify="sender")
            address = address_of(parcel, ctx)
            # The deposit's door command opens the door for the courier, who shuts it.
            wait_for(lambda: bank.snapshot(address).pulses == 1, "the deposit's door")
            bank.close_door(address)
            wait_for(lambda: k.synced() and k.health()["open_doors"] == 0, "the door shut")
            code = served_code(base, kiosk_key.headers, site)
            started = time.monotonic()
            page = httpx.post(
                f"{base}/p/{link_token(parcel)}/open", data={"code": code}, timeout=10
            )
            assert page.status_code == 303, page.text  # to the page, which says it opened
            wait_for(lambda: bank.snapshot(address).pulses == 2, "the pickup's door", 5)
            assert time.monotonic() - started < 2.0
            with ctx.db.engine.connect() as conn:
                command_id = conn.execute(
                    text(
                        "SELECT id FROM outbox WHERE topic = 'kiosk.open_compartment'"
                        " AND parcel_id = :p ORDER BY seq DESC LIMIT 1"
                    ),
                    {"p": parcel["id"]},
                ).scalar_one()
            wait_for(lambda: _answered_over_mqtt(ctx, command_id), "the answer over MQTT")
            bank.close_door(address)
            wait_for(lambda: k.synced(), "the pickup's events")
            assert bank.snapshot(address).pulses == 2
    assert [a["parcel_id"] for a in audit_of(ctx, site, "parcel.picked_up")] == [parcel["id"]]


def test_a_broker_restart_in_the_middle_of_a_remote_open_pulses_the_lock_once(
    ctx: Context,
    factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kiosk has sent the unlock frame (Kerong driver, a slow check) when the broker
    stops; it comes back: the operator's call is confirmed, the frame went out once."""
    site = factory.site("SSSS")
    key = factory.kiosk(site).key
    operator = factory.operator().headers
    door, address = _compartment(ctx, site, "A1")
    with (
        Mosquitto(tmp_path / "broker") as broker,
        KerongEmulator(Bank(1, 16)) as emulator,
        fleet_server(
            ctx, monkeypatch, "openlocker/v1", broker=broker.url(), open_wait_seconds=25
        ) as base,
    ):
        settings = fleet_settings(
            tmp_path,
            site,
            key,
            base,
            broker=broker.url(),
            root="openlocker/v1",
            sync_interval_s=30,
        )
        board = KerongBoard(emulator.port, settle=1.0, poll_interval=0.05)
        with fleet_locker(settings, emulator.bank, [board]) as k:
            wait_for(lambda: k.synced() and kiosk_of(base, site, operator)["state"], "online")
            answer: dict[str, Any] = {}

            def operator_opens() -> None:
                response = remote_open(base, door, operator, "broker restart")
                answer.update(status=response.status_code, body=response.json())

            call = threading.Thread(target=operator_opens)
            call.start()
            unlock = kerong.unlock_frame(*address)
            wait_for(lambda: any(r.frame == unlock for r in emulator.received), "the unlock", 10)
            broker.stop()
            time.sleep(1.5)  # the door's check ends while the broker is down
            broker.start()
            call.join(40)
            assert answer["status"] == 200, answer
            assert answer["body"]["confirmed"] is True
            time.sleep(1.5)  # the server's retry and the HTTP sync: answered, not run
            assert [r.frame for r in emulator.received].count(unlock) == 1
            assert emulator.bank.snapshot(address).pulses == 1
            wait_for(lambda: k.synced(), "the command's event pushed")
    # Settled once, by the MQTT answer or by the kiosk's pushed event, whichever reached the
    # server first (the broker was down, so either may win). The pushed event is recorded
    # only while the command is pending; the MQTT answer is recorded once whenever it comes.
    answered = [e["compartment_id"] for e in audit_of(ctx, site, "kiosk.command_answered")]
    opened = [e["compartment_id"] for e in audit_of(ctx, site, "kiosk.command_opened")]
    assert answered in ([], [door]) and opened in ([], [door]), (answered, opened)
    assert answered or opened


def test_with_the_broker_down_the_kiosk_works_by_polling(
    ctx: Context,
    factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    carrier = factory.org()
    site = factory.site("SSSS")
    key = factory.kiosk(site).key
    operator = factory.operator().headers
    door, address = _compartment(ctx, site, "A3")
    down = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    bank = Bank(1, 16)
    with fleet_server(ctx, monkeypatch, "openlocker/v1", broker=down) as base:
        settings = fleet_settings(tmp_path, site, key, base, broker=down, root="openlocker/v1")
        with fleet_locker(settings, bank) as k:
            wait_for(lambda: k.synced(), "the first sync")
            # The next sync brings the command, its event push the answer.
            opened = remote_open(base, door, operator, "broker down")
            assert opened.status_code == 200, opened.text
            assert (
                opened.json().items()
                >= {
                    "confirmed": True,
                    "result": "opened",
                    "published": False,
                }.items()
            )
            assert bank.snapshot(address).door_open
            bank.close_door(address)
            parcel = factory.deposited(carrier, site, notify="sender")
            at = address_of(parcel, ctx)
            wait_for(lambda: k.synced(credentials=1) and bank.snapshot(at).pulses, "the deposit")
            bank.close_door(at)
            picked = k.http.post("/api/pickup", json={"pin": parcel["pickup"]["pin"]})
            assert picked.status_code == 200 and picked.json()["offline"] is False
            bank.close_door(at)
            wait_for(lambda: k.synced(credentials=0), "the pickup reported")
            assert bank.snapshot(address).pulses == 1
    assert kiosk_of_unknown(ctx, site)
    assert [a["parcel_id"] for a in audit_of(ctx, site, "parcel.picked_up")] == [parcel["id"]]


def kiosk_of_unknown(ctx: Context, site: str) -> bool:
    """The fleet never heard of the site's kiosk."""
    with ctx.db.engine.connect() as conn:
        return (
            conn.execute(
                text("SELECT count(*) FROM fleet_kiosks WHERE site_id = :s"), {"s": site}
            ).scalar_one()
            == 0
        )


def test_a_sync_command_makes_the_kiosk_sync_at_once(
    ctx: Context,
    factory: Factory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = factory.site("SSSS")
    key = factory.kiosk(site).key
    root = unique_root()
    bank = Bank(1, 16)
    with fleet_server(ctx, monkeypatch, root) as base:
        settings = fleet_settings(
            tmp_path, site, key, base, broker=SHARED_BROKER, root=root, sync_interval_s=60
        )
        with (
            fleet_locker(settings, bank) as k,
            Listener(topics=(f"{root}/sites/{site}/answers",)) as server,
        ):
            wait_for(lambda: k.synced() and k.kiosk.agent.online, "the first sync")  # type: ignore[union-attr]

            def quiet() -> str | None:
                """The last sync, once no other came for half a second (the start's are
                over: the next one is a minute away)."""
                synced_at = k.health()["last_sync"]
                time.sleep(0.5)
                return synced_at if k.health()["last_sync"] == synced_at else None

            synced_at = wait_for(quiet, "the syncs of the start to end")
            now = datetime.now(UTC)
            command = {
                "message_id": new_id("msg"),
                "site_id": site,
                "sent_at": now.isoformat(),
                "type": "sync",
                "transaction_id": new_id("txn"),
                "expires_at": (now + timedelta(minutes=1)).isoformat(),
                "reason": "new parcels",
            }
            server.publish(f"{root}/sites/{site}/commands", orjson.dumps(command))
            wait_for(lambda: k.health()["last_sync"] != synced_at, "the sync it asked for", 2)
            wait_for(lambda: server.received, "the answer")
            assert orjson.loads(server.received[0].payload)["result"] == "done"  # type: ignore[arg-type]
