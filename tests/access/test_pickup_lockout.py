"""Wrong typed PINs lock a kiosk's PIN pad for a growing time; QR and link still work."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from openlocker.access.attempts import FORGIVE_SECONDS, FREE_FAILURES, lockout_seconds
from openlocker.audit.models import AuditEvent
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from tests.factories import Factory


def _wrong_pin(pin: str) -> str:
    return f"{(int(pin) + 1) % 10 ** len(pin):0{len(pin)}d}"


def test_lockout_schedule_over_http(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    first, second = factory.deposited(carrier, site), factory.deposited(carrier, site)
    url = f"/v1/sites/{site}/pickups"
    wrong = _wrong_pin(first["pickup"]["pin"])
    if wrong == second["pickup"]["pin"]:
        wrong = _wrong_pin(wrong)

    for _ in range(FREE_FAILURES):
        assert (
            client.post(url, json={"pin": wrong}, headers=kiosk.headers).json()["code"]
            == "invalid_code"
        )
    locked = client.post(url, json={"pin": first["pickup"]["pin"]}, headers=kiosk.headers)
    assert locked.status_code == 429 and locked.json()["code"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) == lockout_seconds(FREE_FAILURES)

    # QR codes cannot be guessed, so they still open doors during a lockout.
    assert (
        client.post(url, json={"qr": second["pickup"]["qr"]}, headers=kiosk.headers).status_code
        == 200
    )

    clock.advance(seconds=lockout_seconds(FREE_FAILURES))
    assert client.post(url, json={"pin": wrong}, headers=kiosk.headers).status_code == 403
    longer = client.post(url, json={"pin": wrong}, headers=kiosk.headers)
    assert longer.status_code == 429
    assert int(longer.headers["Retry-After"]) == lockout_seconds(FREE_FAILURES + 1)
    assert lockout_seconds(FREE_FAILURES + 1) > lockout_seconds(FREE_FAILURES)

    clock.advance(seconds=lockout_seconds(FREE_FAILURES + 1))
    assert (
        client.post(url, json={"pin": first["pickup"]["pin"]}, headers=kiosk.headers).status_code
        == 200
    )
    # Another recipient's right PIN forgives nothing: the next wrong one locks again, longer.
    assert client.post(url, json={"pin": wrong}, headers=kiosk.headers).status_code == 403
    after_pickup = client.post(url, json={"pin": wrong}, headers=kiosk.headers)
    assert int(after_pickup.headers["Retry-After"]) == lockout_seconds(FREE_FAILURES + 2)
    # Quiet time does: one failure per FORGIVE_SECONDS.
    clock.advance(seconds=FORGIVE_SECONDS * (FREE_FAILURES + 2))
    for _ in range(FREE_FAILURES - 1):
        assert client.post(url, json={"pin": wrong}, headers=kiosk.headers).status_code == 403

    with ctx.db.read() as session:
        names = session.scalars(select(AuditEvent.name).where(AuditEvent.site_id == site)).all()
    assert names.count("pickup.failed") == FREE_FAILURES + 1 + 1 + FREE_FAILURES - 1
    assert names.count("pickup.refused") == 3
    with ctx.db.read() as session:
        data = session.scalars(
            select(AuditEvent.data).where(AuditEvent.name == "pickup.failed")
        ).all()
    assert all(wrong not in str(d) for d in data)


def test_lockout_is_per_kiosk(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    noisy, quiet = factory.site("S"), factory.site("S")
    parcel = factory.deposited(carrier, quiet)
    for _ in range(FREE_FAILURES):
        client.post(
            f"/v1/sites/{noisy}/pickups",
            json={"pin": "99999999"},
            headers=factory.kiosk(noisy).headers,
        )
    response = client.post(
        f"/v1/sites/{quiet}/pickups",
        json={"pin": parcel["pickup"]["pin"]},
        headers=factory.kiosk(quiet).headers,
    )
    assert response.status_code == 200
