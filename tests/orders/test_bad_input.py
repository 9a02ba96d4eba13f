"""Orders the server cannot place are refused whole, with a stable code, and change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.core.context import Context
from tests.factories import Factory
from tests.orders.helpers import order_body, place, retailer, zoned_site


def _nothing_stored(ctx: Context) -> None:
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM orders")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM parcels")).scalar_one() == 0
        assert (
            conn.execute(
                text("SELECT COUNT(*) FROM compartments WHERE state <> 'free'")
            ).scalar_one()
            == 0
        )


@pytest.mark.parametrize(
    ("items", "code"),
    [
        ([{"size": "S"}, {"size": "S", "temperature": "frozen"}], "zone_not_at_site"),
        ([{"size": "S"}, {"size": "L", "temperature": "chilled"}], "too_large"),
        ([{"dimensions_mm": {"length": 2000, "width": 10, "height": 10}}], "too_large"),
        ([{"size": "XXL"}], "unknown_size"),
    ],
)
def test_items_the_site_can_never_hold(
    factory: Factory, ctx: Context, items: list[dict[str, object]], code: str
) -> None:
    site = zoned_site(ctx, {"ambient": "SML", "chilled": "SM"})
    refused = place(factory, retailer(factory), site, items)
    assert refused.status_code == 422 and refused.json()["code"] == code, refused.text
    _nothing_stored(ctx)


def test_collection_windows_that_make_no_sense(factory: Factory, ctx: Context) -> None:
    site = zoned_site(ctx, {"ambient": "S"})
    shop = retailer(factory)
    now = ctx.clock()
    for ready_from, collect_by in (
        (now + timedelta(hours=5), now + timedelta(hours=2)),  # collect by before ready from
        (now - timedelta(hours=5), now - timedelta(hours=2)),  # already over
        (now, now + timedelta(days=30)),  # too far ahead
    ):
        refused = place(
            factory,
            shop,
            site,
            [{"size": "S"}],
            ready_from=ready_from.isoformat(),
            collect_by=collect_by.isoformat(),
        )
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_window"
    naive = place(factory, shop, site, [{"size": "S"}], collect_by="2026-01-06T10:00:00")
    assert naive.status_code == 422 and naive.json()["code"] == "invalid_input"
    _nothing_stored(ctx)


def test_only_retailers_place_orders_and_references_are_unique(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site = zoned_site(ctx, {"ambient": "SS"})
    carrier = factory.org()
    refused = place(factory, carrier, site, [{"size": "S"}])
    assert refused.status_code == 403 and refused.json()["code"] == "not_retailer"
    shop = retailer(factory)
    first = place(factory, shop, site, [{"size": "S"}], reference="R-1")
    again = place(factory, shop, site, [{"size": "S"}], reference="R-1")
    assert again.status_code == 409 and again.json()["code"] == "duplicate_reference"
    assert again.json()["order_id"] == first.json()["id"]
    for bad in ({"items": []}, {"items": [{"temperature": "chilled"}]}, {"reference": "A#1"}):
        body = {"reference": "R-2", "site_id": site, "items": [{"size": "S"}], **bad}
        answer = client.post("/v1/orders", json=body, headers=shop.headers)
        assert answer.status_code == 422, answer.text


def test_a_retried_order_is_placed_once(factory: Factory, client: TestClient, ctx: Context) -> None:
    site = zoned_site(ctx, {"ambient": "SSS"})
    shop = retailer(factory)
    headers = {**shop.headers, "Idempotency-Key": "k-1"}
    body = order_body(ctx, site, [{"size": "S"}, {"size": "S"}])
    first = client.post("/v1/orders", json=body, headers=headers)
    second = client.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    other = client.post("/v1/orders", json={**body, "reference": "other"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM parcels")).scalar_one() == 2


def test_a_zone_fault_for_a_zone_the_site_lacks_or_from_another_kiosk(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site, other = zoned_site(ctx, {"ambient": "S"}), zoned_site(ctx, {"chilled": "S"})
    lacking = client.post(
        f"/v1/sites/{site}/zones/chilled/fault", headers=factory.kiosk(site).headers
    )
    assert lacking.status_code == 422 and lacking.json()["code"] == "zone_not_at_site"
    foreign = client.post(
        f"/v1/sites/{other}/zones/chilled/fault", headers=factory.kiosk(site).headers
    )
    assert foreign.status_code == 403 and foreign.json()["code"] == "not_site_kiosk"
    unknown = client.post(
        f"/v1/sites/{site}/zones/lukewarm/fault", headers=factory.kiosk(site).headers
    )
    assert unknown.status_code == 422
