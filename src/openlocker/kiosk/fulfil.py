"""Micro-fulfilment at the kiosk: store staff load orders, customers drop returns, couriers
collect what the site holds for their organization (``docs/kiosk.md``, "Fulfilment").

- **Loading an order** works offline. Staff are their retailer's couriers: they sign in with
  their courier code, and the order's items are announced parcels of that retailer
  (``<reference>#<n>``), synced as any. The doors open one after another, each once the one
  before shut on its item, through the courier deposit path (``Agent.courier_deposit``);
  each close queues a ``deposit`` event, and the server makes the order ready when the
  last one reaches it (as ``POST /v1/orders/{id}/load`` does: ``order.ready``, one
  credential set to the customer).
- **Dropping a return** needs the network: return codes work at any site and the server keeps
  only an HMAC of each, so no kiosk can check one alone. The server picks the compartment
  and records the drop-off; the kiosk opens its door.
- **Collecting** needs the network: the manifest and each scan-out are the server's. The
  doors open one by one, each after the parcel before was scanned out or reported missing.

One loading and one collection visit at a time, kept in memory: a restarted kiosk forgets
the visit, never what a door did (the journal and the queue have that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from openlocker.core.errors import Conflict, DomainError, NotFound
from openlocker.kiosk.agent import PICKUP, Agent, BoardUnavailable, DoorNotOpened
from openlocker.kiosk.link import Unreachable
from openlocker.kiosk.store import STUCK, Compartment, Expected

log = logging.getLogger("openlocker.kiosk")

#: Why a door is open while a customer drops a return (``/api/state`` ``purpose``).
RETURN = "return"


class NeedsNetwork(DomainError):
    status = 503
    code = "needs_network"
    title = "The locker must be online"


def reference_of(item: Expected) -> str:
    """An order item's order reference (its tracking number is ``<reference>#<n>``)."""
    return item.tracking_number.rsplit("#", 1)[0]


@dataclass(slots=True)
class LoadingItem:
    parcel_id: str
    tracking_number: str
    #: ``waiting``, ``open`` (its door is open for it), ``loaded`` (the door shut on it).
    state: str = "waiting"
    compartment: dict[str, Any] | None = None


@dataclass(slots=True)
class Loading:
    order_id: str
    reference: str
    courier_id: str
    items: list[LoadingItem]
    problem: str | None = None

    @property
    def current(self) -> LoadingItem | None:
        return next((i for i in self.items if i.state != "loaded"), None)


@dataclass(slots=True)
class CollectionItem:
    parcel_id: str
    tracking_number: str
    kind: str
    compartment: dict[str, Any] | None
    reference: str | None
    #: ``waiting``, ``open``, ``collected`` or ``missing``.
    state: str = "waiting"


@dataclass(slots=True)
class Visit:
    courier_id: str
    items: list[CollectionItem] = field(default_factory=list)
    problem: str | None = None


