"""Fulfilment at the kiosk against a real ``openlocker serve`` (SQLite, and PostgreSQL when
configured), on sim boards: store staff load an order, a customer drops a return, a courier
collects it with the manifest."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from openlocker.core.context import Context
from openlocker.kiosk.boards.bank import Bank
from tests.factories import Factory
from tests.kiosk.e2e import (
    audit_of,
    clock,  # noqa: F401 (the real clock, for the server and the kiosk)
    kiosk_address,
    locker,
    status_of,
    wait_for,
)
from tests.orders.helpers import events, outbox, place, retailer
from tests.servers import serving


def test_staff_load_an_order_door_after_door_and_the_customer_gets_one_code(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    shop = retailer(factory)
    site = factory.site("SSMMMMLL")
    kiosk_key = factory.kiosk(site).key
    placed = place(
        factory,
        shop,
        site,
        [{"size": "M"}, {"size": "S"}, {"size": "M"}],
        notify="openlocker",
        recipient={"name": "Ana", "email": "ana@example.com"},
    )
    assert placed.status_code == 201, placed.text
    order = placed.json()
    staff = client.post("/v1/couriers", json={"name": "Store Sam"}, headers=shop.headers).json()
    other = factory.org()
    stranger = client.post("/v1/couriers", json={"name": "Dana"}, headers=other.headers).json()
    bank = Bank(1, 16)
    with serving(ctx, workers=1) as base, locker(tmp_path, site, kiosk_key, base, bank) as k:
        wait_for(k.synced, "the first sync")
        assert k.http.get("/api/orders").json()["code"] == "courier_required"
        # Another carrier's courier sees no order of the shop, and cannot load it.
        assert k.http.post("/api/courier/login", json={"code": stranger["code"]}).is_success
        assert k.http.get("/api/orders").json() == {"orders": []}
        refused = k.http.post("/api/orders/load", json={"reference": order["reference"]})
        assert refused.status_code == 404 and refused.json()["code"] == "order_not_expected"
        assert k.http.post("/api/courier/login", json={"code": staff["code"]}).is_success
        listed = k.http.get("/api/orders").json()["orders"]
        assert listed == [
            {"order_id": order["id"], "reference": order["reference"], "items": 3, "loaded": 0}
        ]
        started = k.http.post("/api/orders/load", json={"reference": order["reference"]})
        assert started.status_code == 200, started.text
        reserved = [item["compartment"]["id"] for item in order["items"]]
        for n, compartment_id in enumerate(reserved):
            view = k.http.get("/api/orders/loading").json()["loading"]
            states = [item["state"] for item in view["items"]]
            assert states == ["loaded"] * n + ["open"] + ["waiting"] * (2 - n), view
            assert view["items"][n]["compartment"]["id"] == compartment_id
            address = kiosk_address(k, compartment_id)
            assert bank.snapshot(address).door_open and k.open_doors() == 1
            if n == 0:
                # Shut empty: nothing is loaded, and asking again opens the same door.
                bank.close_door(address)
                wait_for(
                    lambda: (
                        k.http.get("/api/orders/loading").json()["loading"]["items"][0]["state"]
                        == "waiting"
                    ),
                    "the empty close",
                )
                again = k.http.post("/api/orders/load", json={"reference": order["reference"]})
                assert again.status_code == 200, again.text
                assert bank.snapshot(address).door_open
            bank.load(address)
            bank.close_door(address)
            if n < 2:
                wait_for(lambda: k.open_doors() == 1, "the next door")
        wait_for(lambda: k.http.get("/api/orders/loading").json()["loading"]["sent"], "sent")
        done = k.http.get("/api/orders/loading").json()["loading"]
        assert done["done"] and [i["state"] for i in done["items"]] == ["loaded"] * 3
        final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
        assert final["status"] == "ready"
        assert "order.ready" in events(ctx)
        (message,) = outbox(ctx, "recipient.pickup_ready")
        assert message.payload["order_id"] == order["id"]
        assert len(audit_of(ctx, site, "parcel.deposited")) == 3
        loaded = k.http.post("/api/orders/load", json={"reference": order["reference"]})
        assert loaded.status_code in (404, 409), loaded.text


def test_a_return_is_dropped_at_the_kiosk_and_collected_by_its_courier_with_a_discrepancy(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SSMMMMLL")
    kiosk_key = factory.kiosk(site).key
    operator = factory.operator()
    courier = client.post("/v1/couriers", json={"name": "Rita"}, headers=carrier.headers).json()
    codes = []
    for n in (1, 2):
        issued = client.post(
            "/v1/returns",
            json={"reference": f"RMA-{n}", "size": "M", "customer": {"email": "ana@example.com"}},
            headers=carrier.headers,
        )
        assert issued.status_code == 201, issued.text
        codes.append(issued.json()["code"])
    bank = Bank(1, 16)
    with serving(ctx, workers=1) as base, locker(tmp_path, site, kiosk_key, base, bank) as k:
        wait_for(k.synced, "the first sync")
        dropped = []
        for code in codes:
            answer = k.http.post("/api/returns", json={"code": code.lower()})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["compartment"]["size"] == "M"
            address = kiosk_address(k, body["compartment"]["id"])
            assert bank.snapshot(address).door_open
            dropped.append((body, address))
        assert status_of(client, carrier, dropped[0][0]["parcel_id"]) == "awaiting_collection"
        assert len(outbox(ctx, "recipient.return_receipt")) == 2
        again = k.http.post("/api/returns", json={"code": codes[0]})
        assert again.status_code == 409 and again.json()["code"] == "return_code_used"
        wrong = k.http.post("/api/returns", json={"code": "0000-0000-0000-0000"})
        assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_code"
        # The first customer puts the parcel in; the second walks off with theirs.
        bank.load(dropped[0][1])
        k.close_all()
        wait_for(lambda: k.health()["open_doors"] == 0, "the doors shut")

        assert k.http.post("/api/collection").json()["code"] == "courier_required"
        assert k.http.post("/api/courier/login", json={"code": courier["code"]}).is_success
        visit = k.http.post("/api/collection")
        assert visit.status_code == 200, visit.text
        items = visit.json()["collection"]["items"]
        assert visit.json()["collection"]["count"] == 2
        assert [i["state"] for i in items] == ["open", "waiting"]
        first = next(i for i in items if i["state"] == "open")
        by_parcel = {body["parcel_id"]: address for body, address in dropped}
        assert bank.snapshot(by_parcel[first["parcel_id"]]).door_open
        ahead = next(i for i in items if i["state"] == "waiting")
        early = k.http.post(
            "/api/collection/scan", json={"tracking_number": ahead["tracking_number"]}
        )
        assert early.status_code == 409 and early.json()["code"] == "door_closed"
        stray = k.http.post("/api/collection/scan", json={"tracking_number": "NOT-HERE"})
        assert stray.status_code == 404 and stray.json()["code"] == "not_in_manifest"
        if first["parcel_id"] == dropped[0][0]["parcel_id"]:
            step = k.http.post(
                "/api/collection/scan", json={"tracking_number": first["tracking_number"]}
            )
            second = k.http.post(f"/api/collection/{ahead['parcel_id']}/missing")
            collected, missing = first, ahead
        else:
            step = k.http.post(f"/api/collection/{first['parcel_id']}/missing")
            second = k.http.post(
                "/api/collection/scan", json={"tracking_number": ahead["tracking_number"]}
            )
            collected, missing = ahead, first
        assert step.status_code == 200, step.text
        assert second.status_code == 200, second.text
        summary = k.http.post("/api/collection/finish").json()["collection"]
        assert (summary["collected"], summary["missing"], summary["done"]) == (1, 1, True)
        assert status_of(client, carrier, collected["parcel_id"]) == "collected"
        assert status_of(client, carrier, missing["parcel_id"]) == "awaiting_collection"
        assert {"return.collected", "collection.discrepancy"} <= set(events(ctx))
        alarms = client.get(
            "/v1/alarms",
            params={"site_id": site, "kind": "collection_discrepancy"},
            headers=operator.headers,
        ).json()["items"]
        assert len(alarms) == 1 and alarms[0]["state"] == "open"
        (audited,) = audit_of(ctx, site, "collection.discrepancy")
        assert audited["parcel_id"] == missing["parcel_id"]
        # No door command went out for doors the kiosk opened itself.
        assert outbox(ctx, "kiosk.open_compartment") == []
