"""A kiosk pushes what happened: each event applied once, in order, at the kiosk's time."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.core.sql import Tx
from tests.factories import Factory
from tests.fleet.helpers import Store, audit_names, event, one, push, sealed_sync, sync
from tests.orders.helpers import outbox


def test_an_offline_pickup_is_applied_once_at_the_kiosks_time(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    store = sealed_sync(ctx, client, site, kiosk, Store())
    credential = store.by_pin(parcel["pickup"]["pin"])
    assert credential is not None
    at = clock.now
    clock.advance(hours=5)  # the kiosk was offline; it pushes later
    doors_before = len(outbox(ctx, "kiosk.open_compartment"))
    picked = event(
        "pickup",
        at,
        credential_id=credential["id"],
        method="pin",
        compartments=[c["id"] for c in credential["compartments"]],
        offline=True,
    )
    (result,) = push(client, site, kiosk, picked)
    assert (result["id"], result["status"]) == (picked["id"], "applied")

    status, picked_at = one(
        ctx, "SELECT status, picked_up_at FROM parcels WHERE id = :p", p=parcel["id"]
    )
    assert status == "picked_up" and str(picked_at).startswith(at.strftime("%Y-%m-%d %H:%M"))
    state = one(ctx, "SELECT state FROM compartments WHERE id = :c", c=parcel["compartment"]["id"])
    assert state == ("free",)
    assert len(outbox(ctx, "kiosk.open_compartment")) == doors_before  # the kiosk opened it
    assert [m.payload["event"] for m in outbox(ctx, "webhook.carrier")][-1] == "parcel.picked_up"

    trail = audit_names(ctx, site)
    (replayed,) = push(client, site, kiosk, picked)
    assert (replayed["status"], replayed["first_status"]) == ("duplicate", "applied")
    assert audit_names(ctx, site) == trail
    sealed_sync(ctx, client, site, kiosk, store)
    assert store.by_pin(parcel["pickup"]["pin"]) is None


def test_a_courier_deposits_an_expected_parcel_at_the_kiosk(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SM")
    kiosk = factory.kiosk(site)
    courier = client.post("/v1/couriers", json={"name": "Jan"}, headers=carrier.headers).json()
    announced = factory.announce(
        carrier,
        site,
        size="M",
        reserve=True,
        notify="openlocker",
        recipient={"name": "Ana", "email": "ana@example.com"},
    ).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    expected = store.expected[announced["id"]]
    at = clock.now
    clock.advance(minutes=30)
    (result,) = push(
        client,
        site,
        kiosk,
        event(
            "deposit",
            at,
            parcel_id=expected["parcel_id"],
            compartment_id=expected["compartment_id"],
            courier_id=courier["id"],
            offline=True,
        ),
    )
    assert result["status"] == "applied", result
    parcel = client.get(f"/v1/parcels/{announced['id']}", headers=carrier.headers).json()
    assert parcel["status"] == "deposited"
    assert parcel["compartment"]["id"] == expected["compartment_id"]
    assert parcel["dwell_deadline"].startswith((at + timedelta(hours=72)).strftime("%Y-%m-%dT%H"))
    assert [m.payload["parcel_id"] for m in outbox(ctx, "kiosk.open_compartment")] == []
    assert [m.parcel_id for m in outbox(ctx, "recipient.pickup_ready")] == [announced["id"]]
    sealed_sync(ctx, client, site, kiosk, store)
    assert store.expected == {}
    (credential,) = store.credentials.values()
    assert credential["parcel_id"] == announced["id"]
    assert credential["compartments"][0]["id"] == expected["compartment_id"]


def test_doors_alarms_service_refusals_and_command_answers(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SSS")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    reserved = factory.announce(carrier, site, reserve=True).json()
    store = sealed_sync(ctx, client, site, kiosk, Store())
    (command,) = store.last["commands"]
    door = parcel["compartment"]["id"]
    broken = reserved["compartment"]["id"]
    now = clock.now
    results = push(
        client,
        site,
        kiosk,
        event("command", now, command_id=command["id"], result="opened"),
        event("door", now, compartment_id=door, door="open", commanded=True),
        event("door", now, compartment_id=door, door="closed"),
        event("alarm", now, kind="door_forced", compartment_id=door, detail="no command"),
        event("alarm", now, kind="door_forced", compartment_id=door),
        event("alarm", now, kind="board_fault", detail={"board": 0}),
        event("alarm", now, kind="board_fault", state="cleared"),
        event("out_of_service", now, compartment_id=broken, reason="lock did not open"),
        event("refused", now, method="pin", reason="invalid_code", count=3),
    )
    assert [r["status"] for r in results] == ["applied"] * 9, results
    assert [r["code"] for r in results][3:7] == [None, "alarm_repeated", None, None]

    sent = one(ctx, "SELECT state, sent_at FROM outbox WHERE id = :i", i=command["id"])
    assert sent[0] == "sent" and sent[1] is not None
    assert sealed_sync(ctx, client, site, kiosk, store).last["commands"] == []
    compartments = {c["id"]: c for c in store.last["compartments"]}
    assert compartments[door]["door"] == "closed"
    assert compartments[broken]["state"] == "out_of_service"
    moved = client.get(f"/v1/parcels/{reserved['id']}", headers=carrier.headers).json()
    assert moved["compartment"]["id"] not in (broken, door)
    assert store.expected[reserved["id"]]["compartment_id"] == moved["compartment"]["id"]

    names = audit_names(ctx, site)
    for name in (
        "kiosk.command_opened",
        "compartment.door_opened",
        "compartment.door_closed",
        "alarm.raised",
        "alarm.cleared",
        "compartment.out_of_service",
        "parcel.reservation_moved",
        "pickup.failed",
    ):
        assert name in names, name
    refused = one(
        ctx, "SELECT data FROM audit_events WHERE name = 'pickup.failed' AND site_id = :s", s=site
    )[0]
    assert {k: v for k, v in Tx.json(refused).items() if k != "kiosk_event"} == {
        "method": "pin",
        "reason": "invalid_code",
        "count": 3,
        "source": "kiosk",
        "offline": False,
    }

    back = push(client, site, kiosk, event("in_service", now, compartment_id=broken))
    assert back[0]["status"] == "applied"
    assert one(ctx, "SELECT state FROM compartments WHERE id = :c", c=broken) == ("free",)
    again = push(client, site, kiosk, event("in_service", now, compartment_id=broken))
    assert again[0]["code"] == "already_in_service"


def test_malformed_and_foreign_events_are_rejected_and_the_rest_applied(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    elsewhere = factory.site("S")
    kiosk = factory.kiosk(site)
    foreign = client.get(
        f"/v1/sites/{elsewhere}/compartments", headers=factory.operator().headers
    ).json()["items"][0]["id"]
    other_parcel = factory.deposited(carrier, elsewhere)
    mine = client.get(f"/v1/sites/{site}/compartments", headers=kiosk.headers).json()["items"]
    now = clock.now
    good = event("door", now, compartment_id=mine[0]["id"], door="open")
    abroad = event("door", now, compartment_id=foreign, door="open")
    naive = event("door", now, compartment_id=mine[0]["id"], door="open")
    naive["at"] = "2026-01-05T09:00:00"
    results = push(
        client,
        site,
        kiosk,
        {"type": "door"},
        event("teleport", now),
        naive,
        event("door", now, compartment_id=mine[0]["id"], door="ajar"),
        abroad,
        event("deposit", now, parcel_id=other_parcel["id"], compartment_id=mine[1]["id"]),
        event("pickup", now, credential_id="crd_nope", method="pin", compartments=[mine[0]["id"]]),
        event("command", now, command_id="obx_nope", result="opened"),
        good,
        {"id": "x" * 65, "type": "door", "at": now.isoformat()},
    )
    assert [(r["status"], r["code"]) for r in results] == [
        ("rejected", "malformed_event"),
        ("rejected", "malformed_event"),
        ("rejected", "malformed_event"),
        ("rejected", "malformed_event"),
        ("rejected", "unknown_compartment"),
        ("rejected", "unknown_parcel"),
        ("rejected", "unknown_credential"),
        ("rejected", "unknown_command"),
        ("applied", None),
        ("rejected", "malformed_event"),
    ]
    assert results[0]["id"] is None and results[-1]["id"] is None
    assert all(r["detail"] for r in results if r["status"] == "rejected")
    # Nothing of the rejected events changed anything; each was audited.
    assert one(ctx, "SELECT status FROM parcels WHERE id = :p", p=other_parcel["id"]) == (
        "deposited",
    )
    assert one(ctx, "SELECT door FROM compartments WHERE id = :c", c=foreign) == ("closed",)
    assert audit_names(ctx, site).count("kiosk.event_rejected") == 9
    (same,) = push(client, site, kiosk, abroad)
    assert (same["status"], same["first_status"], same["code"]) == (
        "duplicate",
        "rejected",
        "unknown_compartment",
    )


def test_only_the_sites_kiosk_pushes_and_bad_batches_are_refused_whole(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    site = factory.site("S")
    other = factory.kiosk(factory.site("S"))
    url = f"/v1/sites/{site}/kiosk/events"
    refused = client.post(url, json={"events": []}, headers=other.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "not_site_kiosk")
    kiosk = factory.kiosk(site)
    for body in ({}, {"events": "x"}, {"events": [1]}, {"events": [{}] * 501}):
        assert client.post(url, json=body, headers=kiosk.headers).status_code == 422, body
    assert client.post(url, json={"events": []}, headers=kiosk.headers).json() == {"results": []}
    sync(client, site, kiosk, Store())
