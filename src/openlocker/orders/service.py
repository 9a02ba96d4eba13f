"""Click & collect orders: reserve, load, collect, cancel; zone faults.

An order is the retailer's view of several parcels collected together. Each item is a parcel
in the parcel lifecycle (``parcels.service``): it is announced with a reserved compartment,
deposited when staff load it, picked up, expired; the order's status follows from its items'
(``order_status``). One credential set opens every item (``credential_sets.order_id``).
Every status change of an order is an audit event and a ``webhook.carrier`` message named
``order.<status>``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from openlocker.access import service as access
from openlocker.audit.service import Message, enqueue, record
from openlocker.core import idempotency, pages
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.core.sql import Row, Tx
from openlocker.fleet import alarms
from openlocker.lockers import allocation
from openlocker.lockers.service import (
    SiteInfo,
    access_site_info,
    access_zone,
    do_claim_compartment,
    load_sizes,
)
from openlocker.orders.schemas import (
    OrderIn,
    OrderItemOut,
    OrderList,
    OrderOut,
    OrderStatus,
    ZoneFaultOut,
)
from openlocker.orgs.service import Principal
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import CompartmentRef, PickupCredentials, PickupOut

#: How long after a pickup a kiosk may report an item of it still in its compartment.
LEFT_REPORT_WINDOW = timedelta(minutes=10)
#: The longest an order may wait for collection, from its creation.
MAX_WINDOW = timedelta(days=14)
#: Order statuses in which nothing waits in the locker any more.
CLOSED = ("collected", "expired", "cancelled")


@dataclass(frozen=True)
class OrderAnswer:
    """``create_order``'s result; ``replayed`` for an idempotent retry."""

    status_code: int
    order: OrderOut
    replayed: bool = False


@dataclass(slots=True)
class OrderRow:
    """An order as stored (the ``orders`` columns, in order)."""

    id: str
    retailer_org_id: str
    reference: str
    site_id: str
    status: str
    recipient: dict[str, Any]
    notify: str
    age_restricted: bool
    item_count: int
    ready_from: datetime
    collect_by: datetime
    created_at: datetime
    ready_at: datetime | None = None
    closed_at: datetime | None = None


_COLUMNS = [f.name for f in fields(OrderRow)]
_TIMES = {i for i, name in enumerate(_COLUMNS) if name.endswith(("_at", "_from", "_by"))}
_SELECT = "SELECT " + ", ".join(f"o.{c}" for c in _COLUMNS) + " FROM orders o"


def _order(tx: Tx, row: Row) -> OrderRow:
    values = list(row)
    for i in _TIMES:
        values[i] = tx.time(values[i])
    values[_COLUMNS.index("recipient")] = tx.json(values[_COLUMNS.index("recipient")])
    values[_COLUMNS.index("age_restricted")] = bool(values[_COLUMNS.index("age_restricted")])
    return OrderRow(*values)


def order_status(items: Sequence[str], *, past_deadline: bool) -> OrderStatus:
    """An order's status from its items' parcel statuses (a plain function).

    ``reserved`` until the first item is loaded, ``loading`` until the last, ``ready`` while
    every item waits, ``partially_collected`` once some are out; when nothing waits any more
    (or the deadline passed before loading ended): ``collected`` if every item was picked up,
    ``partially_collected`` if some were, else ``expired``. ``cancelled`` is the retailer's
    act, not a sum of items, and is never returned here.
    """
    count = Counter(items)
    if count["announced"] and not past_deadline:
        return "loading" if count["deposited"] or count["picked_up"] else "reserved"
    if count["deposited"]:
        return "partially_collected" if count["picked_up"] else "ready"
    if count["picked_up"] == len(items):
        return "collected"
    return "partially_collected" if count["picked_up"] else "expired"


def _check_retailer(principal: Principal) -> None:
    principal.check_scope("parcels:write")
    if principal.org_kind != "retailer" and not principal.is_admin:
        raise Forbidden("Only a retailer's key places orders.", code="not_retailer")


