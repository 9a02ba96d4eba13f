"""The journeys: announce → deposit → pickup, cancel, expire → return, idempotent retries."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from openlocker.audit.models import OutboxMessage
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.parcels.service import expire_due
from tests.factories import Factory


def test_announce_deposit_pickup_with_pin(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("SML")
    kiosk = factory.kiosk(site)

    announced = factory.announce(carrier, site, size="M")
    assert announced.status_code == 201
    body = announced.json()
    assert body["status"] == "announced" and body["site_id"] == site
    assert "compartment" not in body

    deposited = client.post(f"/v1/parcels/{body['id']}/deposit", headers=carrier.headers)
    assert deposited.status_code == 200
    parcel = deposited.json()
    assert parcel["status"] == "deposited"
    assert parcel["compartment"]["size"] == "M"
    pin = parcel["pickup"]["pin"]
    assert len(pin) == 8 and pin.isdigit()
    assert parcel["pickup"]["link"].startswith("https://lockers.test/p/")

    picked = client.post(f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=kiosk.headers)
    assert picked.status_code == 200, picked.text
    assert picked.json()["compartment"]["label"] == parcel["compartment"]["label"]
    final = client.get(f"/v1/parcels/{body['id']}", headers=carrier.headers).json()
    assert final["status"] == "picked_up"
    assert "pickup" not in final

    again = client.post(f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=kiosk.headers)
    assert again.status_code == 403 and again.json()["code"] == "code_used"


def test_pickup_with_qr_frees_the_compartment(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    assert factory.announce(carrier, site).json()["code"] == "site_full"

    picked = client.post(
        f"/v1/sites/{site}/pickups", json={"qr": parcel["pickup"]["qr"]}, headers=kiosk.headers
    )
    assert picked.status_code == 200
    assert factory.announce(carrier, site).status_code == 201


def test_pickup_by_link_token(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(carrier, site)
    token = parcel["pickup"]["link"].rsplit("/", 1)[1]
    picked = client.post(
        f"/v1/sites/{site}/pickups", json={"link": token}, headers=factory.kiosk(site).headers
    )
    assert picked.status_code == 200


def test_pickup_only_at_the_parcels_site(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    home, other = factory.site("S"), factory.site("S")
    parcel = factory.deposited(carrier, home)
    kiosk = factory.kiosk(other)
    by_pin = client.post(
        f"/v1/sites/{other}/pickups", json={"pin": parcel["pickup"]["pin"]}, headers=kiosk.headers
    )
    assert by_pin.status_code == 403 and by_pin.json()["code"] == "invalid_code"
    by_qr = client.post(
        f"/v1/sites/{other}/pickups", json={"qr": parcel["pickup"]["qr"]}, headers=kiosk.headers
    )
    assert by_qr.status_code == 403 and by_qr.json()["code"] == "wrong_site"
    # A kiosk key only works at its own site.
    wrong_key = client.post(
        f"/v1/sites/{home}/pickups", json={"pin": "12345678"}, headers=kiosk.headers
    )
    assert wrong_key.status_code == 403 and wrong_key.json()["code"] == "not_site_kiosk"


def test_reserve_holds_a_compartment_until_the_deadline(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    reserved = factory.announce(carrier, site, reserve=True).json()
    assert reserved["compartment"]["label"] == "A1" and reserved["reserved_until"]
    assert factory.announce(carrier, site).json()["code"] == "site_full"

    clock.advance(hours=ctx.settings.reservation_hold_hours, seconds=1)
    assert expire_due(ctx) == (0, 1)
    lapsed = client.get(f"/v1/parcels/{reserved['id']}", headers=carrier.headers).json()
    assert lapsed["status"] == "announced" and "compartment" not in lapsed
    assert factory.announce(carrier, site).status_code == 201


def test_deposit_uses_the_reserved_compartment(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("SSS")
    reserved = factory.announce(carrier, site, reserve=True).json()
    deposited = client.post(f"/v1/parcels/{reserved['id']}/deposit", headers=carrier.headers).json()
    assert deposited["compartment"]["id"] == reserved["compartment"]["id"]


def test_cancel_before_deposit_only(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("S")
    announced = factory.announce(carrier, site, reserve=True).json()
    cancelled = client.post(f"/v1/parcels/{announced['id']}/cancel", headers=carrier.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert factory.announce(carrier, site, reserve=True).status_code == 201  # compartment freed

    deposit = client.post(f"/v1/parcels/{announced['id']}/deposit", headers=carrier.headers)
    assert deposit.status_code == 409 and deposit.json()["code"] == "invalid_transition"
    parcel = factory.deposited(factory.org(), factory.site("S"))
    other = client.post(f"/v1/parcels/{parcel['id']}/cancel", headers=carrier.headers)
    assert other.status_code == 404


def test_expiry_then_courier_retrieval(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("S", dwell_hours=48)
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    clock.advance(hours=47)
    assert expire_due(ctx) == (0, 0)
    clock.advance(hours=1)
    assert expire_due(ctx) == (1, 0)
    assert (
        client.get(f"/v1/parcels/{parcel['id']}", headers=carrier.headers).json()["status"]
        == "expired"
    )

    late = client.post(
        f"/v1/sites/{site}/pickups", json={"qr": parcel["pickup"]["qr"]}, headers=kiosk.headers
    )
    assert late.status_code == 403 and late.json()["code"] == "code_expired"
    late_pin = client.post(
        f"/v1/sites/{site}/pickups", json={"pin": parcel["pickup"]["pin"]}, headers=kiosk.headers
    )
    assert late_pin.status_code == 403 and late_pin.json()["code"] == "code_expired"
    assert factory.announce(carrier, site).json()["code"] == "site_full"  # still inside

    returned = client.post(f"/v1/parcels/{parcel['id']}/return", headers=carrier.headers)
    assert returned.status_code == 200 and returned.json()["status"] == "returned"
    assert factory.announce(carrier, site).status_code == 201
    again = client.post(f"/v1/parcels/{parcel['id']}/return", headers=carrier.headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_transition"


def test_announce_is_idempotent(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    body = {
        "tracking_number": "IDEM-1",
        "site_id": site,
        "size": "S",
        "notify": "sender",
        "reserve": True,
    }
    headers = {**carrier.headers, "Idempotency-Key": "k-1"}
    first = client.post("/v1/parcels", json=body, headers=headers)
    second = client.post("/v1/parcels", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    listed = client.get(
        "/v1/parcels", params={"tracking_number": "IDEM-1"}, headers=carrier.headers
    ).json()
    assert len(listed["items"]) == 1
    reused = client.post("/v1/parcels", json={**body, "size": "M"}, headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"


def test_replayed_deposit_issues_fresh_credentials_and_voids_the_first(
    factory: Factory, client: TestClient
) -> None:
    carrier = factory.org()
    site = factory.site("SSS")
    kiosk = factory.kiosk(site)

    def pickup(kind: str, credentials: dict[str, str]) -> Response:
        # A link holds the token only in its last part; the kiosk takes the token.
        secret = credentials[kind].rsplit("/", 1)[1] if kind == "link" else credentials[kind]
        return client.post(f"/v1/sites/{site}/pickups", json={kind: secret}, headers=kiosk.headers)

    # One parcel per kind: the first pickup spends the new set, so each kind gets its own.
    for n, kind in enumerate(("pin", "qr", "link")):
        parcel = factory.announce(carrier, site).json()
        headers = {**carrier.headers, "Idempotency-Key": f"dep-{n}"}
        first = client.post(f"/v1/parcels/{parcel['id']}/deposit", headers=headers).json()
        second = client.post(f"/v1/parcels/{parcel['id']}/deposit", headers=headers).json()
        assert second["compartment"] == first["compartment"]
        assert all(second["pickup"][k] != first["pickup"][k] for k in ("pin", "qr", "link"))
        old = pickup(kind, first["pickup"])
        assert old.status_code == 403 and old.json()["code"] == "invalid_code", (kind, old.text)
        new = pickup(kind, second["pickup"])
        assert new.status_code == 200, (kind, new.text)
        assert new.json()["compartment"]["label"] == first["compartment"]["label"]


def test_credentials_for_openlocker_notify_go_sealed_into_the_outbox(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(
        carrier, site, notify="openlocker", recipient={"email": "ana@example.com", "name": "Ana"}
    )
    assert "pickup" not in parcel
    with ctx.db.read() as session:
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "recipient.pickup_ready")
        ).one()
    assert message.payload["recipient"]["email"] == "ana@example.com"
    assert message.sealed is not None
    credentials = ctx.keyring.unseal(message.sealed)
    pin = credentials.split('"pin":"')[1][:8]
    assert pin not in str(message.payload)
    kiosk = factory.kiosk(site)
    assert (
        client.post(
            f"/v1/sites/{site}/pickups", json={"pin": pin}, headers=kiosk.headers
        ).status_code
        == 200
    )


def test_list_pages_with_cursor_and_filters(factory: Factory, client: TestClient) -> None:
    carrier, other = factory.org(), factory.org()
    site = factory.site("SSSSS")
    ids = [factory.announce(carrier, site).json()["id"] for _ in range(5)]
    factory.announce(other, site)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/parcels", params=params, headers=carrier.headers).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    filtered = client.get(
        "/v1/parcels", params={"status": "deposited"}, headers=carrier.headers
    ).json()
    assert filtered["items"] == []


def test_doors_open_and_carriers_hear_through_the_outbox(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(carrier, site)
    assert factory.pick_up(site, parcel).status_code == 200
    with ctx.db.read() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.parcel_id == parcel["id"], OutboxMessage.topic == "webhook.carrier"
            )
            .order_by(OutboxMessage.seq)
        ).all()
        doors = session.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "kiosk.open_compartment")
        ).all()
    assert [r.payload["event"] for r in rows] == [
        "parcel.announced",
        "parcel.deposited",
        "parcel.picked_up",
    ]
    assert {r.payload["org_id"] for r in rows} == {carrier.id}
    assert [d.payload["label"] for d in doors] == [parcel["compartment"]["label"]] * 2
    assert all(d.payload["site_id"] == site == d.site_id for d in doors)
    # Each names its parcel and why, and expires (OPENLOCKER_COMMAND_TTL_S, 120 s).
    assert [(d.parcel_id, d.payload["parcel_id"]) for d in doors] == [(parcel["id"],) * 2] * 2
    assert [d.payload["reason"] for d in doors] == ["deposit", "pickup"]
    assert all(
        datetime.fromisoformat(d.payload["expires_at"]) == d.created_at + timedelta(seconds=120)
        for d in doors
    )


def test_a_backlog_expires_in_one_run(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SSSSS", dwell_hours=24)
    ids = [factory.deposited(carrier, site)["id"] for _ in range(5)]
    clock.advance(hours=25)
    assert expire_due(ctx, batch=2) == (5, 0)
    statuses = {
        client.get(f"/v1/parcels/{i}", headers=carrier.headers).json()["status"] for i in ids
    }
    assert statuses == {"expired"}
