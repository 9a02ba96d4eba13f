"""A kiosk's sync: a paged snapshot, then the changes since its cursor, never one skipped."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from openlocker.access.credentials import phone_suffix
from openlocker.audit.service import seal_pending
from openlocker.core.context import Context
from openlocker.core.keys import b64url
from openlocker.fleet import sync as fleet_sync
from openlocker.orgs.service import access_principal
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import AnnounceIn, PickupIn
from tests.factories import Factory
from tests.fleet.helpers import Store, active_sets, sealed_sync, sync
from tests.orders.helpers import place, retailer, zoned_site

PHONE = "+48 601 234 567"


def test_a_new_kiosk_gets_everything_of_its_site_in_pages(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("SSSSMM")
    elsewhere = factory.site("S")
    kiosk = factory.kiosk(site)
    waiting = [factory.deposited(carrier, site) for _ in range(3)]
    with_phone = factory.deposited(carrier, site, recipient={"name": "Ana", "phone": PHONE})
    collected = factory.deposited(carrier, site)
    assert factory.pick_up(site, collected).status_code == 200
    announced = factory.announce(carrier, site, size="M", reserve=True).json()
    factory.deposited(carrier, elsewhere)
    everywhere = client.post("/v1/couriers", json={"name": "A"}, headers=carrier.headers).json()
    here = client.post(
        "/v1/couriers", json={"name": "B", "site_ids": [site]}, headers=carrier.headers
    ).json()
    client.post(
        "/v1/couriers", json={"name": "C", "site_ids": [elsewhere]}, headers=carrier.headers
    )

    store = sealed_sync(ctx, client, site, kiosk, Store(), limit=2)
    assert store.calls >= 4  # 4 credentials, 2 couriers, 1 expected, 2 at a time

    answer = store.last
    assert answer["site"]["id"] == site and answer["site"]["opening_hours"] == {"always": True}
    assert answer["digest_key"] == b64url(ctx.keyring.kiosk_digest_key(site))
    assert answer["public_keys"] == [
        {"version": 1, "public_key": ctx.keyring.site_public_key(site, 1)}
    ]
    assert [(c["label"], c["board"], c["lock"]) for c in answer["compartments"]] == [
        (f"A{n + 1}", 0, n) for n in range(6)
    ]
    assert set(store.credentials) == active_sets(ctx, site)
    for parcel in [*waiting, with_phone]:
        found = store.by_pin(parcel["pickup"]["pin"])
        assert found is not None and found["parcel_id"] == parcel["id"]
        assert found["qr"] == store.digest("qr", parcel["pickup"]["qr"])
        assert found["compartments"] == [
            {"id": parcel["compartment"]["id"], "label": parcel["compartment"]["label"]}
        ]
        assert found["used"] is False and found["order_id"] is None
    assert store.by_pin(with_phone["pickup"]["pin"])["phone"] == store.digest(  # type: ignore[index]
        "phone", phone_suffix(PHONE) or ""
    )
    assert store.by_pin(collected["pickup"]["pin"]) is None
    assert set(store.couriers) == {everywhere["id"], here["id"]}
    assert store.couriers[here["id"]]["code"] == store.digest("courier", here["code"])
    assert list(store.expected) == [announced["id"]]
    assert store.expected[announced["id"]]["compartment_id"] == announced["compartment"]["id"]

    # Nothing new: an empty answer, the cursor moves on, no more.
    again = client.get(
        f"/v1/sites/{site}/kiosk/sync", params={"cursor": store.cursor}, headers=kiosk.headers
    ).json()
    assert (again["credentials"], again["couriers"], again["expected"], again["more"]) == (
        [],
        [],
        [],
        False,
    )


def test_changes_reach_the_kiosk_and_replays_are_harmless(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("SSSSS")
    kiosk = factory.kiosk(site)
    picked, reissued = factory.deposited(carrier, site), factory.deposited(carrier, site)
    to_deposit = factory.announce(carrier, site).json()
    courier = client.post("/v1/couriers", json={"name": "A"}, headers=carrier.headers).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    start = store.cursor
    assert set(store.expected) == {to_deposit["id"]} and set(store.couriers) == {courier["id"]}

    assert factory.pick_up(site, picked, by="pin").status_code == 200
    new = client.post(f"/v1/parcels/{reissued['id']}/credentials", headers=carrier.headers).json()[
        "pickup"
    ]
    deposited = client.post(
        f"/v1/parcels/{to_deposit['id']}/deposit", headers=carrier.headers
    ).json()
    later = factory.announce(carrier, site).json()
    client.delete(f"/v1/couriers/{courier['id']}", headers=carrier.headers)
    sealed_sync(ctx, client, site, kiosk, store)

    assert set(store.credentials) == active_sets(ctx, site)
    assert store.by_pin(picked["pickup"]["pin"]) is None
    assert store.by_pin(reissued["pickup"]["pin"]) is None
    assert store.by_pin(new["pin"]) is not None
    assert store.by_pin(deposited["pickup"]["pin"]) is not None
    assert set(store.expected) == {later["id"]}
    assert store.couriers == {}

    # The used set came with ``used``; a replayed cursor sends the same changes again.
    replay = client.get(
        f"/v1/sites/{site}/kiosk/sync", params={"cursor": start}, headers=kiosk.headers
    ).json()
    used = [c for c in replay["credentials"] if c["parcel_id"] == picked["id"]]
    assert [(c["active"], c["used"]) for c in used] == [(False, True)]
    copy = Store(cursor=start)
    sync(client, site, kiosk, copy)
    assert copy.cursor == store.cursor


def test_an_orders_one_set_opens_every_waiting_item(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SM", "chilled": "SM"})
    kiosk = factory.kiosk(site)
    items = [{"size": "S"}, {"size": "S", "temperature": "chilled"}]
    order = place(factory, shop, site, items).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    assert {e["order_id"] for e in store.expected.values()} == {order["id"]}
    loaded = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()
    sealed_sync(ctx, client, site, kiosk, store)
    found = store.by_pin(loaded["pickup"]["pin"])
    assert found is not None and found["order_id"] == order["id"]
    assert sorted(c["label"] for c in found["compartments"]) == sorted(
        i["compartment"]["label"] for i in loaded["items"]
    )
    assert store.expected == {}


def test_door_commands_come_with_the_sync_and_a_kiosk_fallback_queues_none(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    answer = client.get(f"/v1/sites/{site}/kiosk/sync", headers=kiosk.headers).json()
    (command,) = answer["commands"]
    assert command["type"] == "open" and command["reason"] == "deposit"
    assert (command["compartment_id"], command["parcel_id"]) == (
        parcel["compartment"]["id"],
        parcel["id"],
    )
    assert command["id"].startswith("obx_") and command["label"] == parcel["compartment"]["label"]
    created = datetime.fromisoformat(command["created_at"])
    assert datetime.fromisoformat(command["expires_at"]) == created + timedelta(seconds=120)

    picked = client.post(
        f"/v1/sites/{site}/pickups",
        json={"pin": parcel["pickup"]["pin"], "door": "kiosk"},
        headers=kiosk.headers,
    )
    assert picked.status_code == 200, picked.text
    answer = client.get(f"/v1/sites/{site}/kiosk/sync", headers=kiosk.headers).json()
    assert [c["id"] for c in answer["commands"]] == [command["id"]]
    other = factory.site("S")
    assert client.get(f"/v1/sites/{other}/kiosk/sync", headers=kiosk.headers).status_code == 403


def test_the_command_ttl_is_a_setting(factory: Factory, client: TestClient, ctx: Context) -> None:
    ctx.settings.command_ttl_s = 30
    carrier = factory.org()
    site = factory.site("S")
    factory.deposited(carrier, site)
    kiosk = factory.kiosk(site)
    (command,) = client.get(f"/v1/sites/{site}/kiosk/sync", headers=kiosk.headers).json()[
        "commands"
    ]
    created = datetime.fromisoformat(command["created_at"])
    assert datetime.fromisoformat(command["expires_at"]) == created + timedelta(seconds=30)


def test_only_the_sites_kiosk_syncs_and_bad_cursors_are_refused(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    url = f"/v1/sites/{site}/kiosk/sync"
    for headers in (factory.org().headers, factory.operator().headers):
        refused = client.get(url, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "not_site_kiosk")
    for cursor in ("", "x", "i.-1", "s.1.z.", "i." + "9" * 19, "s.1.c.a b"):
        bad = client.get(url, params={"cursor": cursor}, headers=kiosk.headers)
        assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor"), cursor
    ahead = client.get(url, params={"cursor": "i.999999"}, headers=kiosk.headers)
    assert (ahead.status_code, ahead.json()["code"]) == (409, "cursor_ahead")
    assert client.get(url, params={"limit": 0}, headers=kiosk.headers).status_code == 422


def test_changes_committing_while_kiosks_sync_are_never_skipped(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    """Writers, the sealer and a kiosk's sync race; at the end the kiosk holds exactly the
    site's active credentials and expected parcels."""
    carrier = factory.org()
    site = factory.site("S" * 40)
    kiosk_key = factory.kiosk(site)
    carrier_principal = access_principal(ctx, f"Bearer {carrier.key}")
    kiosk = access_principal(ctx, f"Bearer {kiosk_key.key}")
    stop = threading.Event()
    errors: list[BaseException] = []
    store = Store()

    def writer(name: str) -> None:
        held: list[dict[str, Any]] = []
        try:
            for n in range(25):
                request = AnnounceIn(
                    tracking_number=f"{name}-{n}", site_id=site, size="S", notify="sender"
                )
                announced = parcels.announce(ctx, carrier_principal, request).parcel
                if n % 3 == 0:
                    continue  # stays expected
                answer = parcels.deposit(ctx, carrier_principal, announced.id).parcel
                assert answer.pickup is not None
                held.append({"pin": answer.pickup.pin})
                if n % 2 == 0:
                    pickup = PickupIn(pin=held.pop(0)["pin"])
                    parcels.pickup(ctx, kiosk, site, pickup)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    def sealer() -> None:
        while not stop.is_set():
            seal_pending(ctx)

    def reader() -> None:
        try:
            while not stop.is_set():
                answer = fleet_sync.sync(ctx, kiosk, site, store.cursor, 7)
                store.apply(answer.model_dump(mode="json"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    writers = [threading.Thread(target=writer, args=(f"W{i}",)) for i in range(2)]
    others = [threading.Thread(target=sealer), threading.Thread(target=reader)]
    for thread in writers + others:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in others:
        thread.join()
    assert errors == []
    seal_pending(ctx)
    while True:
        answer = fleet_sync.sync(ctx, kiosk, site, store.cursor, 7)
        store.apply(answer.model_dump(mode="json"))
        if not answer.more:
            break
    assert store.calls > 3
    assert set(store.credentials) == active_sets(ctx, site)
    expected = {
        p.id
        for p in parcels.list_parcels(
            ctx, carrier_principal, status="announced", site_id=site, limit=200
        ).items
    }
    assert set(store.expected) == expected and len(expected) == 18
