"""The demo network: three sites in Warsaw, a carrier, a retailer and an operator."""

from __future__ import annotations

import contextlib
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from openlocker.core.context import Actor, Context
from openlocker.core.ids import new_id
from openlocker.core.sql import Tx
from openlocker.fleet.service import do_create_courier
from openlocker.lockers.models import Site
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from openlocker.orders import service as orders
from openlocker.orders.schemas import OrderIn
from openlocker.orgs.models import Organization
from openlocker.orgs.service import access_principal, do_create_api_key, do_create_organization
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import AnnounceIn

SEED_ACTOR = Actor("system:seed")

#: (name, address, lat, lon, columns); a column is a stack of size codes from the floor up.
DEMO_SITES = [
    ("Warszawa Centralna", "Aleje Jerozolimskie 54, 00-024 Warszawa", 52.2287, 21.0034, 6),
    ("Mokotów Galeria", "Wołoska 12, 02-675 Warszawa", 52.1808, 21.0031, 4),
    ("Praga Koneser", "Ząbkowska 27/31, 03-736 Warszawa", 52.2521, 21.0446, 3),
]
#: One locker column, bottom to top: inner heights plus shelf add up to about 1.9 m.
COLUMN = ["XL", "L", "M", "M", "S", "S", "M", "S"]
COLUMN_HEIGHT_MM = {"S": 100, "M": 210, "L": 430, "XL": 620}
FLOOR_MM = 100


@dataclass
class DemoKeys:
    carrier_key: str
    retailer_key: str
    operator_key: str
    kiosk_keys: dict[str, str] = field(default_factory=dict)
    sites: dict[str, str] = field(default_factory=dict)
    #: A courier code for kiosks' courier mode per organization that deposits (by org id).
    courier_codes: dict[str, str] = field(default_factory=dict)
    #: The organizations' names by id.
    orgs: dict[str, str] = field(default_factory=dict)


def demo_compartments(columns: int, *, chilled_columns: int = 1) -> list[CompartmentIn]:
    """A realistic wall: ``columns`` stacks of mixed sizes, the last ones chilled."""
    compartments = []
    for col in range(columns):
        floor = FLOOR_MM
        temperature = "chilled" if col >= columns - chilled_columns else "ambient"
        for row, size in enumerate(COLUMN):
            compartments.append(
                CompartmentIn(
                    label=f"{chr(ord('A') + col)}{row + 1}",
                    size=size,
                    temperature=temperature,
                    floor_height_mm=floor,
                )
            )
            floor += COLUMN_HEIGHT_MM[size]
    return compartments


def seed_demo(ctx: Context) -> DemoKeys:
    """Create the demo network once; every call issues fresh keys (keys are shown only once)."""
    with ctx.db.transaction() as session:
        orgs = {o.name: o for o in session.scalars(select(Organization)).all()}

        def org(name: str, kind: str) -> str:
            if name not in orgs:
                orgs[name] = do_create_organization(session, ctx, SEED_ACTOR, name, kind)
            return orgs[name].id

        carrier = org("Demo Parcel Express", "carrier")
        retailer = org("Demo Grocer", "retailer")
        operator = org("OpenLocker Operations", "operator")
        sites = {s.name: s for s in session.scalars(select(Site)).all()}
        for name, address, lat, lon, columns in DEMO_SITES:
            if name not in sites:
                spec = SiteIn(
                    name=name,
                    address=address,
                    lat=lat,
                    lon=lon,
                    compartments=demo_compartments(columns),
                    language="pl",
                    timezone="Europe/Warsaw",
                )
                sites[name] = do_create_site(session, ctx, SEED_ACTOR, spec)
        writer = ["parcels:write", "parcels:read"]
        keys = DemoKeys(
            carrier_key=do_create_api_key(session, ctx, SEED_ACTOR, carrier, "demo", writer)[1],
            retailer_key=do_create_api_key(session, ctx, SEED_ACTOR, retailer, "demo", writer)[1],
            operator_key=do_create_api_key(session, ctx, SEED_ACTOR, operator, "demo", ["admin"])[
                1
            ],
        )
        for site in sites.values():
            keys.sites[site.id] = site.name
            keys.kiosk_keys[site.id] = do_create_api_key(
                session, ctx, SEED_ACTOR, operator, f"kiosk {site.name}", [f"kiosk:{site.id}"]
            )[1]
        keys.orgs = {o.id: o.name for o in orgs.values()}
        for org_id in (carrier, retailer):
            name = f"{keys.orgs[org_id]} courier"
            courier = do_create_courier(ctx, Tx.of(session), SEED_ACTOR, org_id, name, None)
            keys.courier_codes[org_id] = courier.code
    return keys


def demo_order_body(site_id: str, now: datetime) -> dict[str, Any]:
    """Demo Grocer's click & collect order: milk and cheese chilled, bread ambient."""
    return {
        "reference": f"GROCER-{new_id('o')[-8:]}",
        "site_id": site_id,
        "items": [
            {"size": "M", "temperature": "chilled"},
            {"size": "S", "temperature": "chilled"},
            {"size": "M", "temperature": "ambient"},
        ],
        "recipient": {"name": "Ana Nowak", "email": "ana@example.com"},
        "notify": "openlocker",
        "ready_from": (now + timedelta(minutes=30)).isoformat(),
        "collect_by": (now + timedelta(hours=24)).isoformat(),
    }


