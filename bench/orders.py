"""An order of 5 items against 5 single parcels: cost per item, side by side in one run.

Each round runs 5 parcel lifecycles (announce, deposit, pickup by PIN) and one order of 5
items (create, load, pickup by PIN) on the same site, interleaved so both meet the same
database state, and times the use cases themselves (no HTTP: an order also saves 2 requests
per item there, which would flatter it). It prints wall and CPU milliseconds per item and
the ratio of order to parcel. The issue's goal: an order costs at most 1.5x per item.

    python bench/orders.py [--rounds 200] [--database-url postgresql://…/scratch]

Without ``--database-url`` it runs on a fresh SQLite file. A PostgreSQL database given is
emptied first (its public schema is dropped): give a scratch database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from openlocker.core.config import Settings
from openlocker.core.context import Actor, Context
from openlocker.core.migrate import upgrade
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from openlocker.orders import service as orders
from openlocker.orders.schemas import OrderIn
from openlocker.orgs.service import access_principal, do_create_api_key, do_create_organization
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import AnnounceIn, PickupIn

ITEMS = 5
ACTOR = Actor("system:bench")


def _context(url: str) -> Context:
    ctx = Context.from_settings(Settings(database_url=url, secret_key="bench-secret"))
    if url.startswith("postgresql"):
        with ctx.db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(ctx.db)
    return ctx


def _setup(ctx: Context) -> tuple[str, str, str, str]:
    """A site of 20 S compartments; keys of a carrier, a retailer and the site's kiosk."""
    with ctx.db.transaction() as session:
        carrier = do_create_organization(session, ctx, ACTOR, "Bench carrier", "carrier")
        shop = do_create_organization(session, ctx, ACTOR, "Bench grocer", "retailer")
        operator = do_create_organization(session, ctx, ACTOR, "Bench operator", "operator")
        spec = SiteIn(
            name="Bench site",
            address="Bench street 1",
            lat=52.23,
            lon=21.01,
            compartments=[
                CompartmentIn(label=f"A{i}", size="S", floor_height_mm=300) for i in range(20)
            ],
        )
        site = do_create_site(session, ctx, ACTOR, spec).id
        session.flush()
        scopes = ["parcels:write", "parcels:read"]
        keys = [
            do_create_api_key(session, ctx, ACTOR, org.id, "bench", scopes)[1]
            for org in (carrier, shop)
        ]
        kiosk = do_create_api_key(session, ctx, ACTOR, operator.id, "kiosk", [f"kiosk:{site}"])[1]
    return site, keys[0], keys[1], kiosk


def _timed(work: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(url: str, rounds: int) -> None:
    ctx = _context(url)
    site, carrier_key, shop_key, kiosk_key = _setup(ctx)
    carrier, shop, kiosk = (
        access_principal(ctx, f"Bearer {key}") for key in (carrier_key, shop_key, kiosk_key)
    )
    counter = iter(range(10**9))

    def singles() -> None:
        for _ in range(ITEMS):
            announce = AnnounceIn(
                tracking_number=f"B{next(counter)}", site_id=site, size="S", notify="sender"
            )
            parcel = parcels.announce(ctx, carrier, announce).parcel
            pickup = parcels.deposit(ctx, carrier, parcel.id).parcel.pickup
            assert pickup is not None
            parcels.pickup(ctx, kiosk, site, PickupIn(pin=pickup.pin))

    def order() -> None:
        now = ctx.clock()
        request = OrderIn(
            reference=f"O{next(counter)}",
            site_id=site,
            items=[{"size": "S"}] * ITEMS,  # type: ignore[list-item]
            notify="sender",
            ready_from=now,
            collect_by=now + timedelta(days=1),
        )
        placed = orders.create_order(ctx, shop, request).order
        pickup = orders.load_order(ctx, shop, placed.id).pickup
        assert pickup is not None
        collected = parcels.pickup(ctx, kiosk, site, PickupIn(pin=pickup.pin))
        assert len(collected.compartments) == ITEMS

    for _ in range(10):  # warm caches and connections
        singles()
        order()
    single_runs, order_runs = [], []
    for _ in range(rounds):
        single_runs.append(_timed(singles))
        order_runs.append(_timed(order))
    dialect = ctx.db.engine.dialect.name
    ctx.db.dispose()

    def per_item(runs: list[tuple[float, float]], which: int) -> float:
        return statistics.median(run[which] for run in runs) / ITEMS * 1000

    print(f"{dialect}: {rounds} rounds of {ITEMS} parcels and one order of {ITEMS} items")
    for label, which in (("wall", 0), ("cpu", 1)):
        single, ordered = per_item(single_runs, which), per_item(order_runs, which)
        print(
            f"  {label:4} ms per item (median of rounds): parcel {single:.2f}, "
            f"order {ordered:.2f}, ratio {ordered / single:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database-url", help="a scratch PostgreSQL database (emptied)")
    args = parser.parse_args()
    if args.database_url:
        run(args.database_url, args.rounds)
        return
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{Path(folder) / 'bench.db'}", args.rounds)


if __name__ == "__main__":
    main()
