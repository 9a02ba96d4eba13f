"""The conflict rules of docs/kiosk-sync.md: the locker's events are what physically happened."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.access import presence
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.core.errors import DomainError
from openlocker.core.sql import Tx
from openlocker.parcels.service import expire_due
from openlocker.web.service import open_compartment
from tests.factories import Factory, Org
from tests.fleet.helpers import Store, audit_names, event, one, push, sealed_sync
from tests.orders.helpers import place, retailer, zoned_site


def _conflicts(ctx: Context, site: str) -> list[list[str]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT data FROM audit_events WHERE site_id = :s AND name = 'kiosk.conflict'"
                " ORDER BY seq"
            ),
            {"s": site},
        ).all()
    return [Tx.json(row[0])["reasons"] for row in rows]


def _pickup_of(store: Store, parcel: dict[str, Any], at: Any) -> dict[str, Any]:
    credential = store.by_pin(parcel["pickup"]["pin"])
    assert credential is not None
    return event(
        "pickup",
        at,
        credential_id=credential["id"],
        method="pin",
        compartments=[c["id"] for c in credential["compartments"]],
        offline=True,
    )


def _status(ctx: Context, parcel_id: str) -> tuple[Any, ...]:
    return tuple(one(ctx, "SELECT status, compartment_id FROM parcels WHERE id = :p", p=parcel_id))


def test_a_parcel_expired_on_the_server_but_picked_up_offline_is_picked_up(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS", dwell_hours=1)
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    store = sealed_sync(ctx, client, site, kiosk, Store())
    picked = _pickup_of(store, parcel, clock.now)  # offline, just in time
    clock.advance(hours=2)
    assert expire_due(ctx) == (1, 0)
    (result,) = push(client, site, kiosk, picked)
    assert (result["status"], result["code"]) == ("conflict", "expired_on_server")
    assert "expired" in result["detail"]
    assert _status(ctx, parcel["id"]) == ("picked_up", parcel["compartment"]["id"])
    state = one(ctx, "SELECT state FROM compartments WHERE id = :c", c=parcel["compartment"]["id"])
    assert state == ("free",)
    assert _conflicts(ctx, site) == [["expired_on_server", "credential_inactive"]]


def test_a_parcel_returned_on_the_server_but_picked_up_offline_is_picked_up(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS", dwell_hours=1)
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    store = sealed_sync(ctx, client, site, kiosk, Store())
    picked = _pickup_of(store, parcel, clock.now)
    clock.advance(hours=2)
    expire_due(ctx)
    assert client.post(f"/v1/parcels/{parcel['id']}/return", headers=carrier.headers).is_success
    # The compartment went to another parcel since: the late pickup must not free it.
    other = factory.deposited(carrier, site)
    (result,) = push(client, site, kiosk, picked)
    assert (result["status"], result["code"]) == ("conflict", "returned_on_server")
    assert _status(ctx, parcel["id"])[0] == "picked_up"
    assert _status(ctx, other["id"])[0] == "deposited"
    occupied = one(
        ctx, "SELECT state FROM compartments WHERE id = :c", c=other["compartment"]["id"]
    )
    assert occupied == ("occupied",)


def test_a_parcel_cancelled_on_the_server_but_deposited_offline_waits_for_its_courier(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    announced = factory.announce(carrier, site).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    free = next(c["id"] for c in store.last["compartments"])
    assert client.post(f"/v1/parcels/{announced['id']}/cancel", headers=carrier.headers).is_success
    (result,) = push(
        client,
        site,
        kiosk,
        event("deposit", clock.now, parcel_id=announced["id"], compartment_id=free),
    )
    assert (result["status"], result["code"]) == ("conflict", "cancelled_on_server")
    assert _status(ctx, announced["id"]) == ("expired", free)
    assert one(ctx, "SELECT state FROM compartments WHERE id = :c", c=free) == ("occupied",)
    # Its courier takes it back as any expired parcel.
    returned = client.post(f"/v1/parcels/{announced['id']}/return", headers=carrier.headers)
    assert returned.json()["status"] == "returned"


def test_a_remote_open_and_an_offline_pickup_of_the_same_parcel_open_the_door_once(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    first, second = factory.deposited(carrier, site), factory.deposited(carrier, site)
    store = sealed_sync(ctx, client, site, kiosk, Store())
    for command in store.last["commands"]:  # the deposits' doors
        push(
            client,
            site,
            kiosk,
            event("command", clock.now, command_id=command["id"], result="opened"),
        )

    # The server first: the recipient opens by link while the kiosk is offline and has
    # handed the parcel out already; the link's command must not open the emptied door.
    offline = _pickup_of(store, first, clock.now)
    link = first["pickup"]["link"].rsplit("/", 1)[1]
    shown = presence.current_code(ctx.keyring, site, clock.now).code
    open_compartment(ctx, link, shown, "test")
    pending = sealed_sync(ctx, client, site, kiosk, store).last["commands"]
    assert [c["parcel_id"] for c in pending] == [first["id"]]
    (result,) = push(client, site, kiosk, offline)
    assert (result["status"], result["code"]) == ("conflict", "already_picked_up")
    assert sealed_sync(ctx, client, site, kiosk, store).last["commands"] == []
    assert "kiosk.command_withdrawn" in audit_names(ctx, site)

    # The kiosk first: its pickup reaches the server, then the link opens nothing.
    (result,) = push(client, site, kiosk, _pickup_of(store, second, clock.now))
    assert result["status"] == "applied"
    code = presence.current_code(ctx.keyring, site, clock.now).code
    link = second["pickup"]["link"].rsplit("/", 1)[1]
    with pytest.raises(DomainError) as refused:
        open_compartment(ctx, link, code, "test")
    assert refused.value.code == "invalid_code"
    assert sealed_sync(ctx, client, site, kiosk, store).last["commands"] == []


def test_a_deposit_into_a_compartment_the_server_gave_away_moves_the_other_parcel(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SSSS")
    kiosk = factory.kiosk(site)
    courier_parcel = factory.announce(carrier, site).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    chosen = sorted(store.last["compartments"], key=lambda c: c["label"])[0]["id"]
    # Meanwhile the server reserves that compartment for another parcel.
    other = factory.announce(carrier, site, reserve=True).json()
    assert other["compartment"]["id"] == chosen
    (result,) = push(
        client,
        site,
        kiosk,
        event(
            "deposit",
            clock.now,
            parcel_id=courier_parcel["id"],
            compartment_id=chosen,
            offline=True,
        ),
    )
    assert (result["status"], result["code"]) == ("conflict", "compartment_given_away")
    assert _status(ctx, courier_parcel["id"]) == ("deposited", chosen)
    status, moved_to = _status(ctx, other["id"])
    assert status == "announced" and moved_to not in (None, chosen)
    assert one(ctx, "SELECT state FROM compartments WHERE id = :c", c=moved_to) == ("reserved",)

    # A parcel the server thought inside (a handheld deposit the kiosk never opened for):
    # the kiosk's parcel goes in, the other one is in no compartment and an alarm is up.
    handheld = factory.deposited(carrier, site)
    late = factory.announce(carrier, site).json()
    (result,) = push(
        client,
        site,
        kiosk,
        event(
            "deposit",
            clock.now,
            parcel_id=late["id"],
            compartment_id=handheld["compartment"]["id"],
        ),
    )
    assert (result["status"], result["code"]) == ("conflict", "compartment_given_away")
    assert _status(ctx, late["id"]) == ("deposited", handheld["compartment"]["id"])
    assert _status(ctx, handheld["id"]) == ("deposited", None)
    alarms = client.get("/v1/alarms", headers=factory.operator().headers).json()["items"]
    assert [(a["kind"], a["compartment_id"]) for a in alarms] == [
        ("parcel_displaced", handheld["compartment"]["id"])
    ]


def test_a_reservation_with_nowhere_to_go_is_dropped(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    courier_parcel = factory.announce(carrier, site).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    (only,) = [c["id"] for c in store.last["compartments"]]
    other = factory.announce(carrier, site, reserve=True).json()
    (result,) = push(
        client,
        site,
        kiosk,
        event("deposit", clock.now, parcel_id=courier_parcel["id"], compartment_id=only),
    )
    assert result["code"] == "compartment_given_away"
    assert _status(ctx, other["id"]) == ("announced", None)


def test_events_that_already_happened_are_recorded_never_dropped(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    announced = factory.announce(carrier, site).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    assert factory.pick_up(site, parcel).status_code == 200  # at the kiosk, online
    (result,) = push(client, site, kiosk, _pickup_of(store, parcel, clock.now))
    assert (result["status"], result["code"]) == ("conflict", "already_picked_up")
    free = next(c["id"] for c in store.last["compartments"] if c["state"] == "free")
    deposit = {"parcel_id": announced["id"], "compartment_id": free}
    assert (
        push(client, site, kiosk, event("deposit", clock.now, **deposit))[0]["status"] == "applied"
    )
    (again,) = push(client, site, kiosk, event("deposit", clock.now, **deposit))  # a new id
    assert (again["status"], again["code"]) == ("conflict", "already_deposited")
    assert _conflicts(ctx, site) == [
        ["already_picked_up", "credential_inactive"],
        ["already_deposited"],
    ]
    # The audit log keeps the whole event.
    data = one(
        ctx,
        "SELECT data FROM audit_events WHERE name = 'kiosk.conflict' AND site_id = :s"
        " ORDER BY seq DESC LIMIT 1",
        s=site,
    )[0]
    assert Tx.json(data)["event"]["parcel_id"] == announced["id"]


def test_a_courier_of_another_carrier_is_flagged_but_the_parcel_is_in(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier, rival = factory.org(), factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    courier = client.post("/v1/couriers", json={"name": "Z"}, headers=rival.headers).json()
    announced = factory.announce(carrier, site).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    (only,) = [c["id"] for c in store.last["compartments"]]
    (result,) = push(
        client,
        site,
        kiosk,
        event(
            "deposit",
            clock.now,
            parcel_id=announced["id"],
            compartment_id=only,
            courier_id=courier["id"],
        ),
    )
    assert (result["status"], result["code"]) == ("conflict", "courier_of_another_org")
    assert _status(ctx, announced["id"]) == ("deposited", only)


def test_an_order_picked_up_offline_in_part_waits_for_the_rest(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    shop: Org = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SSS"})
    kiosk = factory.kiosk(site)
    order = place(factory, shop, site, [{"size": "S"}, {"size": "S"}]).json()
    loaded = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    credential = store.by_pin(loaded["pickup"]["pin"])
    assert credential is not None and len(credential["compartments"]) == 2
    first = credential["compartments"][0]["id"]
    (result,) = push(
        client,
        site,
        kiosk,
        event(
            "pickup", clock.now, credential_id=credential["id"], method="pin", compartments=[first]
        ),
    )
    assert result["status"] == "applied", result
    now = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert now["status"] == "partially_collected"
    sealed_sync(ctx, client, site, kiosk, store)
    left = store.credentials[credential["id"]]
    assert [c["id"] for c in left["compartments"]] == [credential["compartments"][1]["id"]]
    # The same code opens the rest, at the kiosk (its event) or the server.
    picked = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": loaded["pickup"]["pin"]}, headers=kiosk.headers
    )
    assert picked.status_code == 200, picked.text
    final = client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()
    assert final["status"] == "collected"