class Fulfil:
    """The three flows over one agent; ``install()`` follows its doors."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.loading: Loading | None = None
        self.visit: Visit | None = None
        self._next: asyncio.Task[None] | None = None

    def install(self) -> None:
        self.agent.door_closed_hooks.append(self._door_closed)

    # --- loading an order --------------------------------------------------------------------

    def orders(self) -> dict[str, Any]:
        """The orders the signed-in staff's retailer has waiting to be loaded here."""
        courier = self.agent.check_courier().courier
        by_order: dict[str, list[Expected]] = {}
        for item in self.agent.store.order_items(courier.org_id):
            by_order.setdefault(item.order_id or "", []).append(item)
        return {
            "orders": [
                {
                    "order_id": order_id,
                    "reference": reference_of(items[0]),
                    "items": len(items),
                    "loaded": sum(i.deposited for i in items),
                }
                for order_id, items in sorted(
                    by_order.items(), key=lambda o: o[1][0].tracking_number
                )
                if not all(i.deposited for i in items)
            ]
        }

    async def load(self, reference: str) -> dict[str, Any]:
        """Start loading the order ``reference`` (typed or scanned; an item's tracking number
        ``<reference>#<n>`` names its order too): the first waiting item's door opens, and
        each next one when the one before shuts on its item. Asked again for the order being
        loaded, the current door opens again (closed empty, say).

        Raises ``courier_required``, ``order_not_expected`` (no order of the staff's
        retailer with that reference waits here), ``order_loaded``, ``loading_in_progress``
        (another order is being loaded), and the deposit's door refusals.
        """
        courier = self.agent.check_courier().courier
        reference = reference.strip()
        if "#" in reference:
            reference = reference.rsplit("#", 1)[0]
        current = self.loading
        if current is not None and current.courier_id == courier.id:
            if current.reference == reference and current.current is not None:
                await self._open_item(current)
                return self.loading_view()
            if current.current is not None:
                raise Conflict(
                    f"Order {current.reference} is being loaded: finish it first.",
                    code="loading_in_progress",
                    extra={"reference": current.reference},
                )
        items = [
            i for i in self.agent.store.order_items(courier.org_id) if reference_of(i) == reference
        ]
        if not items:
            raise NotFound(
                "No order with this reference waits to be loaded at this locker.",
                code="order_not_expected",
            )
        if all(i.deposited for i in items):
            raise Conflict("This order is loaded already.", code="order_loaded")
        assert items[0].order_id is not None
        self.loading = Loading(
            items[0].order_id,
            reference,
            courier.id,
            [
                LoadingItem(i.parcel_id, i.tracking_number, "loaded" if i.deposited else "waiting")
                for i in sorted(items, key=lambda i: int(i.tracking_number.rsplit("#", 1)[1]))
            ],
        )
        log.info("order loading", extra={"order_id": self.loading.order_id})
        await self._open_item(self.loading)
        return self.loading_view()

    async def _open_item(self, loading: Loading) -> None:
        item = loading.current
        if item is None:
            return
        try:
            answer = await self.agent.courier_deposit(item.tracking_number)
        except DomainError as refused:
            loading.problem = refused.code
            raise
        loading.problem = None
        item.state, item.compartment = "open", answer["compartment"]

    def loading_view(self) -> dict[str, Any]:
        """The order being loaded: each item's state and door; ``done`` once every item is
        in (the server makes the order ready when their deposits reach it: ``sent``)."""
        loading = self.loading
        if loading is None:
            return {"loading": None}
        done = loading.current is None
        return {
            "loading": {
                "order_id": loading.order_id,
                "reference": loading.reference,
                "items": [
                    {
                        "parcel_id": i.parcel_id,
                        "tracking_number": i.tracking_number,
                        "state": i.state,
                        "compartment": i.compartment,
                    }
                    for i in loading.items
                ],
                "done": done,
                "sent": done and self.agent.online and self.agent.store.queued() == 0,
                "problem": loading.problem,
            }
        }

    def _door_closed(self, compartment: Compartment) -> None:
        loading = self.loading
        item = loading.current if loading is not None else None
        if loading is None or item is None or item.compartment is None:
            return
        if item.compartment["id"] != compartment.id or item.state != "open":
            return
        found = self.agent.store.expected_by_tracking(item.tracking_number)
        if not any(e.parcel_id == item.parcel_id and e.deposited for e in found):
            # Shut on an empty compartment: the same door opens again when asked.
            item.state = "waiting"
            return
        item.state = "loaded"
        if loading.current is not None:
            self._next = asyncio.get_running_loop().create_task(self._open_next(loading))
        else:
            log.info("order loaded", extra={"order_id": loading.order_id})

    async def _open_next(self, loading: Loading) -> None:
        try:
            await self._open_item(loading)
        except DomainError as refused:
            log.warning("next door of the order did not open", extra={"code": refused.code})

    # --- dropping a return -------------------------------------------------------------------

    async def drop_off(self, code: str) -> dict[str, Any]:
        """Take a return by its code: the server checks it, picks the compartment and records
        the drop-off (the customer's receipt goes out); this kiosk opens the door.

        Raises ``needs_network`` offline, the server's refusals (``invalid_code``,
        ``return_code_used``, ``code_expired``, ``site_full``), ``door_not_opened``,
        ``board_fault``.
        """
        if not self.agent.online:
            raise NeedsNetwork("Returns need the network; please try again later.")
        try:
            answer = await self.agent.link.drop_off(code)
        except Unreachable as down:
            raise NeedsNetwork("Returns need the network; please try again later.") from down
        compartment = self.agent.store.compartment(answer["compartment"]["id"])
        opened = await self._open(compartment, RETURN, answer["parcel_id"])
        if opened is not None:
            log.error(
                "return dropped off but its door did not open",
                extra={"parcel_id": answer["parcel_id"], "code": opened.code},
            )
            raise opened
        return {
            "return_id": answer["return_id"],
            "reference": answer["reference"],
            "parcel_id": answer["parcel_id"],
            "compartment": answer["compartment"],
        }

    async def _open(
        self, compartment: Compartment | None, purpose: str, parcel_id: str
    ) -> DomainError | None:
        """Open one door the server named; the refusal to raise when it did not open."""
        agent = self.agent
        usable = agent.openable([compartment]) if compartment is not None else []
        if not usable:
            return BoardUnavailable("This compartment cannot be opened from this kiosk.")
        opened = await agent.open_doors(usable, purpose, agent.clock(), parcel_id=parcel_id)
        state = opened.states.get(usable[0].id)
        if state == STUCK:
            return DoorNotOpened("The door did not open; it is out of service now.")
        if not opened.ok(usable):
            return BoardUnavailable("The lock board does not answer; please try again.")
        return None

    # --- collecting --------------------------------------------------------------------------

    async def manifest(self) -> dict[str, Any]:
        """What the signed-in courier would collect here, without starting a visit: ``count``
        parcels, of which ``returns`` and ``expired``. Raises ``courier_required`` and
        ``needs_network``."""
        courier = self.agent.check_courier().courier
        manifest = await self._ask(self.agent.link.collection(courier.id))
        kinds = [item["kind"] for item in manifest["items"]]
        return {
            "count": len(kinds),
            "returns": kinds.count("return"),
            "expired": kinds.count("expired"),
        }

    async def collection(self) -> dict[str, Any]:
        """Start a collection visit for the signed-in courier: the site's manifest for their
        organization (returns and expired parcels); the first door opens."""
        courier = self.agent.check_courier().courier
        manifest = await self._ask(self.agent.link.collection(courier.id))
        self.visit = Visit(
            courier.id,
            [
                CollectionItem(
                    i["parcel_id"],
                    i["tracking_number"],
                    i["kind"],
                    i.get("compartment"),
                    i.get("reference"),
                )
                for i in manifest["items"]
            ],
        )
        await self._open_next_collection(self.visit)
        return self.collection_view()

    async def scan_out(self, tracking_number: str) -> dict[str, Any]:
        """The courier scans a parcel whose door is open out of the manifest; the next door
        opens. Raises ``not_in_manifest``, ``door_closed`` (its door has not been opened
        yet), ``already_scanned``, ``needs_network`` and the server's refusals."""
        visit = self._visit()
        tracking_number = tracking_number.strip()
        item = _listed(i for i in visit.items if i.tracking_number == tracking_number)
        return await self._resolve(visit, item, "collected")

    async def missing(self, parcel_id: str) -> dict[str, Any]:
        """The open door's compartment is empty: a discrepancy (the server audits it, raises
        a ``collection_discrepancy`` alarm and tells the carrier); the next door opens."""
        visit = self._visit()
        item = _listed(i for i in visit.items if i.parcel_id == parcel_id)
        return await self._resolve(visit, item, "missing")

    async def _resolve(self, visit: Visit, item: CollectionItem, outcome: str) -> dict[str, Any]:
        if item.state in ("collected", "missing"):
            raise Conflict("This parcel has been scanned already.", code="already_scanned")
        if item.state != "open":
            raise Conflict(
                "Take the parcels in turn: this one's door is not open yet.", code="door_closed"
            )
        await self._ask(self.agent.link.scan_out(item.parcel_id, visit.courier_id, outcome))
        item.state = outcome
        await self._open_next_collection(visit)
        return self.collection_view()

    async def _open_next_collection(self, visit: Visit) -> None:
        if any(i.state == "open" for i in visit.items):
            return
        for item in visit.items:
            if item.state != "waiting":
                continue
            compartment_id = (item.compartment or {}).get("id")
            compartment = self.agent.store.compartment(compartment_id) if compartment_id else None
            refused = await self._open(compartment, PICKUP, item.parcel_id)
            if refused is None:
                item.state, visit.problem = "open", None
                return
            # A door that does not open is skipped; the summary says what was left.
            visit.problem = refused.code
            item.state = "not_opened"

    def collection_view(self) -> dict[str, Any]:
        """The visit: each parcel's state; ``done`` and the counts once none waits."""
        visit = self.visit
        if visit is None:
            return {"collection": None}
        count = {s: sum(i.state == s for i in visit.items) for s in ("collected", "missing")}
        return {
            "collection": {
                "items": [
                    {
                        "parcel_id": i.parcel_id,
                        "tracking_number": i.tracking_number,
                        "kind": i.kind,
                        "reference": i.reference,
                        "compartment": i.compartment,
                        "state": i.state,
                    }
                    for i in visit.items
                ],
                "count": len(visit.items),
                "collected": count["collected"],
                "missing": count["missing"],
                "done": not any(i.state in ("waiting", "open") for i in visit.items),
                "problem": visit.problem,
            }
        }

    def finish(self) -> dict[str, Any]:
        """End the visit; its summary."""
        summary = self.collection_view()
        self.visit = None
        return summary

    def _visit(self) -> Visit:
        courier = self.agent.check_courier().courier
        if self.visit is None or self.visit.courier_id != courier.id:
            raise Conflict("Start a collection first.", code="no_collection")
        return self.visit

    async def _ask(self, call: Any) -> dict[str, Any]:
        if not self.agent.online:
            call.close()
            raise NeedsNetwork("Collection needs the network; please try again later.")
        try:
            answer: dict[str, Any] = await call
        except Unreachable as down:
            raise NeedsNetwork("Collection needs the network; please try again later.") from down
        return answer


def _listed(found: Iterator[CollectionItem]) -> CollectionItem:
    """The first of ``found``, the visit's items that match; ``not_in_manifest`` if none."""
    item = next(found, None)
    if item is None:
        raise NotFound(
            "This parcel is not on your collection list for this locker.", code="not_in_manifest"
        )
    return item