def access_order(
    tx: Tx, principal: Principal, order_id: str, *, lock: bool = False, kiosk: bool = False
) -> OrderRow:
    """The order if the principal may act on it: its retailer's key, an operator, or with
    ``kiosk`` the kiosk key of its site. Anyone else's order is a 404, like a missing one."""
    row = tx.one(_SELECT + " WHERE o.id = :id" + (tx.lock("o") if lock else ""), {"id": order_id})
    order = None if row is None else _order(tx, row)
    if order is None or not (
        principal.is_admin
        or (order.retailer_org_id == principal.org_id and "parcels:write" in principal.scopes)
        or (kiosk and f"kiosk:{order.site_id}" in principal.scopes)
    ):
        raise NotFound(f"No order {order_id!r}.", code="order_not_found")
    return order


def _items(tx: Tx, order_id: str, *, lock: bool = False) -> list[parcels.ParcelRow]:
    """The order's items in the order the retailer listed them (``<reference>#<n>``)."""
    items = parcels.select_parcels(tx, "p.order_id = :order_id", {"order_id": order_id}, lock=lock)
    return sorted(items, key=_item_number)


def _item_number(item: parcels.ParcelRow) -> int:
    return int(item.tracking_number.rsplit("#", 1)[1])


def _item_view(item: parcels.ParcelRow) -> OrderItemOut:
    view = parcels.parcel_view(item)
    return OrderItemOut(
        parcel_id=item.id,
        tracking_number=item.tracking_number,
        status=view.status,
        size=item.size_code,
        dimensions_mm=view.dimensions_mm,
        temperature=view.temperature,
        compartment=view.compartment,
        dwell_deadline=item.dwell_deadline,
        deposited_at=item.deposited_at,
        picked_up_at=item.picked_up_at,
    )


def order_view(
    order: OrderRow,
    items: Iterable[parcels.ParcelRow],
    *,
    opened: list[CompartmentRef] | None = None,
    pickup: PickupCredentials | None = None,
) -> OrderOut:
    return OrderOut(
        id=order.id,
        reference=order.reference,
        site_id=order.site_id,
        status=order.status,
        notify=order.notify,
        age_restricted=order.age_restricted,
        ready_from=order.ready_from,
        collect_by=order.collect_by,
        created_at=order.created_at,
        ready_at=order.ready_at,
        closed_at=order.closed_at,
        items=[_item_view(item) for item in items],
        opened=opened,
        pickup=pickup,
    )


def _webhook(order: OrderRow, event: str, at: datetime, **extra: Any) -> Message:
    """The retailer's webhook, in the shape of a parcel's (``event``, ``org_id``, ``status``)."""
    return Message(
        "webhook.carrier",
        {
            "event": event,
            "org_id": order.retailer_org_id,
            "order_id": order.id,
            "reference": order.reference,
            "status": order.status,
            "at": at.isoformat(),
            **extra,
        },
    )


def _set(tx: Tx, order: OrderRow, **changes: Any) -> None:
    for name, value in changes.items():
        setattr(order, name, value)
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    tx.defer(f"UPDATE orders SET {assignments} WHERE id = :id", {**changes, "id": order.id})


def _do_settle(
    tx: Tx, actor: Actor, order: OrderRow, items: Sequence[parcels.ParcelRow], now: datetime
) -> None:
    """Give the (locked) order the status its items add up to; a change is audited and
    sent to the retailer. A closing order's credentials are voided."""
    if order.status == "cancelled":
        return
    status = order_status([i.status for i in items], past_deadline=now >= order.collect_by)
    if status == order.status:
        return
    changes: dict[str, Any] = {"status": status}
    waiting = any(item.status in ("announced", "deposited") for item in items)
    if not waiting and order.closed_at is None:
        changes["closed_at"] = now
    if status == "ready" and order.ready_at is None:
        changes["ready_at"] = now
    _set(tx, order, **changes)
    record(
        tx,
        f"order.{status}",
        actor,
        now,
        site_id=order.site_id,
        data={"order_id": order.id, "reference": order.reference},
    )
    enqueue(tx, now, _webhook(order, f"order.{status}", now))


