"""The documented Mosquitto access rules, on a Mosquitto of the test's own: a kiosk reads
and writes its own site's topics and nothing else; the fleet works through them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import orjson
import pytest
from fastapi.testclient import TestClient

from openlocker.api.app import create_app
from openlocker.core.context import Context
from openlocker.core.mqtt import Broker, Topics
from openlocker.fleet.mqtt.consumer import FleetConsumer
from openlocker.fleet.mqtt.mosquitto import SERVER_USER, acl
from tests.factories import Factory
from tests.fleet.mqtt.conftest import LiveClock, fleet_settings
from tests.fleet.mqtt.harness import Listener, Mosquitto, kiosk, wait_for
from tests.fleet.mqtt.test_kiosk_client import command
from tests.fleet.mqtt.test_remote_open import _compartments

DOCS = Path(__file__).resolve().parents[3] / "docs" / "fleet.md"
SITE_A, SITE_B = "sit_a", "sit_b"
TOPICS = Topics()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    users = {SERVER_USER: "server-pass", SITE_A: "a-pass", SITE_B: "b-pass"}
    with Mosquitto(tmp_path / "broker", users=users) as running:
        yield running


def test_the_documented_rules_are_the_ones_tested() -> None:
    assert acl() in DOCS.read_text()


def test_a_kiosk_cannot_publish_on_another_sites_topics(broker: Mosquitto) -> None:
    heard = tuple(TOPICS.every(c) for c in ("answers", "presence", "heartbeat", "state"))
    with Listener(broker.url(SERVER_USER), heard) as server, Listener(broker.url(SITE_A)) as a:
        for channel in ("answers", "presence", "heartbeat", "state"):
            a.publish(TOPICS.of(SITE_B, channel), b'{"forged": true}')
        a.publish(TOPICS.of(SITE_A, "heartbeat"), b'{"own": true}')
        wait_for(lambda: server.received)
        time.sleep(0.3)  # room for anything forged to arrive, which it must not
    assert [m.topic.value for m in server.received] == [TOPICS.of(SITE_A, "heartbeat")]
    assert broker.log().count("Denied PUBLISH from sit_a") == 4


def test_a_kiosk_cannot_read_another_sites_commands_nor_send_commands(broker: Mosquitto) -> None:
    with (
        Listener(
            broker.url(SITE_A), (TOPICS.of(SITE_B, "commands"), TOPICS.every("commands"))
        ) as a,
        Listener(broker.url(SITE_B), (TOPICS.of(SITE_B, "commands"),)) as b,
        Listener(broker.url(SERVER_USER)) as server,
    ):
        server.publish(TOPICS.of(SITE_B, "commands"), orjson.dumps(command(site_id=SITE_B)))
        a.publish(TOPICS.of(SITE_B, "commands"), orjson.dumps(command(site_id=SITE_B)))
        wait_for(lambda: b.received)
        time.sleep(0.3)
        assert len(b.received) == 1  # the server's; not the one kiosk A tried to send
    assert a.received == []


def test_no_anonymous_client_and_no_wrong_password(broker: Mosquitto) -> None:
    async def connect(url: str) -> None:
        async with aiomqtt.Client(**Broker.from_url(url).client_options()):
            pass

    for url in (broker.url(), f"mqtt://{SITE_A}:b-pass@127.0.0.1:{broker.port}"):
        with pytest.raises(aiomqtt.MqttError):
            asyncio.run(connect(url))


def test_a_kiosk_cannot_take_over_another_kiosks_session(
    broker: Mosquitto, root: str, clock: LiveClock, tmp_path: Path
) -> None:
    """The client id is the user name: kiosk A connecting as ``kiosk-sit_b`` does not push
    kiosk B off the broker nor get its queued commands."""
    with kiosk(
        SITE_B,
        {"cmp_b": (0, 0)},
        tmp_path / "b",
        root=TOPICS.root,
        clock=clock,
        broker=f"mqtt://127.0.0.1:{broker.port}",
        username=SITE_B,
        password="b-pass",
    ) as b:
        b.wait_connected()

        async def impostor() -> None:
            options = Broker.from_url(broker.url(SITE_A)).client_options()
            async with aiomqtt.Client(**options, identifier="kiosk-sit_b", clean_session=False):
                await asyncio.sleep(0.5)

        asyncio.run(impostor())
        assert b.client is not None and b.client.connected.is_set()
        with Listener(broker.url(SERVER_USER)) as server:
            sent = command(site_id=SITE_B, compartment_id="cmp_b")
            server.publish(TOPICS.of(SITE_B, "commands"), orjson.dumps(sent))
            wait_for(lambda: b.pulses("cmp_b") == 1)


def test_the_fleet_works_through_the_rules(
    broker: Mosquitto, ctx: Context, clock: LiveClock, tmp_path: Path
) -> None:
    """A remote open through a broker that enforces the rules, every party with its own
    user: the server's consumer and the site's kiosk."""
    secured = fleet_settings(ctx, TOPICS.root, broker.url(SERVER_USER))
    app = create_app(secured, run_jobs=False, run_fleet=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        consumer: FleetConsumer = app.state.fleet
        wait_for(lambda: consumer.connected)
        factory = Factory(secured, client)
        site = factory.site("S")
        door = _compartments(secured, site)["A1"]
        # The site's kiosk logs in with its site id; the broker learns its password.
        broker.add_user(site, "site-pass")
        with kiosk(
            site,
            {door: (0, 0)},
            tmp_path / "kiosk",
            root=TOPICS.root,
            clock=clock,
            broker=f"mqtt://127.0.0.1:{broker.port}",
            username=site,
            password="site-pass",
        ) as locker:
            locker.wait_connected()
            opened = client.post(
                f"/v1/compartments/{door}/open",
                json={"reason": "through the rules"},
                headers=factory.operator().headers,
            )
            assert opened.status_code == 200, opened.text
            assert opened.json()["confirmed"] is True
            assert locker.pulses(door) == 1
