"""The server's consumer on the shared Mosquitto: what kiosks say reaches the database, what
breaks the contract or comes from the wrong site is refused with a logged reason, and a
kiosk that goes silent is marked offline."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.api.app import create_app
from openlocker.core.context import Context
from openlocker.core.ids import new_id
from openlocker.fleet.mqtt.consumer import FleetConsumer
from tests.factories import Factory, Org
from tests.fleet.mqtt.conftest import LiveClock
from tests.fleet.mqtt.harness import Listener, kiosk, wait_for
from tests.fleet.mqtt.test_remote_open import _compartments, _events


def _heartbeat(site_id: str, **change: Any) -> bytes:
    message = {
        "message_id": new_id("msg"),
        "site_id": site_id,
        "sent_at": datetime.now(UTC).isoformat(),
        "version": "9.9",
        "uptime_seconds": 1.0,
    }
    message.update(change)
    return orjson.dumps(message)


def _refusals(caplog: pytest.LogCaptureFixture, message: str) -> list[str]:
    return [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == message]


def _kiosk_rows(ctx: Context) -> int:
    with ctx.db.engine.connect() as conn:
        count: int = conn.execute(text("SELECT COUNT(*) FROM fleet_kiosks")).scalar_one()
    return count


def test_messages_that_break_the_contract_change_nothing_and_are_logged(
    fleet_factory: Factory,
    fleet_client: TestClient,
    fleet_ctx: Context,
    root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = fleet_factory.site("S")
    operator = fleet_factory.operator()
    topic = f"{root}/sites/{site}/heartbeat"
    with Listener() as rogue:
        rogue.publish(topic, b"\x00\x01 not json")
        rogue.publish(topic, _heartbeat(site, uptime_seconds="long"))
        rogue.publish(topic, _heartbeat("sit_other"))  # names another site than its topic
        rogue.publish(f"{root}/sites/sit_nowhere/heartbeat", _heartbeat("sit_nowhere"))
        rogue.publish(f"{root}/sites/{site}/elsewhere", _heartbeat(site))  # not subscribed
        wait_for(lambda: "unknown_site" in _refusals(caplog, "fleet message refused"))
    assert _refusals(caplog, "fleet message refused")[:4] == [
        "not_json",
        "invalid",
        "site_mismatch",
        "unknown_site",
    ]
    assert _kiosk_rows(fleet_ctx) == 0
    view = fleet_client.get(f"/v1/sites/{site}/kiosk", headers=operator.headers).json()
    assert view["status"] == "unknown"


def _queue_open(client: TestClient, operator: Org, compartment_id: str) -> dict[str, Any]:
    queued = client.post(
        f"/v1/compartments/{compartment_id}/open",
        json={"reason": "no kiosk yet"},
        headers=operator.headers,
    )
    assert queued.status_code == 202, queued.text
    body: dict[str, Any] = queued.json()
    assert (body["confirmed"], body["result"], body["published"]) == (False, "pending", True)
    return body


def test_answers_for_another_sites_command_or_none_are_refused_and_repeats_ignored(
    fleet_factory: Factory,
    fleet_client: TestClient,
    fleet_ctx: Context,
    root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "openlocker.fleet")
    site, other = fleet_factory.site("S"), fleet_factory.site("S")
    operator = fleet_factory.operator()
    fleet_ctx.settings.fleet_open_wait_seconds = 0.3
    queued = _queue_open(fleet_client, operator, _compartments(fleet_ctx, site)["A1"])

    def answer(on_site: str, command_id: str) -> bytes:
        return orjson.dumps(
            {
                "message_id": new_id("msg"),
                "site_id": on_site,
                "sent_at": datetime.now(UTC).isoformat(),
                "command_id": command_id,
                "transaction_id": queued["transaction_id"],
                "result": "opened",
            }
        )

    with Listener() as rogue:
        # The other site's kiosk claims the command was carried out.
        rogue.publish(f"{root}/sites/{other}/answers", answer(other, queued["command_id"]))
        rogue.publish(f"{root}/sites/{site}/answers", answer(site, "obx_nosuchcommand"))
        wait_for(lambda: len(_refusals(caplog, "fleet answer refused")) == 2)
        assert _refusals(caplog, "fleet answer refused") == ["wrong_site", "unknown_command"]
        assert _outbox_state(fleet_ctx, queued["command_id"]) == "pending"
        for _ in range(2):
            rogue.publish(f"{root}/sites/{site}/answers", answer(site, queued["command_id"]))
        wait_for(lambda: _outbox_state(fleet_ctx, queued["command_id"]) == "sent")
        wait_for(lambda: any(r.getMessage() == "fleet answer repeated" for r in caplog.records))
    assert len(_events(fleet_ctx, "kiosk.command_answered")) == 1


def _outbox_state(ctx: Context, command_id: str) -> str:
    with ctx.db.engine.connect() as conn:
        state: str = conn.execute(
            text("SELECT state FROM outbox WHERE id = :id"), {"id": command_id}
        ).scalar_one()
    return state


def test_a_command_queued_while_the_kiosk_was_away_opens_once_when_it_is_back(
    fleet_factory: Factory,
    fleet_client: TestClient,
    fleet_ctx: Context,
    root: str,
    clock: LiveClock,
    data: Path,
) -> None:
    """The kiosk's persistent session on the broker holds the command published while it
    was away; back, it gets it (and the server's retries while it answers), pulses once."""
    site = fleet_factory.site("S")
    operator = fleet_factory.operator()
    door = _compartments(fleet_ctx, site)["A1"]
    with kiosk(site, {door: (0, 0)}, data, root=root, clock=clock) as locker:
        locker.wait_connected()
    fleet_ctx.settings.fleet_open_wait_seconds = 0.3
    queued = _queue_open(fleet_client, operator, door)
    wait_for(lambda: _published(fleet_ctx, queued["command_id"]) >= 1)
    with kiosk(site, {door: (0, 0)}, data, root=root, clock=clock) as locker:
        wait_for(lambda: _outbox_state(fleet_ctx, queued["command_id"]) == "sent")
        assert locker.pulses(door) == 1
    [answered] = _events(fleet_ctx, "kiosk.command_answered")
    assert answered["data"]["result"] == "opened"  # type: ignore[index]


def _published(ctx: Context, command_id: str) -> int:
    with ctx.db.engine.connect() as conn:
        count = conn.execute(
            text("SELECT publish_count FROM fleet_commands WHERE command_id = :id"),
            {"id": command_id},
        ).scalar()
    return int(count or 0)


@pytest.fixture
def quick_silence(fleet_ctx: Context) -> Iterator[TestClient]:
    """The app with a 2 s silence (its consumer is the leader: no ``fleet_client`` here)."""
    ctx = dataclasses.replace(
        fleet_ctx,
        settings=fleet_ctx.settings.model_copy(update={"fleet_silence_seconds": 2.0}),
    )
    app = create_app(ctx, run_jobs=False, run_fleet=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        consumer: FleetConsumer = app.state.fleet
        wait_for(lambda: consumer.connected)
        yield client


def test_a_silent_kiosk_is_marked_offline_once_and_back_when_heard(
    quick_silence: TestClient,
    fleet_ctx: Context,
    root: str,
    clock: LiveClock,
    data: Path,
) -> None:
    factory = Factory(fleet_ctx, quick_silence)
    site = factory.site("S")
    operator = factory.operator()

    def view() -> dict[str, Any]:
        got: dict[str, Any] = quick_silence.get(
            f"/v1/sites/{site}/kiosk", headers=operator.headers
        ).json()
        return got

    with kiosk(site, {}, data, root=root, clock=clock) as locker:
        locker.wait_connected()
        wait_for(lambda: view()["status"] == "online")
    wait_for(lambda: view()["status_reason"] == "shutdown")
    clock.advance(seconds=3)  # past the silence
    wait_for(lambda: view()["silent"], timeout=5)
    silent = view()
    assert (silent["status"], silent["status_reason"]) == ("offline", "silent")
    [event] = _events(fleet_ctx, "kiosk.silent")
    assert event["site_id"] == site

    def alarms() -> list[tuple[str, str]]:
        listed = quick_silence.get(
            "/v1/alarms", params={"site_id": site}, headers=operator.headers
        ).json()["items"]
        return [(a["kind"], a["state"]) for a in listed]

    assert alarms() == [("kiosk_silent", "open")]
    with kiosk(site, {}, data, root=root, clock=clock) as locker:
        wait_for(lambda: view()["status"] == "online")
    assert view()["silent"] is False
    assert alarms() == [("kiosk_silent", "closed")]
    assert len(_events(fleet_ctx, "kiosk.silent")) == 1
    assert [e["site_id"] for e in _events(fleet_ctx, "kiosk.heard_again")] == [site]
    wait_for(lambda: len(_events(fleet_ctx, "kiosk.offline")) == 2)
    reasons = [e["data"]["reason"] for e in _events(fleet_ctx, "kiosk.offline")]  # type: ignore[index]
    assert reasons == ["shutdown", "shutdown"]
