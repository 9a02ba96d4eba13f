"""A remote open end to end: the API, the consumer, Mosquitto, a real kiosk client and a sim
board; the operator sees the kiosk online and the answer says the locker confirmed."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.core.context import Context
from tests.factories import Factory
from tests.fleet.mqtt.conftest import LiveClock
from tests.fleet.mqtt.harness import kiosk, wait_for


def _compartments(ctx: Context, site_id: str) -> dict[str, str]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, label FROM compartments WHERE site_id = :s ORDER BY label"),
            {"s": site_id},
        ).all()
    return {label: compartment_id for compartment_id, label in rows}


def _events(ctx: Context, name: str) -> list[dict[str, object]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT site_id, compartment_id, data FROM audit_events"
                " WHERE name = :n ORDER BY seq"
            ),
            {"n": name},
        ).all()
    return [
        {"site_id": s, "compartment_id": c, "data": json.loads(d) if isinstance(d, str) else d}
        for s, c, d in rows
    ]


def test_remote_open_reaches_the_lock_once_and_the_answer_confirms_it(
    fleet_factory: Factory,
    fleet_client: TestClient,
    fleet_ctx: Context,
    root: str,
    clock: LiveClock,
    data: Path,
) -> None:
    site = fleet_factory.site("SM")
    operator = fleet_factory.operator()
    ids = _compartments(fleet_ctx, site)
    mapping = {ids["A1"]: (0, 0), ids["A2"]: (0, 1)}
    with kiosk(site, mapping, data, root=root, clock=clock) as locker:
        locker.wait_connected()
        wait_for(
            lambda: (
                fleet_client.get(f"/v1/sites/{site}/kiosk", headers=operator.headers).json()[
                    "status"
                ]
                == "online"
            )
        )
        opened = fleet_client.post(
            f"/v1/compartments/{ids['A2']}/open",
            json={"reason": "customer locked keys in"},
            headers=operator.headers,
        )
        assert opened.status_code == 200, opened.text
        body = opened.json()
        assert body["confirmed"] is True
        assert body["result"] == "opened"
        assert body["door"] == "open" and body["locked"] is False
        assert body["compartment"] == {"id": ids["A2"], "label": "A2"}
        assert locker.pulses(ids["A2"]) == 1
        assert locker.pulses(ids["A1"]) == 0
        # The kiosk's snapshot after the pulse tells the server the door is open.
        wait_for(lambda: _door(fleet_ctx, ids["A2"]) == "open")
        kiosk_view = fleet_client.get(f"/v1/sites/{site}/kiosk", headers=operator.headers).json()
        assert kiosk_view["status"] == "online"
        assert kiosk_view["version"] == "kiosk-test-1"
        assert kiosk_view["last_heartbeat_at"] is not None
        assert {c["compartment_id"]: c["door"] for c in kiosk_view["state"]["compartments"]} == {
            ids["A1"]: "closed",
            ids["A2"]: "open",
        }
    with fleet_ctx.db.engine.connect() as conn:
        state = conn.execute(
            text("SELECT state FROM outbox WHERE id = :id"), {"id": body["command_id"]}
        ).scalar()
    assert state == "sent"
    [requested] = _events(fleet_ctx, "compartment.remote_open_requested")
    assert requested["compartment_id"] == ids["A2"]
    assert requested["data"]["reason"] == "customer locked keys in"  # type: ignore[index]
    [answered] = _events(fleet_ctx, "kiosk.command_answered")
    assert answered["data"]["result"] == "opened"  # type: ignore[index]
    assert [e["site_id"] for e in _events(fleet_ctx, "kiosk.online")] == [site]
    assert _events(fleet_ctx, "compartment.door_changed")[0]["data"]["door"] == "open"  # type: ignore[index]


def _door(ctx: Context, compartment_id: str) -> str:
    with ctx.db.engine.connect() as conn:
        door: str = conn.execute(
            text("SELECT door FROM compartments WHERE id = :id"), {"id": compartment_id}
        ).scalar_one()
    return door


def test_a_deposits_door_command_goes_out_over_mqtt_and_leaves_the_http_sync(
    fleet_factory: Factory,
    fleet_client: TestClient,
    fleet_ctx: Context,
    root: str,
    clock: LiveClock,
    data: Path,
) -> None:
    """Door commands queued by the lifecycle (a courier's deposit through the API) take the
    same way. Queued before the kiosk ever connected, the command waits in the HTTP sync;
    once the kiosk is online it is published again, opens the door once, is answered, and
    the sync no longer lists it."""
    site = fleet_factory.site("S")
    carrier = fleet_factory.org()
    ids = _compartments(fleet_ctx, site)
    kiosk_key = fleet_factory.kiosk(site)

    def listed() -> list[str]:
        synced = fleet_client.get(f"/v1/sites/{site}/kiosk/sync", headers=kiosk_key.headers)
        assert synced.status_code == 200, synced.text
        return [c["id"] for c in synced.json()["commands"]]

    parcel = fleet_factory.deposited(carrier, site)
    [command_id] = listed()
    with kiosk(site, {ids["A1"]: (0, 0)}, data, root=root, clock=clock) as locker:
        wait_for(lambda: locker.pulses(ids["A1"]) == 1)
        wait_for(lambda: listed() == [])
        assert [c.message_id for c in locker.commands] == [command_id]
        assert locker.commands[0].parcel_id == parcel["id"]  # type: ignore[union-attr]
    [answered] = _events(fleet_ctx, "kiosk.command_answered")
    assert answered["data"]["command_id"] == command_id  # type: ignore[index]