def _need(item: Any) -> allocation.ParcelNeed:
    dims = item.dimensions_mm
    return allocation.ParcelNeed(
        (dims.length, dims.width, dims.height) if dims else None, item.size, item.temperature
    )


def _check_window(request: OrderIn, now: datetime) -> None:
    if request.collect_by <= request.ready_from:
        raise InvalidInput("collect_by must come after ready_from.", code="invalid_window")
    if request.collect_by <= now:
        raise InvalidInput("collect_by has passed already.", code="invalid_window")
    if request.collect_by > now + MAX_WINDOW:
        raise InvalidInput(
            f"collect_by may be at most {MAX_WINDOW.days} days ahead.", code="invalid_window"
        )


def _check_zones(
    tx: Tx,
    sizes: dict[str, allocation.SizeClass],
    site: SiteInfo,
    needs: Sequence[allocation.ParcelNeed],
) -> None:
    """Refuse items the site can never hold: a zone it lacks, or larger than all of a zone."""
    rows = tx.all(
        "SELECT DISTINCT temperature, size_code FROM compartments WHERE site_id = :site_id",
        {"site_id": site.id},
    )
    zones: dict[str, list[allocation.SizeClass]] = {}
    for temperature, size_code in rows:
        zones.setdefault(temperature, []).append(sizes[size_code])
    for need in needs:
        if need.temperature not in zones:
            raise InvalidInput(
                f"Site {site.name!r} has no {need.temperature} compartments.",
                code="zone_not_at_site",
                extra={"temperature": need.temperature},
            )
        box = allocation.need_dimensions(need, sizes)
        if not any(allocation.fits(box, size) for size in zones[need.temperature]):
            raise InvalidInput(
                f"An item is larger than every {need.temperature} compartment of the site.",
                code="too_large",
                extra={"temperature": need.temperature},
            )


def _order_site_full(
    tx: Tx,
    sizes: dict[str, allocation.SizeClass],
    site: SiteInfo,
    needs: Sequence[allocation.ParcelNeed],
) -> Conflict:
    """``site_full`` naming the nearest sites whose free compartments take the whole order."""
    free: dict[str, dict[tuple[str, str], int]] = {}
    for site_id, size_code, temperature, count in tx.all(
        "SELECT site_id, size_code, temperature, COUNT(*) FROM compartments"
        " WHERE state = 'free' AND site_id <> :site_id GROUP BY site_id, size_code, temperature",
        {"site_id": site.id},
    ):
        free.setdefault(site_id, {})[(size_code, temperature)] = count
    others = tx.all(
        "SELECT id, name, lat, lon FROM sites WHERE id <> :site_id", {"site_id": site.id}
    )
    rooms = [
        allocation.SiteRoom(i, name, lat, lon, allocation.takes_all(needs, free.get(i, {}), sizes))
        for i, name, lat, lon in others
    ]
    return Conflict(
        f"Site {site.name!r} has no free compartments for the whole order.",
        code="site_full",
        extra={
            "alternatives": [
                {"site_id": room.site_id, "name": room.name, "distance_m": metres}
                for room, metres in allocation.nearest_with_room(site.lat, site.lon, rooms)
            ]
        },
    )


_INSERT = (
    f"INSERT INTO orders ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
    " ON CONFLICT (retailer_org_id, reference) DO NOTHING RETURNING id"
)


