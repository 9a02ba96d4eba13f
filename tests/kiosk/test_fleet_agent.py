"""The real kiosk agent on the fleet channel (``KioskSettings.mqtt_url``), on sim boards that
count pulses; the test plays the server on the shared Mosquitto (a topic root of its own),
and the agent's store was synced before (its server cannot be reached now)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from openlocker import __version__
from openlocker.core.ids import new_id
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.cli import kiosk as kiosk_command
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.mqtt import broker_of
from openlocker.kiosk.run import KioskThread
from openlocker.kiosk.store import KioskStore
from tests.fleet.mqtt.harness import SHARED_BROKER, Listener, forget, unique_root, wait_for
from tests.kiosk.helpers import SITE, START, closed_port, compartment, page
from tests.servers import _free_port


class FleetKiosk:
    """The kiosk thread, its bank, and the test's ear and mouth on its topics."""

    def __init__(self, kiosk: KioskThread, bank: Bank, ear: Listener, root: str) -> None:
        self.kiosk = kiosk
        self.bank = bank
        self.ear = ear
        self.root = root

    def topic(self, channel: str) -> str:
        return f"{self.root}/sites/{SITE}/{channel}"

    def heard(self, channel: str) -> list[dict[str, Any]]:
        return [orjson.loads(p) for p in self.ear.on(self.topic(channel)) if p]

    def answers(self, command_id: str) -> list[dict[str, Any]]:
        return [a for a in self.heard("answers") if a["command_id"] == command_id]

    def command(self, n: int, *, expires_in: float = 60.0, site: str = SITE) -> dict[str, Any]:
        """An open command for compartment ``n`` as the server publishes it."""
        now = datetime.now(UTC)
        ident = new_id("obx")
        return {
            "message_id": ident,
            "site_id": site,
            "sent_at": now.isoformat(),
            "type": "open",
            "transaction_id": ident,
            "expires_at": (now + timedelta(seconds=expires_in)).isoformat(),
            "compartment_id": f"cmp_{n:03d}",
            "label": f"A{n + 1}",
            "reason": "remote open",
        }

    def publish(self, command: dict[str, Any]) -> None:
        self.ear.publish(self.topic("commands"), orjson.dumps(command))

    def by_http_sync(self, command: dict[str, Any]) -> object:
        """The same command as the HTTP sync's row, run as the sync runs it."""
        row = {key: command[key] for key in ("compartment_id", "reason", "expires_at")} | {
            "id": command["message_id"],
            "type": "open",
        }
        return self.kiosk.call(lambda agent: agent.run_command(row))

    def pulses(self, n: int) -> int:
        return self.bank.snapshot((n // 16, n % 16)).pulses


@pytest.fixture
def fleet_kiosk(tmp_path: Path) -> Iterator[FleetKiosk]:
    data = tmp_path / "kiosk"
    store = KioskStore(data / "kiosk.db")
    store.apply_pull(page(compartments=[compartment(n) for n in range(16)]), START)
    store.close()
    root = unique_root()
    settings = KioskSettings(
        site_id=SITE,
        server=f"http://127.0.0.1:{closed_port()}",
        key="olk_test",
        data_dir=data,
        ui_port=_free_port(),
        offline_retry_s=60,
        mqtt_url=SHARED_BROKER,
        mqtt_topic_root=root,
        heartbeat_s=0.2,
    )
    bank = Bank(1, 16)
    with Listener(topics=(f"{root}/sites/{SITE}/#",)) as ear:
        try:
            with KioskThread(settings, drivers=[SimBoard(bank, poll_interval=0.02)]) as kiosk:
                yield FleetKiosk(kiosk, bank, ear, root)
        finally:
            asyncio.run(forget(SHARED_BROKER, f"kiosk-{SITE}", root, SITE))


def test_a_command_that_comes_over_mqtt_and_the_http_sync_pulses_its_lock_once(
    fleet_kiosk: FleetKiosk,
) -> None:
    k = fleet_kiosk
    wait_for(lambda: k.heard("presence"))
    # Over MQTT first, then the HTTP sync carries the same row.
    first = k.command(1)
    k.publish(first)
    wait_for(lambda: k.answers(first["message_id"]))
    assert k.by_http_sync(first) == "opened"
    # The HTTP sync first, then MQTT (twice: QoS 1 may deliver again).
    second = k.command(2)
    assert k.by_http_sync(second) == "opened"
    k.publish(second)
    k.publish(second)
    wait_for(lambda: len(k.answers(second["message_id"])) == 2)
    # Both at once.
    third = k.command(3)
    results: list[object] = []
    sync = threading.Thread(target=lambda: results.append(k.by_http_sync(third)))
    k.publish(third)
    sync.start()
    sync.join(10)
    wait_for(lambda: k.answers(third["message_id"]))
    assert results == ["opened"]
    for n, command in ((1, first), (2, second), (3, third)):
        assert k.pulses(n) == 1, n
        assert {a["result"] for a in k.answers(command["message_id"])} == {"opened"}
    events = k.kiosk.call(lambda agent: agent.store.events())
    ran = [e.body["command_id"] for e in events if e.type == "command"]  # type: ignore[attr-defined]
    assert sorted(ran) == sorted(c["message_id"] for c in (first, second, third))
    assert k.pulses(0) == 0 and k.pulses(4) == 0


def test_a_command_past_its_expiry_or_for_another_site_is_refused_and_not_run(
    fleet_kiosk: FleetKiosk,
) -> None:
    k = fleet_kiosk
    wait_for(lambda: k.heard("presence"))
    late = k.command(5, expires_in=-1)
    k.publish(late)
    other = k.command(6, site="sit_01KOTHERSITE000000000000000")
    k.publish(other)
    k.ear.publish(k.topic("commands"), b"not json")
    wait_for(lambda: k.answers(late["message_id"]) and k.answers(other["message_id"]))
    assert k.answers(late["message_id"])[0]["result"] == "expired"
    assert k.answers(other["message_id"])[0]["reason"] == "wrong_site"
    assert k.pulses(5) == 0 and k.pulses(6) == 0


def test_presence_heartbeat_and_state_follow_the_agent_and_stopping_says_offline(
    fleet_kiosk: FleetKiosk,
) -> None:
    k = fleet_kiosk
    wait_for(lambda: k.heard("state") and k.heard("heartbeat"))
    (online,) = k.heard("presence")
    assert (online["status"], online["version"]) == ("online", __version__)
    beat = k.heard("heartbeat")[-1]
    assert beat["version"] == __version__
    assert beat["queued_events"] == k.kiosk.call(lambda agent: agent.store.queued())
    first = k.heard("state")[-1]["compartments"]
    assert len(first) == 16 and {c["door"] for c in first} == {"closed"}
    assert all(c["locked"] for c in first)
    # Someone forces door A8: the snapshot follows the lock, and the heartbeat the queue.
    k.bank.force((0, 7))

    def forced() -> bool:
        latest = k.heard("state")[-1]["compartments"]
        return any(c["compartment_id"] == "cmp_007" and c["door"] == "open" for c in latest)

    wait_for(forced)
    wait_for(lambda: (k.heard("heartbeat")[-1]["queued_events"] or 0) > beat["queued_events"])
    states = len(k.heard("state"))
    k.kiosk.call(lambda agent: agent.wake_sync())  # nothing changed: no new snapshot
    wait_for(lambda: len(k.heard("heartbeat")) > 3)
    assert len(k.heard("state")) == states
    k.kiosk.stop()
    offline = k.heard("presence")[-1]
    assert (offline["status"], offline["reason"]) == ("offline", "shutdown")


def test_the_mqtt_password_comes_apart_from_the_url_and_the_user_is_then_the_site() -> None:
    broker = broker_of("mqtts://broker.example.net", SITE, "s3cret")
    assert (broker.username, broker.password) == (SITE, "s3cret")
    assert (broker.port, broker.tls) == (8883, True)
    given = broker_of("mqtt://kiosk-7:inline@127.0.0.1:1884", SITE, "ignored")
    assert (given.username, given.password) == ("kiosk-7", "inline")
    assert broker_of("mqtt://127.0.0.1", SITE).username is None


def typer_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(kiosk_command)
    return app


def test_a_bad_mqtt_url_is_refused_at_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        typer_app(),
        [
            "--site",
            SITE,
            "--server",
            "http://127.0.0.1:1",
            "--board",
            "sim",
            "--key",
            "olk_test",
            "--data",
            str(tmp_path),
            "--mqtt",
            "http://broker",
        ],
    )
    assert result.exit_code == 2 and "mqtt://" in result.output
