"""Faults that cross the broker: it restarts in the middle of a remote open, and the
consumer's process goes away while another takes over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openlocker.api.app import create_app
from openlocker.core.context import Context
from openlocker.fleet.mqtt.consumer import FleetConsumer
from tests.factories import Factory
from tests.fleet.mqtt.conftest import LiveClock, fleet_settings
from tests.fleet.mqtt.harness import Mosquitto, kiosk, wait_for
from tests.fleet.mqtt.test_consumer import _outbox_state, _published
from tests.fleet.mqtt.test_remote_open import _compartments, _events


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


def test_a_broker_restart_in_the_middle_of_a_remote_open_pulses_once_and_recovers(
    broker: Mosquitto, ctx: Context, root: str, clock: LiveClock, tmp_path: Path
) -> None:
    """The kiosk has taken the command and is opening the door when the broker goes down:
    the door opens once, the answer waits in the kiosk's log, and once the broker is back
    the server gets it (and the command it published again meanwhile is answered from the
    log, not run): the operator's call returns ``confirmed``."""
    fleet_ctx = fleet_settings(ctx, root, broker.url())
    fleet_ctx.settings.fleet_open_wait_seconds = 25.0
    app = create_app(fleet_ctx, run_jobs=False, run_fleet=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        consumer: FleetConsumer = app.state.fleet
        wait_for(lambda: consumer.connected)
        factory = Factory(fleet_ctx, client)
        site = factory.site("S")
        operator = factory.operator()
        door = _compartments(fleet_ctx, site)["A1"]
        with kiosk(
            site, {door: (0, 0)}, tmp_path / "kiosk", root=root, clock=clock, broker=broker.url()
        ) as locker:
            locker.wait_connected()
            locker.hold = threading.Event()
            answer: dict[str, Any] = {}

            def operator_opens() -> None:
                response = client.post(
                    f"/v1/compartments/{door}/open",
                    json={"reason": "broker restart"},
                    headers=operator.headers,
                )
                answer.update(status=response.status_code, body=response.json())

            call = threading.Thread(target=operator_opens)
            call.start()
            wait_for(lambda: locker.commands)  # the kiosk took it and holds at the door
            broker.stop()
            wait_for(lambda: not consumer.connected and not locker.client.connected.is_set())  # type: ignore[union-attr]
            locker.hold.set()  # the door opens while the broker is down
            wait_for(lambda: locker.pulses(door) == 1)
            broker.start()
            call.join(30)
            assert answer["status"] == 200, answer
            assert answer["body"]["confirmed"] is True
            wait_for(lambda: _outbox_state(fleet_ctx, answer["body"]["command_id"]) == "sent")
            assert locker.pulses(door) == 1
    assert len(_events(fleet_ctx, "kiosk.command_answered")) == 1


def test_one_consumer_leads_and_another_takes_over_when_it_stops(ctx: Context, root: str) -> None:
    """Two server processes' consumers on one database: one leads (PostgreSQL: the advisory
    lock; SQLite: the file lock), the other waits, and takes over when the first stops."""
    fleet_ctx = fleet_settings(ctx, root)
    first_app = create_app(fleet_ctx, run_jobs=False, run_fleet=True)
    second_app = create_app(fleet_ctx, run_jobs=False, run_fleet=True)
    first: FleetConsumer = first_app.state.fleet
    second: FleetConsumer = second_app.state.fleet
    first_client = TestClient(first_app)
    first_client.__enter__()
    try:
        wait_for(lambda: first.leading and first.connected)
        second_client = TestClient(second_app)
        second_client.__enter__()
    except BaseException:
        first_client.__exit__(None, None, None)
        raise
    with second_client:
        time.sleep(4 * fleet_ctx.settings.fleet_leader_retry_seconds)
        assert (first.leading, second.leading) == (True, False)
        assert not second.connected
        first_client.__exit__(None, None, None)  # the leading process stops
        wait_for(lambda: second.leading and second.connected)
        # The leader publishes what any process queued.
        factory = Factory(fleet_ctx, second_client)
        site = factory.site("S")
        fleet_ctx.settings.fleet_open_wait_seconds = 0.2
        queued = second_client.post(
            f"/v1/compartments/{_compartments(fleet_ctx, site)['A1']}/open",
            json={"reason": "leader check"},
            headers=factory.operator().headers,
        )
        assert queued.status_code == 202
        wait_for(lambda: _published(fleet_ctx, queued.json()["command_id"]) >= 1)
