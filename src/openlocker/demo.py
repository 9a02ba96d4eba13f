"""The demo network: three sites in Warsaw, a carrier, a retailer and an operator."""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from openlocker.core.context import Actor, Context
from openlocker.core.ids import new_id
from openlocker.core.sql import Tx
from openlocker.directory import service as directory
from openlocker.directory.schemas import EntryIn
from openlocker.fleet.mqtt.mosquitto import SERVER_USER, mosquitto_binary, private_broker
from openlocker.fleet.service import do_create_courier
from openlocker.lockers.models import Compartment, Site
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from openlocker.orders import service as orders
from openlocker.orders.schemas import OrderIn
from openlocker.orgs.models import Organization
from openlocker.orgs.service import access_principal, do_create_api_key, do_create_organization
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import AnnounceIn
from openlocker.returns.schemas import Customer, ReturnIn
from openlocker.returns.service import issue_return

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
#: The residents in each demo site's directory (name, unit, email), for open deposits: a
#: courier with no announced parcel finds one at the kiosk and a door opens.
DEMO_RESIDENTS = [
    ("Anna Kowalska", "12", "anna.kowalska@example.com"),
    ("Piotr Wiśniewski", "14B", "piotr.wisniewski@example.com"),
    ("Katarzyna Zielińska", "3/7", "katarzyna.zielinska@example.com"),
    ("Tomasz Lewandowski", "21", "tomasz.lewandowski@example.com"),
]


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
    seed_demo_directory(ctx, keys)
    return keys


def seed_demo_directory(ctx: Context, keys: DemoKeys) -> None:
    """Each demo site's directory of ``DEMO_RESIDENTS``, once (a site with entries keeps
    them)."""
    operator = access_principal(ctx, f"Bearer {keys.operator_key}")
    for site_id in keys.sites:
        with ctx.db.sql.transaction() as tx:
            if tx.scalar("SELECT 1 FROM directory_entries WHERE site_id = :s", {"s": site_id}):
                continue
        for n, (name, unit, email) in enumerate(DEMO_RESIDENTS):
            entry = EntryIn(display_name=name, unit=unit, email=email, external_id=f"demo-{n}")
            directory.create_entry(ctx, operator, site_id, entry)


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


@dataclass(frozen=True)
class KioskWork:
    """What waits at the demo's kiosks for a newcomer to do by hand."""

    #: An order of Demo Grocer per site (by site id), placed and not loaded: its reference.
    orders: dict[str, str]
    #: A return code of Demo Parcel Express, for "Return a parcel" at any kiosk.
    return_code: str
    #: The site where the carrier's courier finds an expired parcel to collect.
    expired_at: str


def seed_kiosk_work(ctx: Context, keys: DemoKeys) -> KioskWork:
    """An order per site for the grocer's staff to load at the kiosk, a return code for a
    customer to drop a parcel with, and an expired parcel at the first site for the carrier's
    courier to collect."""
    grocer = access_principal(ctx, f"Bearer {keys.retailer_key}")
    carrier = access_principal(ctx, f"Bearer {keys.carrier_key}")
    now = ctx.clock()
    orders_to_load = {}
    for site_id in keys.sites:
        body = demo_order_body(site_id, now)
        body["items"] = body["items"][1:]  # two doors to load: cheese and bread
        placed = orders.create_order(ctx, grocer, OrderIn.model_validate(body)).order
        orders_to_load[site_id] = placed.reference
    customer = Customer(email=DEMO_RECIPIENT["email"], name=DEMO_RECIPIENT["name"], language="pl")
    issued = issue_return(
        ctx, carrier, ReturnIn(reference=new_id("RET"), size="S", customer=customer)
    )
    assert issued.code is not None, "the answer that issues a return code holds it"
    first = next(iter(keys.sites))
    announced = parcels.announce(
        ctx,
        carrier,
        AnnounceIn(tracking_number=new_id("EXP"), site_id=first, size="S", notify="sender"),
    ).parcel
    parcels.deposit(ctx, carrier, announced.id)
    with ctx.db.sql.transaction() as tx:
        (parcel,) = parcels.select_parcels(tx, "p.id = :id", {"id": announced.id}, lock=True)
        then = now - timedelta(minutes=1)
        parcels.do_move_deadline(tx, SEED_ACTOR, parcel, then, now, reason="demo")
    parcels.expire_due(ctx)
    return KioskWork(orders_to_load, issued.code, first)


