"""Racing orders for the last compartments: whole orders win, none shares a compartment."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.orders import service
from openlocker.orders.schemas import OrderIn
from openlocker.orgs.service import access_principal
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import PickupIn
from tests.factories import Factory
from tests.lockers.test_concurrency import _race
from tests.orders.helpers import order_body, retailer, zoned_site

RACERS = 12
#: Room for exactly three orders of two ambient and one chilled item.
ZONES = {"ambient": "SSSSSS", "chilled": "SSS"}


def _order(ctx: Context, key: str, site: str, n: int) -> Callable[[], str]:
    principal = access_principal(ctx, f"Bearer {key}")
    items = [{"size": "S"}, {"size": "S"}, {"size": "S", "temperature": "chilled"}]
    request = OrderIn.model_validate(order_body(ctx, site, items, reference=f"RACE-{n}"))

    def call() -> str:
        order = service.create_order(ctx, principal, request).order
        return ",".join(i.compartment.id for i in order.items if i.compartment)

    return call


def test_racing_orders_get_whole_orders_or_nothing(factory: Factory, ctx: Context) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, ZONES)
    outcomes, won = _race([_order(ctx, shop.key, site, n) for n in range(RACERS)])
    assert outcomes == {"ok": 3, "site_full": RACERS - 3}
    compartments = [c for order in won for c in order.split(",")]
    assert len(compartments) == len(set(compartments)) == 9
    with ctx.db.engine.connect() as conn:
        held = conn.execute(
            text("SELECT COUNT(*) FROM parcels WHERE compartment_id IS NOT NULL")
        ).scalar_one()
        free = conn.execute(
            text("SELECT COUNT(*) FROM compartments WHERE state = 'free'")
        ).scalar_one()
    assert held == 9 and free == 0  # the losers reserved nothing


def test_racing_pickups_of_one_order_open_each_door_once(factory: Factory, ctx: Context) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SSS"})
    placed = factory.client.post(
        "/v1/orders",
        json=order_body(ctx, site, [{"size": "S"}] * 3),
        headers=shop.headers,
    ).json()
    pickup = factory.client.post(f"/v1/orders/{placed['id']}/load", headers=shop.headers).json()[
        "pickup"
    ]
    kiosk = access_principal(ctx, f"Bearer {factory.kiosk(site).key}")

    def pick(by: str) -> Callable[[], str]:
        return lambda: ",".join(
            c.label
            for c in parcels.pickup(ctx, kiosk, site, PickupIn(**{by: pickup[by]})).compartments
        )

    outcomes, won = _race([pick(by) for by in ("pin", "qr", "link") * 3])
    assert outcomes["ok"] == 1 and len(won[0].split(",")) == 3
    assert sum(outcomes.values()) == 9
    assert set(outcomes) - {"ok"} <= {"code_used", "invalid_code", "invalid_transition"}
