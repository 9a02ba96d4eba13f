"""Click & collect: reserve a whole order, load it door by door, collect it with one code."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from openlocker.audit.models import AuditEvent
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.demo import seed_demo, seed_demo_order
from openlocker.parcels.service import expire_due
from tests.factories import Factory
from tests.orders.helpers import events, outbox, place, retailer, zoned_site

CHILLED_AND_AMBIENT = [
    {"size": "S", "temperature": "ambient"},
    {"size": "M", "temperature": "chilled"},
    {"dimensions_mm": {"length": 90, "width": 300, "height": 150}, "temperature": "chilled"},
]


def _free(ctx: Context, site: str) -> int:
    with ctx.db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM compartments WHERE site_id = :s AND state = 'free'"),
                {"s": site},
            ).scalar_one()
        )


def test_an_order_is_reserved_loaded_and_collected_with_one_pin(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SM", "chilled": "SMM"})
    placed = place(factory, shop, site, CHILLED_AND_AMBIENT, age_restricted=True)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "reserved"
    assert [i["temperature"] for i in order["items"]] == ["ambient", "chilled", "chilled"]
    labels = [i["compartment"]["label"] for i in order["items"]]
    assert labels[0].startswith("A") and all(x.startswith("C") for x in labels[1:])
    assert len(set(labels)) == 3 and _free(ctx, site) == 2

    loaded = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers)
    assert loaded.status_code == 200, loaded.text
    ready = loaded.json()
    assert ready["status"] == "ready"
    assert sorted(c["label"] for c in ready["opened"]) == sorted(labels)
    pin = ready["pickup"]["pin"]

    kiosk = factory.kiosk(site)
    picked = client.post(f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=kiosk.headers)
    assert picked.status_code == 200, picked.text
    answer = picked.json()
    assert answer["order_id"] == order["id"] and answer["age_restricted"] is True
    assert sorted(c["label"] for c in answer["compartments"]) == sorted(labels)
    assert _free(ctx, site) == 5

    final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert final["status"] == "collected" and "closed_at" in final
    assert {i["status"] for i in final["items"]} == {"picked_up"}
    again = client.post(f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=kiosk.headers)
    assert again.json()["code"] == "code_used"
    assert {"order.created", "order.ready", "order.collected"} <= set(events(ctx))
    doors = [m.payload["label"] for m in outbox(ctx, "kiosk.open_compartment")]
    assert sorted(doors) == sorted(labels * 2)  # opened to load, opened to collect


def test_loading_item_by_item_opens_door_after_door(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SM", "chilled": "SMM"})
    order = place(
        factory,
        shop,
        site,
        CHILLED_AND_AMBIENT,
        notify="openlocker",
        recipient={"email": "ana@example.com", "phone": "+48 600 111 222"},
    ).json()
    kiosk = factory.kiosk(site)
    statuses = []
    for item in order["items"]:
        step = client.post(
            f"/v1/orders/{order['id']}/load",
            json={"parcel_id": item["parcel_id"]},
            headers=kiosk.headers,
        )
        assert step.status_code == 200, step.text
        assert [c["label"] for c in step.json()["opened"]] == [item["compartment"]["label"]]
        assert "pickup" not in step.json()  # the recipient is told, not the caller
        statuses.append(step.json()["status"])
    assert statuses == ["loading", "loading", "ready"]
    (message,) = outbox(ctx, "recipient.pickup_ready")
    assert message.payload["order_id"] == order["id"] and message.payload["items"] == 3
    assert message.sealed and ctx.keyring.unseal(message.sealed)
    twice = client.post(
        f"/v1/orders/{order['id']}/load",
        json={"parcel_id": order["items"][0]["parcel_id"]},
        headers=kiosk.headers,
    )
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_transition"


def test_a_left_item_waits_again_and_the_same_code_opens_only_its_door(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SMM"})
    order = place(factory, shop, site, [{"size": "S"}, {"size": "M"}, {"size": "M"}]).json()
    qr = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()["pickup"]["qr"]
    kiosk = factory.kiosk(site)
    first = client.post(f"/v1/sites/{site}/pickups", json={"qr": qr}, headers=kiosk.headers)
    assert len(first.json()["compartments"]) == 3

    clock.advance(minutes=2)
    left = order["items"][1]
    reported = client.post(
        f"/v1/orders/{order['id']}/items/{left['parcel_id']}/left",
        json={"reason": "door_not_opened"},
        headers=kiosk.headers,
    )
    assert reported.status_code == 200, reported.text
    assert reported.json()["status"] == "partially_collected"
    assert "closed_at" not in reported.json()

    clock.advance(hours=3)
    second = client.post(f"/v1/sites/{site}/pickups", json={"qr": qr}, headers=kiosk.headers)
    assert second.status_code == 200, second.text
    assert [c["label"] for c in second.json()["compartments"]] == [left["compartment"]["label"]]
    final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert final["status"] == "collected"

    clock.advance(minutes=20)
    late = client.post(
        f"/v1/orders/{order['id']}/items/{left['parcel_id']}/left",
        json={"reason": "item_left"},
        headers=kiosk.headers,
    )
    assert late.status_code == 409 and late.json()["code"] == "report_too_late"


def test_a_left_item_whose_compartment_was_taken_is_refused(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop, carrier = retailer(factory), factory.org()
    site = zoned_site(ctx, {"ambient": "S"})
    order = place(factory, shop, site, [{"size": "S"}]).json()
    pin = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()["pickup"][
        "pin"
    ]
    kiosk = factory.kiosk(site)
    client.post(f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=kiosk.headers)
    factory.deposited(carrier, site)
    reported = client.post(
        f"/v1/orders/{order['id']}/items/{order['items'][0]['parcel_id']}/left",
        json={"reason": "item_left"},
        headers=kiosk.headers,
    )
    assert reported.status_code == 409 and reported.json()["code"] == "compartment_reused"


def test_a_full_site_names_sites_that_take_the_whole_order_and_reserves_nothing(
    factory: Factory, ctx: Context
) -> None:
    shop = retailer(factory)
    home = zoned_site(ctx, {"ambient": "SS", "chilled": "S"})
    zoned_site(ctx, {"ambient": "SSS"}, lat=52.24)  # near, but no chilled room
    whole = zoned_site(ctx, {"ambient": "SM", "chilled": "MM"}, lat=52.30)
    refused = place(
        factory,
        shop,
        home,
        [
            {"size": "S"},
            {"size": "S", "temperature": "chilled"},
            {"size": "S", "temperature": "chilled"},
        ],
    )
    assert refused.status_code == 409 and refused.json()["code"] == "site_full"
    assert [a["site_id"] for a in refused.json()["alternatives"]] == [whole]
    assert _free(ctx, home) == 3
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM parcels")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM orders")).scalar_one() == 0


def test_chilled_items_wait_less_and_a_zone_fault_moves_their_deadlines(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "S", "chilled": "S"})
    order = place(
        factory, shop, site, [{"size": "S"}, {"size": "S", "temperature": "chilled"}]
    ).json()
    loaded = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()
    deadlines = {
        i["temperature"]: datetime.fromisoformat(i["dwell_deadline"]) for i in loaded["items"]
    }
    now = clock()
    assert deadlines["chilled"] == now + timedelta(hours=24)  # the default chilled policy
    assert deadlines["ambient"] == datetime.fromisoformat(order["collect_by"])

    clock.advance(hours=1)
    fault = client.post(
        f"/v1/sites/{site}/zones/chilled/fault",
        json={"measured_celsius": 11.5},
        headers=factory.kiosk(site).headers,
    )
    assert fault.status_code == 200, fault.text
    assert fault.json()["moved"] == 1 and fault.json()["orders"] == [order["id"]]
    after = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    moved = {i["temperature"]: datetime.fromisoformat(i["dwell_deadline"]) for i in after["items"]}
    assert (
        moved["chilled"] == clock() + timedelta(hours=2)
        and moved["ambient"] == deadlines["ambient"]
    )
    assert "order.zone_fault" in events(ctx) and "parcel.deadline_moved" in events(ctx)
    (alarm,) = client.get(
        "/v1/alarms", params={"site_id": site}, headers=factory.operator().headers
    ).json()["items"]
    assert alarm["kind"] == "temperature_fault" and alarm["detail"]["measured_celsius"] == 11.5

    clock.advance(hours=3)
    assert expire_due(ctx) == (1, 0)
    pin = loaded["pickup"]["pin"]
    picked = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=factory.kiosk(site).headers
    )
    assert [c["label"] for c in picked.json()["compartments"]] == ["A1"]  # the ambient one
    final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert final["status"] == "partially_collected" and "closed_at" in final


def test_an_order_nobody_collects_expires_and_its_code_dies(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SS"})
    order = place(factory, shop, site, [{"size": "S"}, {"size": "S"}]).json()
    pin = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()["pickup"][
        "pin"
    ]
    clock.advance(hours=49)
    assert expire_due(ctx) == (2, 0)
    final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert final["status"] == "expired"
    picked = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=factory.kiosk(site).headers
    )
    assert picked.status_code == 403 and picked.json()["code"] == "code_expired"
    assert "order.expired" in events(ctx)


def test_an_order_never_loaded_lapses_and_frees_its_compartments(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SS"})
    order = place(factory, shop, site, [{"size": "S"}, {"size": "S"}]).json()
    clock.advance(hours=49)
    assert expire_due(ctx) == (0, 2)
    final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert final["status"] == "expired"
    assert {i["status"] for i in final["items"]} == {"cancelled"}
    assert _free(ctx, site) == 2


def test_cancel_frees_the_compartments_before_loading_only(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SS"})
    order = place(factory, shop, site, [{"size": "S"}]).json()
    cancelled = client.post(f"/v1/orders/{order['id']}/cancel", headers=shop.headers)
    assert cancelled.json()["status"] == "cancelled" and _free(ctx, site) == 2
    other = place(factory, shop, site, [{"size": "S"}]).json()
    client.post(f"/v1/orders/{other['id']}/load", headers=shop.headers)
    refused = client.post(f"/v1/orders/{other['id']}/cancel", headers=shop.headers)
    assert refused.status_code == 409 and refused.json()["order_status"] == "ready"


def test_order_items_are_moved_only_through_their_order(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "S"})
    item = place(factory, shop, site, [{"size": "S"}]).json()["items"][0]
    for action in ("deposit", "cancel"):
        refused = client.post(f"/v1/parcels/{item['parcel_id']}/{action}", headers=shop.headers)
        assert refused.status_code == 409 and refused.json()["code"] == "order_item"


def test_a_pin_typed_with_the_phone_suffix_opens_the_order(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SS"})
    order = place(
        factory, shop, site, [{"size": "S"}, {"size": "S"}], recipient={"phone": "+48 600 123 456"}
    ).json()
    pin = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()["pickup"][
        "pin"
    ]
    kiosk = factory.kiosk(site)
    wrong = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": pin, "phone": "9999"}, headers=kiosk.headers
    )
    assert wrong.json()["code"] == "invalid_code"
    right = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": pin, "phone": "3456"}, headers=kiosk.headers
    )
    assert right.status_code == 200 and len(right.json()["compartments"]) == 2


def test_list_orders_filters_and_pages(factory: Factory, client: TestClient, ctx: Context) -> None:
    shop, other = retailer(factory), retailer(factory)
    site = zoned_site(ctx, {"ambient": "SSSS"})
    ids = [place(factory, shop, site, [{"size": "S"}]).json()["id"] for _ in range(3)]
    place(factory, other, site, [{"size": "S"}])
    first = client.get("/v1/orders", params={"limit": 2}, headers=shop.headers).json()
    second = client.get(
        "/v1/orders", params={"limit": 2, "cursor": first["next_cursor"]}, headers=shop.headers
    ).json()
    assert [o["id"] for o in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    assert client.get(f"/v1/orders/{ids[0]}", headers=other.headers).status_code == 404


def test_the_demo_grocer_places_a_chilled_order(client: TestClient, ctx: Context) -> None:
    keys = seed_demo(ctx)
    order_id = seed_demo_order(ctx, keys)
    grocer = {"Authorization": f"Bearer {keys.retailer_key}"}
    order = client.get(f"/v1/orders/{order_id}", headers=grocer).json()
    assert order["status"] == "ready"
    assert [i["temperature"] for i in order["items"]].count("chilled") == 2
    assert len(outbox(ctx, "recipient.pickup_ready")) == 1


def test_reissued_order_credentials_replace_the_old_ones_for_the_items_still_waiting(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SMM"})
    order = place(factory, shop, site, [{"size": "S"}, {"size": "M"}]).json()
    early = client.post(f"/v1/orders/{order['id']}/credentials", headers=shop.headers)
    assert early.status_code == 409 and early.json()["code"] == "invalid_transition"
    old = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()["pickup"]

    reissued = client.post(f"/v1/orders/{order['id']}/credentials", headers=shop.headers)
    assert reissued.status_code == 200, reissued.text
    new = reissued.json()["pickup"]
    assert new["pin"] != old["pin"] and new["qr"] != old["qr"]
    kiosk = factory.kiosk(site)
    for code in ({"pin": old["pin"]}, {"qr": old["qr"]}):
        refused = client.post(f"/v1/sites/{site}/pickups", json=code, headers=kiosk.headers)
        assert refused.status_code == 403, refused.text
    old_page = client.get("/p/" + old["link"].rsplit("/", 1)[1])
    assert old["pin"] not in old_page.text
    picked = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": new["pin"]}, headers=kiosk.headers
    )
    assert picked.status_code == 200 and len(picked.json()["compartments"]) == 2
    with ctx.db.read() as session:
        (audited,) = session.scalars(
            select(AuditEvent).where(AuditEvent.name == "order.credentials_reissued")
        )
    assert audited.data == {"order_id": order["id"], "reference": order["reference"], "items": 2}
    done = client.post(f"/v1/orders/{order['id']}/credentials", headers=shop.headers)
    assert done.status_code == 409 and done.json()["code"] == "invalid_transition"
    other = factory.org("retailer")
    hidden = client.post(f"/v1/orders/{order['id']}/credentials", headers=other.headers)
    assert hidden.status_code == 404 and hidden.json()["code"] == "order_not_found"