class LockerSimulator:
    """The people at one demo site, using its real kiosk (``openlocker kiosk`` on sim boards).

    A courier of Demo Parcel Express drops parcels: the carrier announces them over the API
    (``notify: sender``), and once the kiosk has synced them the courier signs in at the
    kiosk with the courier code, scans each tracking number, puts the parcel in the door that
    opens and shuts it, which confirms the deposit. The carrier then asks for the pickup
    credentials (``POST /v1/parcels/{id}/credentials``), as a sender that messages its
    recipients itself does, and a recipient types the PIN or shows the QR code at the kiosk,
    takes the parcel out and shuts the door. It keeps the site about half full, so the demo
    shows a working network: parcels in every state, doors moving, an audit trail growing.
    """

    #: Steps a parcel waits for the kiosk to sync it (the first one it is not tried).
    TRIES = 6
    #: Open deposits waiting at once: their residents are told by email (the demo's mailbox)
    #: and nobody simulated collects them, so a newcomer can, from the mailbox's link.
    OPEN_DEPOSITS = 2

    def __init__(
        self,
        server: httpx.Client,
        kiosk: httpx.Client,
        keys: DemoKeys,
        site_id: str,
        *,
        seed: int | None = None,
    ) -> None:
        self.server = server
        self.kiosk = kiosk
        self.site_id = site_id
        self.rng = random.Random(seed)
        self.carrier = {"Authorization": f"Bearer {keys.carrier_key}"}
        carrier_org = next(o for o, name in keys.orgs.items() if name == "Demo Parcel Express")
        self.courier_code = keys.courier_codes[carrier_org]
        #: Announced, not yet deposited: (parcel id, tracking number, tries left).
        self.announced: list[tuple[str, str, int]] = []
        #: Deposited at the kiosk, credentials not asked for yet.
        self.deposited: list[str] = []
        #: Credentials of parcels waiting in the locker.
        self.waiting: list[dict[str, str]] = []
        #: Parcels a courier left for a resident of the directory (open deposits).
        self.for_residents: list[str] = []

    def step(self) -> None:
        """One moment at the site: maybe a drop, credentials asked for, maybe a pickup."""
        self._shut_open_doors()
        self._ask_credentials()
        self._drop()
        capacity = self._free_total() + len(self.waiting) + len(self.deposited)
        if len(self.waiting) + len(self.announced) < capacity // 2 and self.rng.random() < 0.6:
            for _ in range(self.rng.randint(1, 3)):
                self._announce()
        if self.waiting and self.rng.random() < 0.5:
            self._collect()
        if self.rng.random() < 0.1:
            self.deliver_to_resident()

    def _free_total(self) -> int:
        site = self.server.get(f"/v1/sites/{self.site_id}", headers=self.carrier).json()
        return sum(count["free"] for count in site["free"])

    def _announce(self) -> None:
        tracking = new_id("SIM")
        announced = self.server.post(
            "/v1/parcels",
            headers=self.carrier,
            json={
                "tracking_number": tracking,
                "site_id": self.site_id,
                "size": self.rng.choice(["S", "S", "M", "M", "L"]),
                "notify": "sender",
            },
        )
        if announced.status_code == 201:
            self.announced.append((announced.json()["id"], tracking, self.TRIES))

    def _door(self, compartment_id: str, *actions: str) -> None:
        for action in actions:
            self.kiosk.post(f"/api/sim/doors/{compartment_id}", json={"action": action})

    def _sign_in(self) -> bool:
        """The simulated courier signs in, unless somebody (a person at the screen) is."""
        if self.kiosk.get("/api/state").json().get("courier") is not None:
            return False
        return not self.kiosk.post("/api/courier/login", json={"code": self.courier_code}).is_error

    def _shut_open_doors(self) -> None:
        """Doors the server had opened (a deposit or a load over the API, a remote open, a
        pickup from the link's page) get their parcel put in, or taken out, and are shut."""
        for door in self.kiosk.get("/api/state").json()["open_doors"]:
            actions = ("unload", "close") if door["purpose"] == "pickup" else ("load", "close")
            self._door(door["compartment"]["id"], *actions)

    def _drop(self) -> None:
        """The courier deposits at the kiosk every parcel announced before this step."""
        if not self.announced:
            return
        if not self._sign_in():
            return
        later = []
        try:
            for parcel_id, tracking, tries in self.announced:
                if tries == self.TRIES:  # announced this step: give the kiosk's sync a turn
                    later.append((parcel_id, tracking, tries - 1))
                    continue
                opened = self.kiosk.post("/api/courier/deposit", json={"tracking_number": tracking})
                if opened.status_code == 200:
                    self._door(opened.json()["compartment"]["id"], "load", "close")
                    self.deposited.append(parcel_id)
                elif tries > 1:  # the kiosk has not synced it yet
                    later.append((parcel_id, tracking, tries - 1))
        finally:
            self.kiosk.post("/api/courier/logout")
        self.announced = later

    def deliver_to_resident(self) -> None:
        """A courier with a parcel nobody announced finds a resident in the site's directory
        at the kiosk, picks a size, puts the parcel in and shuts the door, which deposits it;
        the resident is sent their codes. At most ``OPEN_DEPOSITS`` wait at once."""
        self.for_residents = [
            parcel_id
            for parcel_id in self.for_residents
            if self.server.get(f"/v1/parcels/{parcel_id}", headers=self.carrier)
            .json()
            .get("status")
            in ("announced", "deposited")
        ]
        if len(self.for_residents) >= self.OPEN_DEPOSITS:
            return
        if not self._sign_in():
            return
        try:
            name = self.rng.choice(DEMO_RESIDENTS)[0]
            found = self.kiosk.get("/api/courier/directory", params={"q": name.split()[-1][:5]})
            sizes = self.kiosk.get("/api/courier/open-deposit/sizes")
            if found.is_error or sizes.is_error:  # offline: announced deposits only
                return
            entries, free = found.json()["items"], sizes.json()["sizes"]
            if not entries or not free:
                return
            opened = self.kiosk.post(
                "/api/courier/open-deposit",
                json={"entry_id": entries[0]["id"], "size": free[0]["code"]},
            )
            if opened.status_code == 200:
                self._door(opened.json()["compartment"]["id"], "load", "close")
                self.for_residents.append(opened.json()["parcel_id"])
        finally:
            self.kiosk.post("/api/courier/logout")

    def _ask_credentials(self) -> None:
        """The carrier asks for the codes of parcels the server has as deposited."""
        still = []
        for parcel_id in self.deposited:
            status = self.server.get(f"/v1/parcels/{parcel_id}", headers=self.carrier)
            if status.status_code == 200 and status.json()["status"] == "deposited":
                issued = self.server.post(
                    f"/v1/parcels/{parcel_id}/credentials", headers=self.carrier
                )
                if issued.status_code == 200:
                    self.waiting.append(issued.json()["pickup"])
                    continue
            still.append(parcel_id)
        self.deposited = still

    def _collect(self) -> None:
        pickup = self.waiting.pop(self.rng.randrange(len(self.waiting)))
        by = self.rng.choice(["pin", "qr"])
        opened = self.kiosk.post("/api/pickup", json={by: pickup[by]})
        if opened.status_code == 200:
            for compartment in opened.json()["compartments"]:
                self._door(compartment["id"], "unload", "close")


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
    base_url: str,
    keys: DemoKeys,
    kiosk_urls: dict[str, str],
    stop: threading.Event,
    period_s: float = 3.0,
) -> None:
    """Drive one ``LockerSimulator`` per demo site against the server at ``base_url`` and
    each site's kiosk (``kiosk_urls`` by site id)."""
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=base_url, timeout=10))
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
        lockers = [
            LockerSimulator(
                client, stack.enter_context(httpx.Client(base_url=url, timeout=10)), keys, site
            )
            for site, url in kiosk_urls.items()
        ]
        while not stop.wait(period_s):
            for locker in lockers:
                # A failed call means the server is stopping; the stop event ends the loop.
                with contextlib.suppress(httpx.HTTPError):
                    locker.step()