def create_order(
    ctx: Context, principal: Principal, request: OrderIn, idempotency_key: str | None = None
) -> OrderAnswer:
    """Reserve a compartment of the right zone for every item, all or none, in one transaction.

    Racing orders never get the same compartment (the parcel claim's guarantees). Raises
    ``site_not_found``, ``unknown_size``, ``zone_not_at_site``, ``too_large``,
    ``invalid_window``, ``site_full`` (with the nearest sites that take the whole order),
    ``duplicate_reference``, ``idempotency_key_reused``.
    """
    _check_retailer(principal)
    digest = idempotency.request_digest(request.model_dump(mode="json"))
    needs = [_need(item) for item in request.items]
    with ctx.db.sql.transaction() as tx:
        if idempotency_key is not None:
            stored = idempotency.stored_answer(
                tx, principal.org_id, "order", idempotency_key, digest
            )
            if stored is not None:
                return OrderAnswer(
                    stored.status_code, OrderOut.model_validate_json(stored.body), True
                )
        now = ctx.clock()
        _check_window(request, now)
        site = access_site_info(ctx, tx, request.site_id)
        sizes = load_sizes(ctx, tx)
        _check_zones(tx, sizes, site, needs)
        order = OrderRow(
            id=new_id("ord"),
            retailer_org_id=principal.org_id,
            reference=request.reference,
            site_id=site.id,
            status="reserved",
            recipient=request.recipient.model_dump(mode="json", exclude_none=True),
            notify=request.notify,
            age_restricted=request.age_restricted,
            item_count=len(request.items),
            ready_from=request.ready_from,
            collect_by=request.collect_by,
            created_at=now,
        )
        record(
            tx,
            "order.created",
            principal.actor,
            now,
            site_id=site.id,
            data={"order_id": order.id, "reference": order.reference, "items": len(needs)},
        )
        params = {c: getattr(order, c) for c in _COLUMNS}
        params["recipient"] = tx.json_param(order.recipient)
        if tx.one(_INSERT, params) is None:
            raise Conflict(
                f"Order {request.reference!r} exists already.",
                code="duplicate_reference",
                extra={
                    "order_id": tx.scalar(
                        "SELECT id FROM orders WHERE retailer_org_id = :org AND reference = :ref",
                        {"org": principal.org_id, "ref": request.reference},
                    )
                },
            )
        items = _do_reserve(ctx, tx, principal.actor, site, order, request, needs, sizes, now)
        enqueue(tx, now, _webhook(order, "order.created", now))
        answer = OrderAnswer(201, order_view(order, items))
        if idempotency_key is not None:
            idempotency.remember_answer(
                tx,
                ctx,
                principal.org_id,
                "order",
                idempotency_key,
                digest,
                201,
                answer.order.model_dump_json(),
            )
    return answer


def _do_reserve(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    order: OrderRow,
    request: OrderIn,
    needs: Sequence[allocation.ParcelNeed],
    sizes: dict[str, allocation.SizeClass],
    now: datetime,
) -> list[parcels.ParcelRow]:
    """Announce the items with a reserved compartment each; the largest claim first, so a
    small item never takes the only compartment a large one fits."""
    # Orders at a site take turns: a claim skips rows another order holds (SKIP LOCKED), and
    # an order that then fails whole would have made the other fail for nothing.
    tx.serialize(_claims_lock_key(site.id))
    items: list[parcels.ParcelRow] = []
    for n, spec in enumerate(request.items, start=1):
        dims = spec.dimensions_mm
        items.append(
            parcels.ParcelRow(
                id=new_id("prc"),
                carrier_org_id=order.retailer_org_id,
                tracking_number=f"{order.reference}#{n}",
                site_id=site.id,
                status="announced",
                size_code=spec.size,
                length_mm=dims.length if dims else None,
                width_mm=dims.width if dims else None,
                height_mm=dims.height if dims else None,
                weight_g=None,
                temperature=spec.temperature,
                accessible=False,
                recipient=order.recipient,
                notify=order.notify,
                reserved_until=order.collect_by,
                announced_at=now,
                order_id=order.id,
            )
        )
    largest_first = sorted(
        range(len(needs)),
        key=lambda i: -allocation.fitting_sizes(needs[i], sizes.values())[0].volume_mm3,
    )
    for i in largest_first:
        try:
            claimed = do_claim_compartment(ctx, tx, site, needs[i], state="reserved")
        except Conflict as full:
            if full.code != "site_full":
                raise
            raise _order_site_full(tx, sizes, site, needs) from None
        item = items[i]
        item.compartment_id = claimed.id
        item.compartment_label = claimed.label
        item.compartment_size = claimed.size_code
        record(
            tx,
            "parcel.announced",
            actor,
            now,
            site_id=site.id,
            parcel_id=item.id,
            compartment_id=claimed.id,
            data={"tracking_number": item.tracking_number, "reserved": True, "order_id": order.id},
        )
    parcels.insert_parcels(tx, items)
    return items


