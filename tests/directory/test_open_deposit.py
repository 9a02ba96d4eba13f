"""Open deposit: a courier with no integration drops a parcel for a directory entry."""

from __future__ import annotations

from typing import Any

import orjson
from httpx import Response
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.directory.service import OPEN_DEPOSIT_ORG
from tests.directory.helpers import Building, add_entry, building, courier, events
from tests.factories import Factory


def _deposit(factory: Factory, here: Building, **body: Any) -> Response:
    headers = {**here.kiosk.headers, **body.pop("headers", {})}
    return factory.client.post(
        f"/v1/sites/{here.site_id}/open-deposits", json=body, headers=headers
    )


def _messages(ctx: Context, parcel_id: str) -> list[tuple[str, dict[str, Any], str | None]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT topic, payload, sealed FROM outbox WHERE parcel_id = :p ORDER BY seq"),
            {"p": parcel_id},
        ).all()
    return [(t, p if isinstance(p, dict) else orjson.loads(p), s) for t, p, s in rows]


def _doors(ctx: Context) -> list[str]:
    """The compartments the outbox tells kiosks to open, oldest first."""
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM outbox WHERE topic = 'kiosk.open_compartment' ORDER BY seq")
        ).all()
    return [(p if isinstance(p, dict) else orjson.loads(p))["compartment_id"] for (p,) in rows]


def test_a_deposit_for_an_entry_reaches_the_recipient_who_picks_it_up(
    factory: Factory, ctx: Context
) -> None:
    here = building(factory)
    entry = add_entry(
        factory,
        here,
        display_name="Anna Nowak",
        unit="12A",
        email="anna@example.com",
        phone="+48 600 100 200",
        language="pl",
    )
    answer = _deposit(factory, here, entry_id=entry["id"], size="M", tracking_number="LBL-123")
    assert answer.status_code == 201, answer.text
    deposit = answer.json()
    assert deposit["status"] == "deposited" and deposit["tracking_number"] == "LBL-123"
    assert deposit["compartment"]["size"] == "M" and deposit["carrier_org_id"] == OPEN_DEPOSIT_ORG
    assert deposit["recipient"] == {"id": entry["id"], "display_name": "Anna Nowak", "unit": "12A"}
    assert "email" not in str(deposit) and "600100200" not in str(deposit)

    parcel = factory.client.get(
        f"/v1/parcels/{deposit['parcel_id']}", headers=factory.operator().headers
    ).json()
    assert parcel["status"] == "deposited" and parcel["notify"] == "openlocker"
    assert parcel["compartment"] == deposit["compartment"]

    topics = [topic for topic, _, _ in _messages(ctx, deposit["parcel_id"])]
    assert topics == [
        "webhook.carrier",
        "kiosk.open_compartment",
        "webhook.carrier",
        "recipient.pickup_ready",
    ]
    assert _doors(ctx) == [deposit["compartment"]["id"]]
    _, payload, sealed = _messages(ctx, deposit["parcel_id"])[-1]
    assert payload["recipient"] == {
        "name": "Anna Nowak",
        "email": "anna@example.com",
        "phone": "+48600100200",
        "language": "pl",
    }
    assert sealed is not None
    pin = orjson.loads(ctx.keyring.unseal(sealed))["pin"]
    picked = factory.client.post(
        f"/v1/sites/{here.site_id}/pickups", json={"pin": pin}, headers=here.kiosk.headers
    )
    assert picked.status_code == 200 and picked.json()["compartment"] == deposit["compartment"]

    announced, deposited = events(ctx, "parcel.announced"), events(ctx, "parcel.deposited")
    for _, data in (*announced, *deposited):
        assert data["open_deposit"] is True and data["entry_id"] == entry["id"]
        assert data["courier_id"] is None
    assert [
        d["org_id"] for _, d in events(ctx, "org.created") if d["org_id"] == OPEN_DEPOSIT_ORG
    ] == [OPEN_DEPOSIT_ORG]


