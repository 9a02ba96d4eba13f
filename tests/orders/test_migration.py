"""Migration 0007 both ways: orders' items and returns stay parcels the old lifecycle knows."""

from __future__ import annotations

from sqlalchemy import text

from openlocker.core.context import Context
from tests.factories import Factory
from tests.orders.helpers import place, retailer
from tests.test_migrations import _migrate


def test_0007_down_keeps_orders_items_and_returns_as_parcels(
    factory: Factory, ctx: Context
) -> None:
    shop = retailer(factory)
    site = factory.site("SSS")
    order = place(factory, shop, site, [{"size": "S"}, {"size": "S"}]).json()
    factory.client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers)
    issued = factory.client.post(
        "/v1/returns",
        json={"reference": "RMA-9", "size": "S", "customer": {"email": "a@example.com"}},
        headers=shop.headers,
    ).json()
    factory.client.post(
        f"/v1/sites/{site}/returns",
        json={"code": issued["code"]},
        headers=factory.kiosk(site).headers,
    )

    _migrate(ctx, "0003", down=True)
    with ctx.db.engine.connect() as conn:
        statuses = sorted(s for (s,) in conn.execute(text("SELECT status FROM parcels")))
        tables = {
            name
            for (name,) in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if ctx.db.engine.dialect.name == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            )
        }
    assert statuses == ["deposited", "deposited", "expired"]
    assert not {"orders", "returns", "zone_policies"} & tables

    _migrate(ctx, "head")
    ctx.cache.clear()
    carrier = factory.org()
    assert factory.deposited(carrier, factory.site("S"))["status"] == "deposited"
