"""Phone numbers are validated and stored in E.164 at announce, keeping their last digits."""

from __future__ import annotations

from openlocker.core.context import Context
from tests.factories import Factory


def test_phone_numbers_in_any_spelling_become_e164(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("SSS")
    for typed in ("600 100 200", "+48 600-100-200", "0048 (600) 100 200"):
        announced = factory.announce(carrier, site, recipient={"phone": typed})
        assert announced.status_code == 201, announced.text
        with ctx.db.sql.transaction(write=False) as tx:
            stored = tx.json(
                tx.scalar(
                    "SELECT recipient FROM parcels WHERE id = :id", {"id": announced.json()["id"]}
                )
            )
        assert stored["phone"] == "+48600100200"


def test_a_bad_number_is_a_422_naming_the_field(factory: Factory) -> None:
    carrier = factory.org()
    site = factory.site("S")
    for typed in ("12", "+48 12", "call me", "+999 123 456 789"):
        answer = factory.announce(carrier, site, recipient={"phone": typed})
        assert answer.status_code == 422, typed
        body = answer.json()
        assert body["code"] == "invalid_input"
        assert "recipient.phone" in body["detail"]
        assert body["errors"][0]["loc"][-2:] == ["recipient", "phone"]


def test_the_pin_with_the_phone_suffix_still_opens(factory: Factory) -> None:
    carrier = factory.org()
    site = factory.site("S")
    parcel = factory.deposited(carrier, site, recipient={"phone": "0048 600 100 200"})
    answer = factory.client.post(
        f"/v1/sites/{site}/pickups",
        json={"pin": parcel["pickup"]["pin"], "phone": "0200"},
        headers=factory.kiosk(site).headers,
    )
    assert answer.status_code == 200, answer.text
