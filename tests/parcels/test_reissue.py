"""A sender whose deposit answer was lost gets fresh credentials; the old ones are void."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from openlocker.audit.models import AuditEvent, OutboxMessage
from openlocker.core.context import Context
from tests.factories import Factory


def test_a_sender_reissues_credentials_and_the_old_ones_stop_working(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    lost = factory.deposited(carrier, site)  # its answer never reached the sender
    # No Idempotency-Key was sent, so repeating the deposit cannot help.
    retry = client.post(f"/v1/parcels/{lost['id']}/deposit", headers=carrier.headers)
    assert retry.status_code == 409 and retry.json()["code"] == "invalid_transition"

    fresh = client.post(f"/v1/parcels/{lost['id']}/credentials", headers=carrier.headers)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["status"] == "deposited"
    new, old = fresh.json()["pickup"], lost["pickup"]
    url = f"/v1/sites/{site}/pickups"
    for kind in ("pin", "qr", "link"):
        secret = old[kind].rsplit("/", 1)[-1] if kind == "link" else old[kind]
        refused = client.post(url, json={kind: secret}, headers=kiosk.headers)
        assert refused.status_code == 403 and refused.json()["code"] == "invalid_code", kind
    assert client.post(url, json={"pin": new["pin"]}, headers=kiosk.headers).status_code == 200

    with ctx.db.read() as session:
        reissued = session.scalars(
            select(AuditEvent).where(AuditEvent.name == "parcel.credentials_reissued")
        ).one()
    assert reissued.parcel_id == lost["id"] and reissued.actor.startswith("key:")
    assert reissued.data == {"reason": "requested"}
    assert new["pin"] not in str(reissued.data)


def test_credentials_for_the_recipient_are_sent_again_not_returned(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(carrier, site, notify="openlocker", recipient={"email": "a@b.pl"})
    answer = client.post(f"/v1/parcels/{parcel['id']}/credentials", headers=carrier.headers)
    assert answer.status_code == 200 and "pickup" not in answer.json()
    with ctx.db.read() as session:
        sent = session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.topic == "recipient.pickup_ready")
        ).all()
    assert len(sent) == 2


def test_only_a_waiting_parcel_of_ones_own_gets_new_credentials(
    factory: Factory, client: TestClient
) -> None:
    carrier, other = factory.org(), factory.org()
    site = factory.site("SS")
    announced = factory.announce(carrier, site).json()
    waiting = factory.deposited(carrier, site)
    not_yet = client.post(f"/v1/parcels/{announced['id']}/credentials", headers=carrier.headers)
    assert not_yet.status_code == 409 and not_yet.json()["code"] == "invalid_transition"
    foreign = client.post(f"/v1/parcels/{waiting['id']}/credentials", headers=other.headers)
    assert foreign.status_code == 404 and foreign.json()["code"] == "parcel_not_found"
    assert factory.pick_up(site, waiting).status_code == 200
    collected = client.post(f"/v1/parcels/{waiting['id']}/credentials", headers=carrier.headers)
    assert collected.status_code == 409
