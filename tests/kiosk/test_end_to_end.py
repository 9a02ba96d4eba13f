"""The kiosk against a real ``openlocker serve`` (SQLite, and PostgreSQL when configured),
on sim boards the test acts on as the people at the doors."""

from __future__ import annotations

import collections
from pathlib import Path

from fastapi.testclient import TestClient

from openlocker.core.context import Context
from openlocker.kiosk.boards.bank import Bank
from tests.factories import Factory
from tests.kiosk.e2e import (
    address_of,
    audit_of,
    clock,  # noqa: F401 (the real clock, for the server and the kiosk)
    kiosk_address,
    kiosk_events,
    locker,
    pending_commands,
    receipts,
    status_of,
    wait_for,
)
from tests.servers import _free_port, serving


def test_an_online_pickup_is_decided_at_the_kiosk_and_reaches_the_server(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SSSSMMMM")
    kiosk_key = factory.kiosk(site).key
    parcel = factory.deposited(carrier, site)
    address = address_of(parcel, ctx)
    bank = Bank(1, 16)
    with serving(ctx, workers=1) as base, locker(tmp_path, site, kiosk_key, base, bank) as k:
        # The deposit's door command opens the door for the courier; then it is shut.
        wait_for(lambda: k.synced(credentials=1) and bank.snapshot(address).pulses, "sync")
        k.close_all()
        answer = k.http.post("/api/pickup", json={"pin": parcel["pickup"]["pin"]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["parcel_id"] == parcel["id"] and body["offline"] is False
        assert body["compartment"]["label"] == parcel["compartment"]["label"]
        assert bank.snapshot(address).door_open
        bank.close_door(address)
        wait_for(lambda: k.synced(credentials=0), "the pickup to reach the server")
        assert status_of(client, carrier, parcel["id"]) == "picked_up"
        assert [a["parcel_id"] for a in audit_of(ctx, site, "parcel.picked_up")] == [parcel["id"]]
        again = k.http.post("/api/pickup", json={"qr": parcel["pickup"]["qr"]})
        assert again.status_code == 403 and again.json()["code"] == "code_used"


def test_a_code_the_kiosk_has_not_synced_yet_is_decided_by_the_server(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SSSS")
    kiosk_key = factory.kiosk(site).key
    bank = Bank(1, 16)
    with (
        serving(ctx, workers=1) as base,
        locker(tmp_path, site, kiosk_key, base, bank, sync_interval_s=60) as k,
    ):
        wait_for(lambda: k.synced(credentials=0), "the first sync")
        parcel = factory.deposited(carrier, site)
        address = address_of(parcel, ctx)
        answer = k.http.post("/api/pickup", json={"pin": parcel["pickup"]["pin"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["compartment"]["id"] == parcel["compartment"]["id"]
        assert bank.snapshot(address).door_open
        assert status_of(client, carrier, parcel["id"]) == "picked_up"
        wrong = k.http.post("/api/pickup", json={"pin": "00000000"})
        assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_code"


def test_a_day_offline_200_pickups_and_deposits_sync_exactly_once_when_the_server_is_back(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    count = 100
    site = factory.site("M" * (2 * count))
    kiosk_key = factory.kiosk(site).key
    waiting = [factory.deposited(carrier, site, size="M") for _ in range(count)]
    announced = [factory.announce(carrier, site, size="M").json() for _ in range(count)]
    assert all("tracking_number" in parcel for parcel in announced), announced[0]
    courier = client.post(
        "/v1/couriers", json={"name": "Offline Olek"}, headers=carrier.headers
    ).json()
    bank = Bank(13, 16)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # The kiosk outlives its server: it starts before it, and goes on when it stops.
    with locker(tmp_path, site, kiosk_key, base, bank) as k:
        with serving(ctx, workers=1, port=port):
            wait_for(lambda: k.synced(credentials=count), "the first sync")
            # The deposits above sent door commands, run once: those doors are shut now.
            wait_for(lambda: k.open_doors() == count, "the deposits' door commands")
            k.close_all()
            wait_for(
                lambda: (
                    k.health()["open_doors"] == 0
                    and k.synced()
                    and pending_commands(ctx, site) == 0
                ),
                "the doors' events",
            )
        wait_for(lambda: not k.health()["online"], "the kiosk to notice the server gone")
        for n, parcel in enumerate(waiting):
            code = {"pin": parcel["pickup"]["pin"]} if n % 2 else {"qr": parcel["pickup"]["qr"]}
            answer = k.http.post("/api/pickup", json=code)
            assert answer.status_code == 200, answer.text
            assert answer.json()["offline"] is True
            bank.close_door(address_of(parcel, ctx))
        assert k.http.post("/api/courier/login", json={"code": courier["code"]}).status_code == 200
        placed = {}
        for parcel in announced:
            answer = k.http.post(
                "/api/courier/deposit", json={"tracking_number": parcel["tracking_number"]}
            )
            assert answer.status_code == 200, answer.text
            placed[parcel["id"]] = answer.json()["compartment"]["id"]
            address = kiosk_address(k, placed[parcel["id"]])
            bank.load(address)
            bank.close_door(address)
        wait_for(lambda: len(kiosk_events(k, "deposit")) == count, "deposits confirmed")
        queued = k.health()["queued"]
        # A pickup and a deposit each, and each door's opening and closing.
        kinds = collections.Counter(e.type for e in kiosk_events(k, None))
        assert queued == 6 * count, kinds
        assert len(set(placed.values())) == count
        assert status_of(client, carrier, waiting[0]["id"]) == "deposited"
        with serving(ctx, workers=1, port=port):
            wait_for(k.synced, "the queue to drain", timeout_s=120)
    for parcel in waiting:
        assert status_of(client, carrier, parcel["id"]) == "picked_up"
    for parcel in announced:
        assert status_of(client, carrier, parcel["id"]) == "deposited"
    picked = audit_of(ctx, site, "parcel.picked_up")
    assert sorted(a["parcel_id"] for a in picked) == sorted(p["id"] for p in waiting)
    deposited = {
        a["parcel_id"]: a["compartment_id"] for a in audit_of(ctx, site, "parcel.deposited")
    }
    assert len(audit_of(ctx, site, "parcel.deposited")) == 2 * count
    assert {p: deposited[p] for p in placed} == placed
    assert receipts(ctx, site) >= queued
    assert audit_of(ctx, site, "kiosk.conflict") == []
    assert audit_of(ctx, site, "kiosk.event_rejected") == []
