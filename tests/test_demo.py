"""The demo network, and its people using each site's real kiosk on sim boards."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.demo import LockerSimulator, demo_compartment, demo_fleet, seed_demo
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.run import sim_kiosk
from tests.kiosk.e2e import clock, locker, wait_for  # noqa: F401 (clock: the real one)
from tests.servers import _free_port, serving


def _statuses(ctx: Context, site_id: str) -> Counter[str]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, COUNT(*) FROM parcels WHERE site_id = :s GROUP BY status"),
            {"s": site_id},
        ).all()
    return Counter({status: count for status, count in rows})


def test_couriers_and_recipients_use_the_real_kiosk(ctx: Context, tmp_path: Path) -> None:
    keys = seed_demo(ctx)
    site_id = next(iter(keys.kiosk_keys))
    bank = Bank(3, 16)  # the first demo site's 48 compartments
    with (
        serving(ctx, workers=1) as base,
        locker(tmp_path, site_id, keys.kiosk_keys[site_id], base, bank) as k,
        httpx.Client(base_url=base, timeout=10) as server,
    ):
        wait_for(lambda: k.synced(), "the kiosk's first sync")
        people = LockerSimulator(server, k.http, keys, site_id, seed=3)
        for _ in range(18):
            people.step()
            time.sleep(0.7)  # the server seals its trail and the kiosk syncs in between
        people.OPEN_DEPOSITS = len(people.for_residents) + 1
        people.deliver_to_resident()  # whether or not a step did already
        wait_for(lambda: k.synced(), "the kiosk's events pushed")

    statuses = _statuses(ctx, site_id)
    assert statuses["picked_up"] >= 2, statuses
    assert statuses["deposited"] >= len(people.waiting) > 0, statuses
    assert set(statuses) <= {"announced", "deposited", "picked_up"}
    with ctx.db.engine.connect() as conn:
        names = Counter(
            name
            for (name,) in conn.execute(
                text("SELECT name FROM audit_events WHERE site_id = :s"), {"s": site_id}
            )
        )
    # Every deposit and pickup was decided at the kiosk and reached the server as its event.
    assert names["parcel.picked_up"] == statuses["picked_up"]
    assert names["compartment.door_closed"] >= names["parcel.deposited"]
    assert names["pickup.failed"] == 0 and not any(n.startswith("alarm.") for n in names)
    assert k.open_doors() == 0
    # The courier's parcels for residents of the directory went in, and they were told.
    assert people.for_residents
    with ctx.db.engine.connect() as conn:
        for parcel_id in people.for_residents:
            told = conn.execute(
                text(
                    "SELECT p.status, COUNT(o.id) FROM parcels p LEFT JOIN outbox o"
                    " ON o.parcel_id = p.id AND o.topic = 'recipient.pickup_ready'"
                    " WHERE p.id = :p GROUP BY p.status"
                ),
                {"p": parcel_id},
            ).one()
            assert tuple(told) == ("deposited", 1)


def test_the_demo_runs_its_kiosks_on_a_private_broker_with_a_user_each(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without OPENLOCKER_MQTT_URL the demo starts its own Mosquitto (the documented access
    rules, a user per kiosk); the remote open it prints is confirmed by the site's kiosk."""
    monkeypatch.delenv("OPENLOCKER_MQTT_URL", raising=False)
    keys = seed_demo(ctx)
    site_id = next(iter(keys.kiosk_keys))
    operator = {"Authorization": f"Bearer {keys.operator_key}"}
    with demo_fleet(tmp_path / "mosquitto", list(keys.kiosk_keys)) as fleet:
        assert fleet.server_url and "private Mosquitto" in fleet.about
        assert fleet.kiosk_urls[site_id].startswith(f"mqtt://{site_id}:")
        monkeypatch.setenv("OPENLOCKER_MQTT_URL", fleet.server_url)
        monkeypatch.setenv("OPENLOCKER_FLEET_FLUSH_SECONDS", "0.02")
        with serving(ctx, workers=1) as base:
            kiosk = sim_kiosk(
                base,
                site_id,
                keys.kiosk_keys[site_id],
                ui_port=_free_port(),
                data_dir=tmp_path / "kiosk",
                mqtt_url=fleet.kiosk_urls[site_id],
            )
            with kiosk, httpx.Client(base_url=base, headers=operator, timeout=30) as server:
                wait_for(
                    lambda: server.get(f"/v1/sites/{site_id}/kiosk").json()["status"] == "online",
                    "the kiosk on the demo's broker",
                )
                door = demo_compartment(ctx, site_id)
                opened = server.post(f"/v1/compartments/{door}/open", json={"reason": "demo"})
                assert opened.status_code == 200, opened.text
                assert opened.json()["confirmed"] is True


def test_without_mosquitto_the_demo_runs_on_http_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENLOCKER_MQTT_URL", raising=False)
    monkeypatch.setattr("openlocker.demo.mosquitto_binary", lambda: None)
    with demo_fleet(tmp_path, ["sit_1"]) as fleet:
        assert fleet.server_url is None and fleet.kiosk_urls == {}
        assert "poll the server over HTTP" in fleet.about
