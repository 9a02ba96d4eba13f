"""Wrong typed PINs lock a site's PINs for a growing time, per bucket; QR and link still work."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from openlocker.access.attempts import FORGIVE_SECONDS, FREE_FAILURES, lockout_seconds
from openlocker.audit.models import AuditEvent
from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from tests.factories import Factory, Org


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


def _lock_pins_typed_alone(client: TestClient, site: str, kiosk: Org, wrong: str) -> None:
    for _ in range(FREE_FAILURES):
        assert (
            client.post(f"/v1/sites/{site}/pickups", json={"pin": wrong}, headers=kiosk.headers)
        ).json()["code"] == "invalid_code"


def test_a_sites_kiosks_share_one_count_and_other_sites_are_untouched(
    factory: Factory, client: TestClient
) -> None:
    carrier = factory.org()
    noisy, quiet = factory.site("S"), factory.site("S")
    waiting = factory.deposited(carrier, noisy)
    elsewhere = factory.deposited(carrier, quiet)
    hall, street = factory.kiosk(noisy), factory.kiosk(noisy)
    _lock_pins_typed_alone(client, noisy, hall, _wrong_pin(waiting["pickup"]["pin"]))

    # The site's other kiosk is locked too: guesses spread over kiosks add up.
    other_kiosk = client.post(
        f"/v1/sites/{noisy}/pickups", json={"pin": waiting["pickup"]["pin"]}, headers=street.headers
    )
    assert other_kiosk.status_code == 429 and other_kiosk.json()["code"] == "too_many_attempts"
    assert other_kiosk.json()["phone_accepted"] is True
    other_site = client.post(
        f"/v1/sites/{quiet}/pickups",
        json={"pin": elsewhere["pickup"]["pin"]},
        headers=factory.kiosk(quiet).headers,
    )
    assert other_site.status_code == 200


def test_a_recipient_gets_past_a_lockout_with_their_phone_suffix(
    factory: Factory, client: TestClient
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    url = f"/v1/sites/{site}/pickups"
    ana = factory.deposited(carrier, site, recipient={"phone": "+48 601 234 567"})
    bo = factory.deposited(carrier, site, recipient={"phone": "+48 602 000 111"})
    _lock_pins_typed_alone(client, site, kiosk, _wrong_pin(ana["pickup"]["pin"]))
    assert (
        client.post(url, json={"pin": ana["pickup"]["pin"]}, headers=kiosk.headers).status_code
        == 429
    )

    # A prankster typing wrong PINs with Bo's suffix locks that suffix only.
    for _ in range(FREE_FAILURES):
        client.post(
            url,
            json={"pin": _wrong_pin(bo["pickup"]["pin"]), "phone": "0111"},
            headers=kiosk.headers,
        )
    blocked = client.post(
        url, json={"pin": bo["pickup"]["pin"], "phone": "0111"}, headers=kiosk.headers
    )
    assert blocked.status_code == 429 and blocked.json()["phone_accepted"] is False

    # Written any way, the number's last four digits are what counts.
    opened = client.post(
        url, json={"pin": ana["pickup"]["pin"], "phone": "601-234-567"}, headers=kiosk.headers
    )
    assert opened.status_code == 200 and opened.json()["parcel_id"] == ana["id"]


def test_a_right_pin_with_another_phone_suffix_is_a_wrong_pin(
    factory: Factory, client: TestClient
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    url = f"/v1/sites/{site}/pickups"
    with_phone = factory.deposited(carrier, site, recipient={"phone": "+48 601 234 567"})
    without = factory.deposited(carrier, site)
    for parcel in (with_phone, without):
        mismatch = client.post(
            url, json={"pin": parcel["pickup"]["pin"], "phone": "9999"}, headers=kiosk.headers
        )
        assert mismatch.status_code == 403 and mismatch.json()["code"] == "invalid_code"
    # Typed alone, both PINs still open their doors.
    for parcel in (with_phone, without):
        assert factory.pick_up(site, parcel, by="pin").status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"qr": "x", "phone": "1234"}, {"pin": "12345678", "phone": "12"}, {"pin": "1", "phone": "ab"}],
)
def test_a_phone_goes_only_with_a_pin_and_needs_four_digits(
    factory: Factory, client: TestClient, body: dict[str, str]
) -> None:
    site = factory.site("S")
    answer = client.post(
        f"/v1/sites/{site}/pickups", json=body, headers=factory.kiosk(site).headers
    )
    assert answer.status_code == 422


def test_refusals_during_a_lockout_write_one_audit_event(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    wrong = _wrong_pin(parcel["pickup"]["pin"])
    _lock_pins_typed_alone(client, site, kiosk, wrong)
    url = f"/v1/sites/{site}/pickups"
    for _ in range(200):
        assert client.post(url, json={"pin": wrong}, headers=kiosk.headers).status_code == 429
    clock.advance(seconds=lockout_seconds(FREE_FAILURES))
    assert client.post(url, json={"pin": wrong}, headers=kiosk.headers).status_code == 403

    with ctx.db.read() as session:
        events = session.execute(
            select(AuditEvent.name, AuditEvent.data)
            .where(AuditEvent.site_id == site)
            .order_by(AuditEvent.seq)
        ).all()
    names = [name for name, _ in events]
    assert names.count("pickup.refused") == 1
    assert names.count("pickup.failed") == FREE_FAILURES + 1
    assert events[-1].data["refused_before"] == 200


def _counts(ctx: Context) -> list[tuple[str, int, int]]:
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all("SELECT bucket, consecutive_failures, refusals FROM pin_attempts")
    return sorted((bucket, count, refusals) for bucket, count, refusals in rows)


def test_counts_are_pruned_only_once_every_failure_is_forgiven_and_reported(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    from openlocker.access.service import prune_pin_attempts

    carrier = factory.org()
    site = factory.site("SS")
    kiosk = factory.kiosk(site)
    parcel = factory.deposited(carrier, site)
    url = f"/v1/sites/{site}/pickups"
    wrong = _wrong_pin(parcel["pickup"]["pin"])
    for _ in range(3):
        client.post(url, json={"pin": wrong, "phone": "1234"}, headers=kiosk.headers)
    for _ in range(FREE_FAILURES + 1):  # the last is refused during the lockout
        client.post(url, json={"pin": wrong}, headers=kiosk.headers)
    (alone, with_phone) = sorted(_counts(ctx), key=lambda row: row[0] != "")
    assert alone == ("", FREE_FAILURES, 1) and with_phone[1:] == (3, 0)

    clock.advance(seconds=2 * FORGIVE_SECONDS)
    assert prune_pin_attempts(ctx) == 0  # 3 and 5 failures still weigh after 2 quiet hours
    clock.advance(seconds=FORGIVE_SECONDS)
    assert prune_pin_attempts(ctx) == 1  # the phone bucket's 3 are all forgiven
    clock.advance(seconds=10 * FORGIVE_SECONDS)
    # Forgiven, but its refusal is not reported yet: kept for the next pickup.failed.
    assert prune_pin_attempts(ctx) == 0 and _counts(ctx) == [("", FREE_FAILURES, 1)]
    failed = client.post(url, json={"pin": wrong}, headers=kiosk.headers)
    assert failed.json()["code"] == "invalid_code"
    clock.advance(seconds=FORGIVE_SECONDS)
    assert prune_pin_attempts(ctx) == 1 and _counts(ctx) == []