def test_the_open_deposit_carrier_is_made_once(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    entry = add_entry(factory, here)
    for _ in range(3):
        assert _deposit(factory, here, entry_id=entry["id"], size="S").status_code == 201
    made = [d for _, d in events(ctx, "org.created") if d["org_id"] == OPEN_DEPOSIT_ORG]
    assert len(made) == 1 and made[0]["kind"] == "carrier"


def test_a_signed_in_courier_deposits_for_their_carrier(factory: Factory, ctx: Context) -> None:
    here, there = building(factory), building(factory)
    entry = add_entry(factory, here)
    carrier = factory.org()
    everywhere = courier(factory, carrier)
    deposit = _deposit(factory, here, entry_id=entry["id"], size="S", courier_id=everywhere).json()
    assert deposit["carrier_org_id"] == carrier.id and deposit["courier_id"] == everywhere
    # The carrier sees its parcel and is told of it like any other.
    mine = factory.client.get(f"/v1/parcels/{deposit['parcel_id']}", headers=carrier.headers)
    assert mine.status_code == 200
    webhook = [p for t, p, _ in _messages(ctx, deposit["parcel_id"]) if t == "webhook.carrier"]
    assert {p["event"] for p in webhook} == {"parcel.announced", "parcel.deposited"}
    assert {p["org_id"] for p in webhook} == {carrier.id}
    assert events(ctx, "parcel.deposited")[0][1]["courier_id"] == everywhere

    elsewhere = courier(factory, carrier, sites=(there.site_id,))
    here_only = courier(factory, carrier, sites=(here.site_id,))
    retired = courier(factory, carrier, active=False)
    for courier_id, status, code in (
        (elsewhere, 403, "courier_not_at_site"),
        (retired, 403, "courier_inactive"),
        ("cou_missing", 404, "courier_not_found"),
    ):
        refused = _deposit(factory, here, entry_id=entry["id"], size="S", courier_id=courier_id)
        assert (refused.status_code, refused.json()["code"]) == (status, code)
    assert (
        _deposit(factory, here, entry_id=entry["id"], size="S", courier_id=here_only).status_code
        == 201
    )


def test_refusals_change_nothing(factory: Factory, ctx: Context) -> None:
    here, there = building(factory, sizes="SM"), building(factory)
    entry = add_entry(factory, here)
    elsewhere = add_entry(factory, there)
    inactive = add_entry(factory, here, active=False)
    with ctx.db.engine.connect() as conn:
        free_m = conn.execute(
            text("SELECT id FROM compartments WHERE site_id = :s AND size_code = 'M'"),
            {"s": here.site_id},
        ).scalar_one()
    for body, status, code in (
        ({"entry_id": elsewhere["id"], "size": "S"}, 404, "entry_not_found"),
        ({"entry_id": inactive["id"], "size": "S"}, 409, "entry_inactive"),
        ({"entry_id": entry["id"], "size": "XXL"}, 422, "unknown_size"),
        ({"entry_id": entry["id"], "size": "L"}, 409, "site_full"),
        (
            {"entry_id": entry["id"], "size": "M", "compartment_id": "cmp_missing"},
            409,
            "compartment_unavailable",
        ),
        (
            {"entry_id": entry["id"], "size": "S", "tracking_number": "has space"},
            422,
            "invalid_input",
        ),
        ({"entry_id": entry["id"], "size": "S", "pin": "1"}, 422, "unknown_field"),
    ):
        refused = _deposit(factory, here, **body)
        assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
    other_kiosk = _deposit(
        factory, here, entry_id=entry["id"], size="S", headers=there.kiosk.headers
    )
    assert other_kiosk.json()["code"] == "not_site_kiosk"
    keeper = _deposit(factory, here, entry_id=entry["id"], size="S", headers=here.keeper.headers)
    assert keeper.json()["code"] == "not_site_kiosk"
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM parcels")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM outbox")).scalar_one() == 0
        assert (
            conn.execute(
                text("SELECT COUNT(*) FROM compartments WHERE state <> 'free'")
            ).scalar_one()
            == 0
        )

    chosen = _deposit(factory, here, entry_id=entry["id"], size="S", compartment_id=free_m)
    assert chosen.status_code == 201 and chosen.json()["compartment"]["id"] == free_m
    taken = _deposit(factory, here, entry_id=entry["id"], size="S", compartment_id=free_m)
    assert taken.json()["code"] == "compartment_unavailable"
    small = _deposit(factory, here, entry_id=entry["id"], size="S").json()
    full = _deposit(factory, here, entry_id=entry["id"], size="S")
    assert small["compartment"]["size"] == "S" and full.json()["code"] == "site_full"
    again = _deposit(
        factory, here, entry_id=entry["id"], size="S", tracking_number=small["tracking_number"]
    )
    assert again.json()["code"] == "duplicate_tracking_number"
    assert again.json()["parcel_id"] == small["parcel_id"]


def test_a_retried_deposit_answers_as_the_first_and_opens_nothing_more(
    factory: Factory, ctx: Context
) -> None:
    here = building(factory)
    entry = add_entry(factory, here)
    key = {"Idempotency-Key": "kiosk-drop-1"}
    first = _deposit(factory, here, entry_id=entry["id"], size="S", headers=key)
    again = _deposit(factory, here, entry_id=entry["id"], size="S", headers=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = _deposit(factory, here, entry_id=entry["id"], size="M", headers=key)
    assert other.json()["code"] == "idempotency_key_reused"
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM parcels")).scalar_one() == 1
    assert _doors(ctx) == [first.json()["compartment"]["id"]]
    # A kiosk that opens the door itself on the answer gets no command for it.
    by_kiosk = _deposit(factory, here, entry_id=entry["id"], size="S", door="kiosk")
    assert by_kiosk.status_code == 201
    assert _doors(ctx) == [first.json()["compartment"]["id"]]