def seed_demo_order(ctx: Context, keys: DemoKeys) -> str:
    """Place and load one chilled order of Demo Grocer at the first site; its id."""
    grocer = access_principal(ctx, f"Bearer {keys.retailer_key}")
    site_id = next(iter(keys.sites))
    request = OrderIn.model_validate(demo_order_body(site_id, ctx.clock()))
    order = orders.create_order(ctx, grocer, request).order
    orders.load_order(ctx, grocer, order.id)
    return order.id


def sample_pickup_link(ctx: Context, keys: DemoKeys) -> str:
    """A parcel deposited at the first demo site for a newcomer to open: its pickup link."""
    carrier = access_principal(ctx, f"Bearer {keys.carrier_key}")
    request = AnnounceIn(
        tracking_number=new_id("DEMO"),
        site_id=next(iter(keys.sites)),
        size="S",
        notify="sender",
        recipient={"name": "Ana Nowak", "language": "pl"},
    )
    announced = parcels.announce(ctx, carrier, request)
    pickup = parcels.deposit(ctx, carrier, announced.parcel.id).parcel.pickup
    assert pickup is not None, "notify: sender returns the credentials"
    return pickup.link


class LockerSimulator:
    """A simulated locker site for the demo, driven through the public API like real ones.

    Each step a courier may drop parcels (announce and deposit, ``notify: sender`` so the
    simulator holds the codes a recipient would get) and a recipient may collect one at the
    kiosk by PIN or QR. It keeps the site about half full, so the demo shows a working
    network: parcels in every state, metrics moving, an audit trail growing.
    """

    def __init__(
        self, client: httpx.Client, keys: DemoKeys, site_id: str, *, seed: int | None = None
    ) -> None:
        self.client = client
        self.site_id = site_id
        self.rng = random.Random(seed)
        self.carrier = {"Authorization": f"Bearer {keys.carrier_key}"}
        self.kiosk = {"Authorization": f"Bearer {keys.kiosk_keys[site_id]}"}
        self.waiting: list[dict[str, str]] = []

    def step(self) -> None:
        """One moment at the site: maybe a courier drop, maybe a pickup."""
        capacity = self._free_total() + len(self.waiting)
        if len(self.waiting) < capacity // 2 and self.rng.random() < 0.6:
            for _ in range(self.rng.randint(1, 3)):
                self._drop()
        if self.waiting and self.rng.random() < 0.5:
            self._collect()

    def _free_total(self) -> int:
        site = self.client.get(f"/v1/sites/{self.site_id}", headers=self.carrier).json()
        return sum(count["free"] for count in site["free"])

    def _drop(self) -> None:
        size = self.rng.choice(["S", "S", "M", "M", "L"])
        announced = self.client.post(
            "/v1/parcels",
            headers=self.carrier,
            json={
                "tracking_number": new_id("SIM"),
                "site_id": self.site_id,
                "size": size,
                "notify": "sender",
            },
        )
        if announced.status_code != 201:
            return
        deposited = self.client.post(
            f"/v1/parcels/{announced.json()['id']}/deposit", headers=self.carrier
        )
        if deposited.status_code == 200:
            self.waiting.append(deposited.json()["pickup"])

    def _collect(self) -> None:
        pickup = self.waiting.pop(self.rng.randrange(len(self.waiting)))
        by = self.rng.choice(["pin", "qr"])
        self.client.post(
            f"/v1/sites/{self.site_id}/pickups", headers=self.kiosk, json={by: pickup[by]}
        )


#: The recipient of the parcels the demo announces for its mailbox (``openlocker demo``).
DEMO_RECIPIENT = {
    "name": "Anna Nowak",
    "email": "anna.nowak@example.com",
    "phone": "+48 600 100 200",
    "language": "pl",
}


def deposit_for_mailbox(client: httpx.Client, keys: DemoKeys) -> None:
    """One parcel per site whose recipient is told by OpenLocker: its email and SMS show in
    the demo's mailbox, and their link leads to the pickup page."""
    carrier = {"Authorization": f"Bearer {keys.carrier_key}"}
    for site_id in keys.sites:
        announced = client.post(
            "/v1/parcels",
            headers=carrier,
            json={
                "tracking_number": new_id("DEMO"),
                "site_id": site_id,
                "size": "M",
                "recipient": DEMO_RECIPIENT,
                "notify": "openlocker",
            },
        )
        if announced.status_code == 201:
            client.post(f"/v1/parcels/{announced.json()['id']}/deposit", headers=carrier)


def run_simulators(
    base_url: str, keys: DemoKeys, stop: threading.Event, period_s: float = 3.0
) -> None:
    """Drive one ``LockerSimulator`` per demo site against the server at ``base_url``."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(100):  # the server is starting in the same process
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if stop.wait(0.2):
                return
        with contextlib.suppress(httpx.HTTPError):
            deposit_for_mailbox(client, keys)
        lockers = [LockerSimulator(client, keys, site_id) for site_id in keys.kiosk_keys]
        while not stop.wait(period_s):
            for locker in lockers:
                # A failed call means the server is stopping; the stop event ends the loop.
                with contextlib.suppress(httpx.HTTPError):
                    locker.step()
