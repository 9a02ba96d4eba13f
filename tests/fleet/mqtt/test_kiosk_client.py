"""The kiosk's client against the shared Mosquitto, with a test in the server's place: bad
commands are refused with a logged reason, and no command pulses a lock twice, whether it
is replayed, arrives again after a restart, or comes over both MQTT and the HTTP sync."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from openlocker.core.ids import new_id
from openlocker.core.mqtt import OpenCommand, SyncCommand
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.mqtt import Outcome, SqliteCommandLog, agent_commands, sync_row
from tests.fleet.mqtt.conftest import LiveClock
from tests.fleet.mqtt.contract import problems
from tests.fleet.mqtt.harness import Listener, SimKiosk, kiosk, wait_for

SITE = "sit_kiosktest"
DOOR = "cmp_door1"


def command(**change: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    message = {
        "message_id": new_id("obx"),
        "transaction_id": new_id("txn"),
        "site_id": SITE,
        "sent_at": now.isoformat(),
        "type": "open",
        "expires_at": (now + timedelta(seconds=60)).isoformat(),
        "compartment_id": DOOR,
        "label": "A1",
        "reason": "test",
    }
    message.update(change)
    return message


class Server:
    """The test in the server's place: publishes on the kiosk's command topic, reads its
    answers."""

    def __init__(self, ear: Listener, root: str) -> None:
        self.ear = ear
        self.root = root

    def send(self, message: dict[str, Any] | bytes) -> None:
        payload = message if isinstance(message, bytes) else orjson.dumps(message)
        self.ear.publish(f"{self.root}/sites/{SITE}/commands", payload)

    def answers(self) -> list[dict[str, Any]]:
        found = []
        for payload in self.ear.on(f"{self.root}/sites/{SITE}/answers"):
            assert problems("answers", payload) == []
            found.append(orjson.loads(payload))
        return found

    def answer_to(self, message_id: str, count: int = 1) -> list[dict[str, Any]]:
        wait_for(lambda: len([a for a in self.answers() if a["command_id"] == message_id]) >= count)
        return [a for a in self.answers() if a["command_id"] == message_id]


@pytest.fixture
def server(root: str) -> Iterator[Server]:
    with Listener(topics=(f"{root}/sites/{SITE}/answers",)) as ear:
        yield Server(ear, root)


@pytest.fixture
def locker(root: str, clock: LiveClock, data: Path) -> Iterator[SimKiosk]:
    with kiosk(SITE, {DOOR: (0, 0)}, data, root=root, clock=clock) as running:
        running.wait_connected()
        yield running


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        getattr(r, "reason", "")
        for r in caplog.records
        if r.getMessage() == "fleet command refused"
    ]


def test_a_command_opens_the_door_and_is_answered(server: Server, locker: SimKiosk) -> None:
    sent = command()
    server.send(sent)
    [answer] = server.answer_to(sent["message_id"])
    assert answer["result"] == "opened"
    assert answer["transaction_id"] == sent["transaction_id"]
    assert (answer["door"], answer["locked"]) == ("open", False)
    assert locker.pulses(DOOR) == 1


def test_a_replayed_command_is_answered_again_but_pulses_once(
    server: Server, locker: SimKiosk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "openlocker.kiosk.fleet")
    sent = command()
    server.send(sent)
    server.answer_to(sent["message_id"])
    locker.bank.close_door((0, 0))
    server.send({**sent, "sent_at": datetime.now(UTC).isoformat()})  # the server's retry
    server.send(sent)  # a QoS 1 redelivery
    answers = server.answer_to(sent["message_id"], count=3)
    assert [a["result"] for a in answers] == ["opened"] * 3
    assert locker.pulses(DOOR) == 1
    assert any("answered from the log" in r.getMessage() for r in caplog.records)


def test_a_command_is_not_run_again_after_the_kiosk_restarts(
    server: Server, locker: SimKiosk
) -> None:
    sent = command()
    server.send(sent)
    server.answer_to(sent["message_id"])
    locker.stop()
    locker.start()
    locker.wait_connected()
    server.send(sent)
    assert [a["result"] for a in server.answer_to(sent["message_id"], count=2)] == ["opened"] * 2
    assert locker.pulses(DOOR) == 1


def test_a_command_begun_when_the_kiosk_died_is_not_run_again(
    server: Server, root: str, clock: LiveClock, data: Path
) -> None:
    """The kiosk recorded the command and died before it answered (the lock may have been
    pulsed): the redelivered command is answered ``failed``/``interrupted``, not run."""
    sent = command()
    data.mkdir(parents=True, exist_ok=True)
    log = SqliteCommandLog(data / "fleet-commands.db")
    assert log.begin(sent["message_id"]) is None
    log.close()
    with kiosk(SITE, {DOOR: (0, 0)}, data, root=root, clock=clock) as locker:
        locker.wait_connected()
        server.send(sent)
        [answer] = server.answer_to(sent["message_id"])
        assert (answer["result"], answer["reason"]) == ("failed", "interrupted")
        assert locker.pulses(DOOR) == 0


def test_an_expired_command_is_refused_not_run_late(
    server: Server, locker: SimKiosk, caplog: pytest.LogCaptureFixture
) -> None:
    sent = command(expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    server.send(sent)
    [answer] = server.answer_to(sent["message_id"])
    assert (answer["result"], answer["reason"]) == ("expired", "expired")
    assert locker.pulses(DOOR) == 0
    assert "expired" in _refusals(caplog)


def test_a_command_for_another_site_is_refused(
    server: Server, locker: SimKiosk, caplog: pytest.LogCaptureFixture
) -> None:
    sent = command(site_id="sit_someoneelse")
    server.send(sent)
    [answer] = server.answer_to(sent["message_id"])
    assert (answer["result"], answer["reason"]) == ("refused", "wrong_site")
    assert answer["site_id"] == SITE
    assert locker.pulses(DOOR) == 0
    assert "site_mismatch" in _refusals(caplog)


def test_messages_that_break_the_contract_are_refused_and_logged(
    server: Server, locker: SimKiosk, caplog: pytest.LogCaptureFixture
) -> None:
    server.send(b"open A1 please")
    server.send(command(expires_at=None))
    server.send(command(type="explode"))
    # Then a good one, so the test knows the bad ones were taken first.
    sent = command()
    server.send(sent)
    server.answer_to(sent["message_id"])
    assert _refusals(caplog)[:3] == ["not_json", "invalid", "invalid"]
    assert len(server.answers()) == 1
    assert locker.pulses(DOOR) == 1


def test_the_kiosk_says_it_is_online_heartbeats_and_says_offline_when_stopped(
    root: str, clock: LiveClock, data: Path
) -> None:
    presence, heartbeat = (f"{root}/sites/{SITE}/{c}" for c in ("presence", "heartbeat"))
    with Listener(topics=(presence, heartbeat)) as ear:
        with kiosk(SITE, {DOOR: (0, 0)}, data, root=root, clock=clock) as locker:
            locker.wait_connected()
            wait_for(lambda: len(ear.on(heartbeat)) >= 2)
            # The broker keeps the newest presence for whoever subscribes later (the
            # server's consumer after a restart), flagged as retained.
            with Listener(topics=(presence,)) as late:
                wait_for(lambda: late.received)
            [kept] = late.received
            assert kept.retain is True
            assert orjson.loads(kept.payload)["status"] == "online"  # type: ignore[arg-type]
        wait_for(lambda: len(ear.on(presence)) >= 2)
    statuses = [orjson.loads(p) for p in ear.on(presence) if p]
    assert [(s["status"], s["reason"]) for s in statuses[:2]] == [
        ("online", "connected"),
        ("offline", "shutdown"),
    ]
    beat = orjson.loads(ear.on(heartbeat)[0])
    assert beat["version"] == "kiosk-test-1" and beat["uptime_seconds"] >= 0


def test_the_agents_own_entry_takes_mqtt_commands_as_its_sync_rows() -> None:
    """``agent_commands`` hands the agent the command as the HTTP sync lists it (same id,
    so the agent's own once-per-id holds across both ways) and maps its result."""
    rows: list[dict[str, Any]] = []
    syncs: list[bool] = []
    bank = Bank(1, 16)
    board = SimBoard(bank)

    async def agent_run(row: Mapping[str, Any]) -> str:
        rows.append(dict(row))
        if row["compartment_id"] != DOOR:
            return "unknown_compartment"
        await board.open((0, 0))
        return "opened"

    run = agent_commands(agent_run, lambda: syncs.append(True))
    opened = OpenCommand.model_validate(command(), strict=False)
    elsewhere = OpenCommand.model_validate(command(compartment_id="cmp_other"), strict=False)
    sync = SyncCommand.model_validate(
        {**command(type="sync"), "reason": "config changed"}, strict=False
    )

    async def scenario() -> list[Outcome]:
        await board.start()
        return [await run(opened), await run(elsewhere), await run(sync)]

    outcomes = asyncio.run(scenario())
    assert [o.result for o in outcomes] == ["opened", "failed", "done"]
    assert outcomes[1].reason == "door_not_opened"
    assert rows[0] == sync_row(opened)
    assert rows[0]["id"] == opened.message_id and rows[0]["type"] == "open"
    assert syncs == [True]
    assert bank.snapshot((0, 0)).pulses == 1