def _claims_lock_key(site_id: str) -> int:
    digest = hashlib.blake2b(f"order-claims:{site_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def get_order(ctx: Context, principal: Principal, order_id: str) -> OrderOut:
    with ctx.db.sql.transaction(write=False) as tx:
        order = access_order(tx, principal, order_id, kiosk=True)
        return order_view(order, _items(tx, order.id))


def list_orders(
    ctx: Context,
    principal: Principal,
    *,
    status: str | None = None,
    site_id: str | None = None,
    reference: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> OrderList:
    """The principal's orders, newest first, ``limit`` at a time; pass ``next_cursor`` on."""
    principal.check_scope("parcels:read")
    filters = {
        "o.retailer_org_id": None if principal.is_admin else principal.org_id,
        "o.status": status,
        "o.site_id": site_id,
        "o.reference": reference,
    }
    sql, params = pages.newest_first(_SELECT, "o.id", filters, cursor, limit)
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all(sql, params)
        orders = [_order(tx, row) for row in rows[:limit]]
        items: dict[str, list[parcels.ParcelRow]] = {order.id: [] for order in orders}
        if orders:
            ids = {f"o{i}": order.id for i, order in enumerate(orders)}
            listed = parcels.select_parcels(
                tx, f"p.order_id IN ({', '.join(':' + k for k in ids)})", ids
            )
            for item in sorted(listed, key=_item_number):
                items[item.order_id or ""].append(item)
    next_cursor = pages.encode_cursor(orders[-1].id) if len(rows) > limit else None
    return OrderList(items=[order_view(o, items[o.id]) for o in orders], next_cursor=next_cursor)


def _transition_error(order: OrderRow, action: str) -> Conflict:
    return Conflict(
        f"An order that is {order.status} cannot be {action}.",
        code="invalid_transition",
        extra={"order_status": order.status},
    )


def load_order(
    ctx: Context, principal: Principal, order_id: str, parcel_id: str | None = None
) -> OrderOut:
    """Load one item (``parcel_id``, as a kiosk does door by door) or every item left.

    Each loaded item's door opens (``opened``). When the last one is in, the order is
    ``ready`` and gets its one credential set: in the answer under ``pickup`` for ``notify:
    sender``, else sealed in the recipient's message. Raises ``order_not_found``,
    ``parcel_not_found``, ``invalid_transition``, ``site_full`` (a lapsed reservation's
    compartment was taken and no other fits).
    """
    with ctx.db.sql.transaction() as tx:
        order = access_order(tx, principal, order_id, lock=True, kiosk=True)
        if order.status not in ("reserved", "loading"):
            raise _transition_error(order, "loaded")
        items = _items(tx, order.id, lock=True)
        loading = [i for i in items if i.status == "announced"]
        if parcel_id is not None:
            loading = [i for i in items if i.id == parcel_id]
            if not loading:
                raise NotFound(
                    f"Order {order.id!r} has no item {parcel_id!r}.", code="parcel_not_found"
                )
            if loading[0].status != "announced":
                raise Conflict(
                    "This item is loaded already.",
                    code="invalid_transition",
                    extra={"parcel_status": loading[0].status},
                )
        site = access_site_info(ctx, tx, order.site_id)
        now = ctx.clock()
        if now >= order.collect_by:
            raise _transition_error(order, "loaded after its collect_by")
        opened, pickup = do_load(
            ctx, tx, principal.actor, site, order, items, loading, now, door=parcels.commanded(ctx)
        )
        return order_view(order, items, opened=opened, pickup=pickup)


def do_load(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    order: OrderRow,
    items: Sequence[parcels.ParcelRow],
    loading: Sequence[parcels.ParcelRow],
    now: datetime,
    *,
    door: parcels.Door,
    into: str | None = None,
    **data: Any,
) -> tuple[list[CompartmentRef], PickupCredentials | None]:
    """Deposit ``loading`` (announced items of the locked ``order``; ``into``: the one
    compartment a kiosk put its one item in) and settle the order; the last item in makes it
    ``ready`` with its one credential set. Returns the doors opened and, for ``notify:
    sender``, the credentials. ``data`` joins each deposit's audit event."""
    opened = []
    for item in loading:
        claimed = parcels.do_deposit(
            ctx, tx, actor, site, item, now, door=door, latest=order.collect_by, into=into, **data
        )
        opened.append(CompartmentRef(id=claimed.id, label=claimed.label, size=claimed.size_code))
    _do_settle(tx, actor, order, items, now)
    pickup = None
    if order.status == "ready":
        pickup = _do_issue(ctx, tx, site, order, items)
    return opened, pickup


def lock_order(tx: Tx, order_id: str) -> tuple[OrderRow, list[parcels.ParcelRow]]:
    """The order and its items, locked in that order (as every order use case locks them)."""
    row = tx.one(_SELECT + " WHERE o.id = :id" + tx.lock("o"), {"id": order_id})
    if row is None:
        raise NotFound(f"No order {order_id!r}.", code="order_not_found")
    order = _order(tx, row)
    return order, _items(tx, order.id, lock=True)


def _do_issue(
    ctx: Context, tx: Tx, site: SiteInfo, order: OrderRow, items: Sequence[parcels.ParcelRow]
) -> PickupCredentials | None:
    """The order's one credential set, valid until its last item's deadline."""
    deadlines = [item.dwell_deadline for item in items if item.dwell_deadline is not None]
    pickup, message = parcels.issue_pickup(
        tx,
        ctx,
        site,
        parcel_id=items[0].id,
        order_id=order.id,
        expires_at=max(deadlines),
        recipient=order.recipient,
        notify=order.notify,
        about={"order_id": order.id, "reference": order.reference, "items": len(items)},
    )
    if message is not None:
        enqueue(tx, ctx.clock(), message)
    return pickup


def reissue_credentials(ctx: Context, principal: Principal, order_id: str) -> OrderOut:
    """Void a ready (or partly collected) order's credential set and issue a fresh one for
    the items still waiting (audited): for a retailer whose load answer was lost, or a
    customer who lost the message. With ``notify: sender`` the answer carries the new
    credentials, else they go to the customer in a new message. Each call voids the set
    before it, so a retry is safe. Raises ``order_not_found``, ``invalid_transition``.
    """
    with ctx.db.sql.transaction() as tx:
        order = access_order(tx, principal, order_id, lock=True)
        if order.status not in ("ready", "partially_collected"):
            raise _transition_error(order, "given new credentials")
        items = _items(tx, order.id, lock=True)
        waiting = [item for item in items if item.status == "deposited"]
        if not waiting:
            raise _transition_error(order, "given new credentials")
        now = ctx.clock()
        access.do_void_order_credentials(tx, order.id, now)
        record(
            tx,
            "order.credentials_reissued",
            principal.actor,
            now,
            site_id=order.site_id,
            data={"order_id": order.id, "reference": order.reference, "items": len(waiting)},
        )
        site = access_site_info(ctx, tx, order.site_id)
        pickup = _do_issue(ctx, tx, site, order, waiting)
        return order_view(order, items, pickup=pickup)


def cancel_order(ctx: Context, principal: Principal, order_id: str) -> OrderOut:
    """Cancel an order before any item is loaded; its compartments are freed."""
    with ctx.db.sql.transaction() as tx:
        order = access_order(tx, principal, order_id, lock=True)
        if order.status != "reserved":
            raise _transition_error(order, "cancelled")
        items = _items(tx, order.id, lock=True)
        now = ctx.clock()
        for item in items:
            if item.status == "announced":
                parcels.do_cancel(tx, principal.actor, item, now)
        _set(tx, order, status="cancelled", closed_at=now)
        record(
            tx,
            "order.cancelled",
            principal.actor,
            now,
            site_id=order.site_id,
            data={"order_id": order.id, "reference": order.reference},
        )
        enqueue(tx, now, _webhook(order, "order.cancelled", now))
        return order_view(order, items)


def do_pick_up_order(
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    order_id: str,
    kind: str,
    now: datetime,
    *,
    door: parcels.Door,
    opened: Collection[str] | None = None,
) -> PickupOut:
    """Open every compartment of the order still holding an item (its code matched, its
    first item is locked). Each item is picked up as a parcel is; the set is used up.

    ``opened``: the compartments a kiosk already opened with the order's code; the items in
    them are picked up (an expired one too: it is gone), and the set stays valid while
    another item still waits."""
    order, items = lock_order(tx, order_id)
    if opened is None:
        waiting = [item for item in items if item.status == "deposited"]
    else:
        waiting = [
            item
            for item in items
            if item.status in ("deposited", "expired") and item.compartment_id in opened
        ]
    if not waiting:
        raise Conflict(
            f"Nothing of order {order.reference!r} waits here any more.",
            code="invalid_transition",
            extra={"order_status": order.status},
        )
    compartments = []
    for item in waiting:
        match = access.Match(
            item.id,
            item.status,
            item.tracking_number,
            item.carrier_org_id,
            item.compartment_id,
            item.compartment_label,
            item.compartment_size,
        )
        compartment = parcels.do_pick_up_item(
            tx, actor, site, match, kind, now, door=door, order_id=order.id
        )
        assert compartment is not None, "a waiting item is in a compartment"
        compartments.append(compartment)
        item.status, item.picked_up_at = "picked_up", now
    if not any(item.status == "deposited" for item in items):
        access.do_void_order_credentials(tx, order.id, now, used_kind=kind)
    _do_settle(tx, actor, order, items, now)
    return PickupOut(
        parcel_id=waiting[0].id,
        tracking_number=waiting[0].tracking_number,
        status="picked_up",
        compartment=compartments[0],
        compartments=compartments,
        order_id=order.id,
        age_restricted=order.age_restricted,
    )


def report_left(
    ctx: Context, principal: Principal, order_id: str, parcel_id: str, reason: str
) -> OrderOut:
    """A kiosk reports an item of a pickup still in its compartment (its door did not open,
    or the customer left it): within ``LEFT_REPORT_WINDOW`` of the pickup and before its
    deadline it waits again, and the order's code opens it again until then.

    Raises ``order_not_found``, ``parcel_not_found``, ``invalid_transition`` (the item was
    not picked up), ``report_too_late``, ``compartment_reused`` (its compartment went to
    another parcel meanwhile: the operator must look).
    """
    with ctx.db.sql.transaction() as tx:
        order = access_order(tx, principal, order_id, lock=True, kiosk=True)
        items = _items(tx, order.id, lock=True)
        item = next((i for i in items if i.id == parcel_id), None)
        if item is None:
            raise NotFound(
                f"Order {order.id!r} has no item {parcel_id!r}.", code="parcel_not_found"
            )
        if item.status != "picked_up" or item.picked_up_at is None:
            raise Conflict(
                "Only a picked up item can be reported left behind.",
                code="invalid_transition",
                extra={"parcel_status": item.status},
            )
        now = ctx.clock()
        assert item.dwell_deadline is not None
        if now > item.picked_up_at + LEFT_REPORT_WINDOW or now >= item.dwell_deadline:
            raise Conflict(
                f"Report a left item within {LEFT_REPORT_WINDOW.seconds // 60} minutes of the "
                "pickup and before its deadline.",
                code="report_too_late",
            )
        taken = tx.one(
            "UPDATE compartments SET state = 'occupied' WHERE id = :id AND state = 'free'"
            " RETURNING id",
            {"id": item.compartment_id},
        )
        if taken is None:
            raise Conflict(
                "The item's compartment was given to another parcel meanwhile.",
                code="compartment_reused",
            )
        picked_up_at = item.picked_up_at
        item.status, item.picked_up_at = "deposited", None
        tx.defer(
            "UPDATE parcels SET status = 'deposited', picked_up_at = NULL WHERE id = :id",
            {"id": item.id},
        )
        credentials = access.do_reactivate_order_credentials(tx, order.id, picked_up_at)
        record(
            tx,
            "parcel.left_behind",
            principal.actor,
            now,
            site_id=order.site_id,
            parcel_id=item.id,
            compartment_id=item.compartment_id,
            data={"order_id": order.id, "reason": reason, "credentials": credentials},
        )
        if order.closed_at is not None:
            _set(tx, order, closed_at=None)
        _do_settle(tx, principal.actor, order, items, now)
        return order_view(order, items)


def do_refresh_orders(tx: Tx, actor: Actor, order_ids: Iterable[str], now: datetime) -> None:
    """Settle orders whose items changed outside an order use case (expiry, lapsed
    reservations): items never loaded by ``collect_by`` are cancelled, a closed order's
    credentials are voided."""
    for order_id in sorted(order_ids):
        row = tx.one(_SELECT + " WHERE o.id = :id" + tx.lock("o"), {"id": order_id})
        assert row is not None, "a parcel's order exists (foreign key)"
        order = _order(tx, row)
        items = _items(tx, order.id, lock=True)
        if now >= order.collect_by:
            for item in items:
                if item.status == "announced":
                    parcels.do_cancel(tx, actor, item, now)
        _do_settle(tx, actor, order, items, now)
        if order.status in CLOSED or order.closed_at is not None:
            access.do_void_order_credentials(tx, order.id, now)


def report_zone_fault(
    ctx: Context, principal: Principal, site_id: str, temperature: str, measured: float | None
) -> ZoneFaultOut:
    """A zone of the site cannot hold its temperature: every parcel waiting in it must be
    collected within the zone's ``fault_hours``. Deadlines that were later move to then
    (audited, each parcel's owner told), orders' credentials follow, and each order's
    retailer gets ``order.zone_fault``. An operator or the site's kiosk reports it.
    """
    if not principal.is_admin:
        principal.check_kiosk(site_id)
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        if (
            tx.one(
                "SELECT 1 FROM compartments WHERE site_id = :s AND temperature = :t LIMIT 1",
                {"s": site.id, "t": temperature},
            )
            is None
        ):
            raise InvalidInput(
                f"Site {site.name!r} has no {temperature} compartments.",
                code="zone_not_at_site",
                extra={"temperature": temperature},
            )
        now = ctx.clock()
        until = now + timedelta(hours=access_zone(ctx, tx, site, temperature).fault_hours)
        moved = parcels.select_parcels(
            tx,
            "p.site_id = :s AND p.temperature = :t AND p.status = 'deposited'"
            " AND p.dwell_deadline > :until",
            {"s": site.id, "t": temperature, "until": until},
            lock=True,
        )
        for parcel in moved:
            parcels.do_move_deadline(tx, principal.actor, parcel, until, now, reason="zone_fault")
        order_ids = sorted({p.order_id for p in moved if p.order_id is not None})
        for order_id in order_ids:
            row = tx.one(_SELECT + " WHERE o.id = :id" + tx.lock("o"), {"id": order_id})
            assert row is not None
            order = _order(tx, row)
            waiting = [i for i in _items(tx, order.id) if i.status == "deposited"]
            latest = max(i.dwell_deadline for i in waiting if i.dwell_deadline is not None)
            access.do_cap_credential_expiry(tx, latest, order_id=order.id)
            record(
                tx,
                "order.zone_fault",
                principal.actor,
                now,
                site_id=site.id,
                data={"order_id": order.id, "temperature": temperature, "until": until.isoformat()},
            )
            enqueue(
                tx,
                now,
                _webhook(
                    order, "order.zone_fault", now, temperature=temperature, until=until.isoformat()
                ),
            )
        record(
            tx,
            "site.zone_fault",
            principal.actor,
            now,
            site_id=site.id,
            data={
                "temperature": temperature,
                "measured_celsius": measured,
                "until": until.isoformat(),
                "moved": len(moved),
            },
        )
        alarms.do_raise_alarm(
            tx,
            principal.actor,
            site.id,
            "temperature_fault",
            now,
            detail={"temperature": temperature, "measured_celsius": measured, "moved": len(moved)},
        )
    return ZoneFaultOut(
        site_id=site.id,
        temperature=temperature,
        collect_by=until,
        moved=len(moved),
        orders=order_ids,
    )