@dataclass(frozen=True)
class DemoFleet:
    """The demo's fleet channel: the server's ``OPENLOCKER_MQTT_URL`` and each kiosk's broker
    URL (both None: HTTP polling alone), and a line that says which it is."""

    server_url: str | None
    kiosk_urls: dict[str, str] = field(repr=False)
    about: str


@contextlib.contextmanager
def demo_fleet(folder: Path, site_ids: Sequence[str]) -> Iterator[DemoFleet]:
    """The broker of ``OPENLOCKER_MQTT_URL`` when set (the kiosks use it as it is: an
    anonymous broker, or a user allowed every site's topics); otherwise a private Mosquitto
    on loopback for the block's life, a user per kiosk and the access rules of
    ``docs/fleet.md``; otherwise none."""
    configured = os.environ.get("OPENLOCKER_MQTT_URL")
    if configured:
        yield DemoFleet(
            configured, dict.fromkeys(site_ids, configured), "the broker of OPENLOCKER_MQTT_URL"
        )
        return
    if mosquitto_binary() is None:
        yield DemoFleet(
            None,
            {},
            "off (no mosquitto installed, OPENLOCKER_MQTT_URL unset): the kiosks poll the"
            " server over HTTP, and door commands go out with their next poll",
        )
        return
    with private_broker(folder, [SERVER_USER, *site_ids]) as broker:
        users = "a user per kiosk, docs/fleet.md's rules" if broker.passwords else "anonymous"
        yield DemoFleet(
            broker.url(SERVER_USER),
            {site: broker.url(site) for site in site_ids},
            f"a private Mosquitto on 127.0.0.1:{broker.port} ({users}), for this demo's life",
        )


def demo_compartment(ctx: Context, site_id: str, label: str = "A2") -> str:
    """The id of the compartment ``label`` of ``site_id`` (for the demo's remote open)."""
    with ctx.db.transaction() as session:
        compartment_id = session.scalars(
            select(Compartment.id).where(Compartment.site_id == site_id, Compartment.label == label)
        ).one()
    return str(compartment_id)
