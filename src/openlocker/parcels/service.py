"""The parcel lifecycle: announce, deposit, pickup, cancel, expire, return.

Each public function is one use case in one transaction. State changes write their audit
event and their outbox messages in that transaction. The use cases speak SQL through
``core.sql.Tx`` (no ORM on this path: it is the busiest code of a network), a few
statements each: see docs/operations.md for what each costs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from openlocker.access import presence
from openlocker.access import service as access
from openlocker.audit.service import Message, enqueue, record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from openlocker.core.idempotency import remember_answer, request_digest, stored_answer
from openlocker.core.ids import new_id
from openlocker.core.pages import encode_cursor, newest_first
from openlocker.core.sql import Row, Tx, insert_rows
from openlocker.lockers import allocation
from openlocker.lockers.service import (
    Claimed,
    SiteInfo,
    access_site_info,
    access_zone,
    check_fits_network,
    do_claim_compartment,
    load_sizes,
    site_full,
    suitable_free,
)
from openlocker.orgs.service import Principal
from openlocker.parcels.schemas import (
    AnnounceIn,
    CompartmentRef,
    Dimensions,
    ParcelList,
    ParcelOut,
    PickupCredentials,
    PickupIn,
    PickupOut,
)

SYSTEM_EXPIRY = Actor("system:expiry")
#: Whoever holds a parcel's pickup link (its recipient, or whom they passed it on to).
LINK_HOLDER = Actor("recipient:link")


@dataclass(frozen=True, slots=True)
class Door:
    """How a use case's doors open. With ``command_ttl`` the server tells the site's kiosk
    to open them (``kiosk.open_compartment``, which the kiosk may run for that long); without
    it the kiosk opened them itself (its own pickup or deposit, reported afterwards, or its
    ``door: "kiosk"`` call) and no command is queued."""

    command_ttl: timedelta | None

    def commands(
        self, site_id: str, compartment: Claimed, now: datetime, *, reason: str, parcel_id: str
    ) -> list[Message]:
        """The door command for ``compartment``, if the server is the one to open it."""
        if self.command_ttl is None:
            return []
        return [
            open_door(
                site_id, compartment, now, self.command_ttl, reason=reason, parcel_id=parcel_id
            )
        ]


def commanded(ctx: Context) -> Door:
    """Doors the server opens by a command valid for ``OPENLOCKER_COMMAND_TTL_S``."""
    return Door(timedelta(seconds=ctx.settings.command_ttl_s))


#: Doors the kiosk opened itself: nothing is queued.
KIOSK_OPENED = Door(None)


@dataclass(frozen=True)
class Answer:
    """A use case's result as the API returns it; ``replayed`` for idempotent retries."""

    status_code: int
    parcel: ParcelOut
    replayed: bool = False


# --- rows and views ------------------------------------------------------------------------


@dataclass(slots=True)
class ParcelRow:
    """A parcel as stored (the ``parcels`` columns, in order), with its compartment's name."""

    id: str
    carrier_org_id: str
    tracking_number: str
    site_id: str
    status: str
    size_code: str | None
    length_mm: int | None
    width_mm: int | None
    height_mm: int | None
    weight_g: int | None
    temperature: str
    accessible: bool
    recipient: dict[str, Any]
    notify: str
    compartment_id: str | None = None
    reserved_until: datetime | None = None
    dwell_deadline: datetime | None = None
    announced_at: datetime | None = None
    deposited_at: datetime | None = None
    picked_up_at: datetime | None = None
    cancelled_at: datetime | None = None
    expired_at: datetime | None = None
    returned_at: datetime | None = None
    collected_at: datetime | None = None
    order_id: str | None = None
    deadline_extended_at: datetime | None = None
    #: Not columns of ``parcels``: joined from the compartment.
    compartment_label: str | None = None
    compartment_size: str | None = None


_COLUMNS = [f.name for f in fields(ParcelRow)][:-2]
_TIMES = {i for i, name in enumerate(_COLUMNS) if name.endswith(("_at", "_until", "_deadline"))}
_RECIPIENT = _COLUMNS.index("recipient")
_ACCESSIBLE = _COLUMNS.index("accessible")
_SELECT = (
    "SELECT "
    + ", ".join(f"p.{c}" for c in _COLUMNS)
    + ", m.label, m.size_code FROM parcels p LEFT JOIN compartments m ON m.id = p.compartment_id"
)
_INSERT = (
    f"INSERT INTO parcels ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
    " ON CONFLICT (carrier_org_id, tracking_number) DO NOTHING RETURNING id"
)


def _parcel(tx: Tx, row: Row) -> ParcelRow:
    values = list(row)
    for i in _TIMES:
        values[i] = tx.time(values[i])
    values[_RECIPIENT] = tx.json(values[_RECIPIENT])
    values[_ACCESSIBLE] = bool(values[_ACCESSIBLE])
    return ParcelRow(*values)


def select_parcels(
    tx: Tx, where: str, params: dict[str, Any], *, lock: bool = False
) -> list[ParcelRow]:
    """The parcels matching ``where`` (over ``p``, the parcels, and ``m``, their compartments),
    by id; ``lock`` locks their rows for this transaction."""
    rows = tx.all(f"{_SELECT} WHERE {where} ORDER BY p.id" + (tx.lock("p") if lock else ""), params)
    return [_parcel(tx, row) for row in rows]


def insert_parcels(tx: Tx, parcels: list[ParcelRow]) -> None:
    """Store new parcels in one statement; ``duplicate_tracking_number`` when one is taken."""
    rows = []
    for parcel in parcels:
        row = {c: getattr(parcel, c) for c in _COLUMNS}
        row["recipient"] = tx.json_param(parcel.recipient)
        rows.append(row)
    sql, params = insert_rows("parcels", {}, rows)
    sql += " ON CONFLICT (carrier_org_id, tracking_number) DO NOTHING RETURNING id"
    inserted = {row[0] for row in tx.all(sql, params)}
    taken = [p.tracking_number for p in parcels if p.id not in inserted]
    if taken:
        raise Conflict(
            f"Tracking number {taken[0]!r} is already announced.", code="duplicate_tracking_number"
        )


def parcel_view(parcel: ParcelRow, pickup: PickupCredentials | None = None) -> ParcelOut:
    box = _dimensions(parcel)
    compartment = (
        CompartmentRef(
            id=parcel.compartment_id, label=parcel.compartment_label, size=parcel.compartment_size
        )
        if parcel.compartment_id and parcel.compartment_label and parcel.compartment_size
        else None
    )
    return ParcelOut(
        id=parcel.id,
        tracking_number=parcel.tracking_number,
        site_id=parcel.site_id,
        status=parcel.status,
        size=parcel.size_code,
        dimensions_mm=Dimensions(length=box[0], width=box[1], height=box[2]) if box else None,
        temperature=parcel.temperature,
        accessible=parcel.accessible,
        notify=parcel.notify,
        compartment=compartment,
        reserved_until=parcel.reserved_until,
        dwell_deadline=parcel.dwell_deadline,
        announced_at=parcel.announced_at,
        deposited_at=parcel.deposited_at,
        picked_up_at=parcel.picked_up_at,
        cancelled_at=parcel.cancelled_at,
        expired_at=parcel.expired_at,
        returned_at=parcel.returned_at,
        collected_at=parcel.collected_at,
        order_id=parcel.order_id,
        deadline_extended_at=parcel.deadline_extended_at,
        pickup=pickup,
    )


def _dimensions(parcel: ParcelRow) -> tuple[int, int, int] | None:
    if parcel.length_mm and parcel.width_mm and parcel.height_mm:
        return parcel.length_mm, parcel.width_mm, parcel.height_mm
    return None


def _need(parcel: ParcelRow) -> allocation.ParcelNeed:
    return allocation.ParcelNeed(
        _dimensions(parcel), parcel.size_code, parcel.temperature, parcel.accessible
    )


def access_parcel(tx: Tx, principal: Principal, parcel_id: str, *, lock: bool = False) -> ParcelRow:
    """The parcel if the principal may see it; another carrier's parcel is a 404."""
    sql = _SELECT + " WHERE p.id = :id"
    params = {"id": parcel_id}
    if not principal.is_admin:
        sql += " AND p.carrier_org_id = :org_id"
        params["org_id"] = principal.org_id
    # The parcel row is locked, not its compartment.
    row = tx.one(sql + (tx.lock("p") if lock else ""), params)
    if row is None:
        raise NotFound(f"No parcel {parcel_id!r}.", code="parcel_not_found")
    return _parcel(tx, row)


def _set(tx: Tx, parcel: ParcelRow, **changes: Any) -> None:
    """Change columns of a parcel, in the database and in ``parcel``."""
    for name, value in changes.items():
        setattr(parcel, name, value)
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    tx.defer(f"UPDATE parcels SET {assignments} WHERE id = :id", {**changes, "id": parcel.id})


def _free_compartment(tx: Tx, compartment_id: str) -> None:
    """A compartment whose parcel left is free again, unless it is out of service (its door
    or lock failed while the parcel was inside)."""
    tx.defer(
        "UPDATE compartments SET state = 'free' WHERE id = :id AND state <> 'out_of_service'",
        {"id": compartment_id},
    )


def check_not_order_item(parcel: ParcelRow) -> None:
    """Refuse a parcel use case on an order's item: its order moves it (``orders/``)."""
    if parcel.order_id is not None:
        raise Conflict(
            f"Parcel {parcel.id!r} is an item of order {parcel.order_id!r}; use the order.",
            code="order_item",
            extra={"order_id": parcel.order_id},
        )


def _transition_error(status: str, action: str) -> Conflict:
    return Conflict(
        f"A parcel that is {status} cannot be {action}.",
        code="invalid_transition",
        extra={"parcel_status": status},
    )


# --- idempotency ---------------------------------------------------------------------------


def _remember(
    tx: Tx, ctx: Context, org_id: str, endpoint: str, key: str, digest: str, answer: Answer
) -> None:
    body = answer.parcel.model_copy(update={"pickup": None}).model_dump_json()
    remember_answer(tx, ctx, org_id, endpoint, key, digest, answer.status_code, body)


# --- use cases -----------------------------------------------------------------------------


def announce(
    ctx: Context, principal: Principal, request: AnnounceIn, idempotency_key: str | None = None
) -> Answer:
    """Announce a parcel for a site; with ``reserve`` a compartment is held until a deadline.

    Raises ``site_not_found``, ``unknown_size``, ``too_large``, ``site_full`` (with the nearest
    sites that have room), ``duplicate_tracking_number``, ``idempotency_key_reused``.
    """
    principal.check_scope("parcels:write")
    digest = request_digest(request.model_dump(mode="json"))
    with ctx.db.sql.transaction() as tx:
        if idempotency_key is not None:
            stored = stored_answer(tx, principal.org_id, "announce", idempotency_key, digest)
            if stored is not None:
                return Answer(stored.status_code, ParcelOut.model_validate_json(stored.body), True)
        parcel = do_announce(ctx, tx, principal.actor, principal.org_id, request)
        answer = Answer(201, parcel_view(parcel))
        if idempotency_key is not None:
            _remember(tx, ctx, principal.org_id, "announce", idempotency_key, digest, answer)
    return answer


def do_announce(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    org_id: str,
    request: AnnounceIn,
    *,
    compartment_id: str | None = None,
    **data: Any,
) -> ParcelRow:
    """Announce ``request``'s parcel as ``org_id``'s (``announce`` without its checks of the
    caller); ``data`` joins the audit event's. With ``reserve``, ``compartment_id`` names the
    compartment to hold (``do_claim_compartment``). Raises what ``announce`` raises."""
    dims = request.dimensions_mm
    need = allocation.ParcelNeed(
        (dims.length, dims.width, dims.height) if dims else None,
        request.size,
        request.temperature,
        request.accessible,
    )
    site = access_site_info(ctx, tx, request.site_id)
    sizes = load_sizes(ctx, tx)
    if request.size is not None and request.size not in sizes:
        raise InvalidInput(f"Unknown size class {request.size!r}.", code="unknown_size")
    check_fits_network(sizes, need)
    now = ctx.clock()
    parcel = ParcelRow(
        id=new_id("prc"),
        carrier_org_id=org_id,
        tracking_number=request.tracking_number,
        site_id=site.id,
        status="announced",
        size_code=request.size,
        length_mm=dims.length if dims else None,
        width_mm=dims.width if dims else None,
        height_mm=dims.height if dims else None,
        weight_g=request.weight_g,
        temperature=request.temperature,
        accessible=request.accessible,
        recipient=request.recipient.model_dump(mode="json", exclude_none=True),
        notify=request.notify,
        announced_at=now,
    )
    if request.reserve:
        claimed = do_claim_compartment(
            ctx, tx, site, need, state="reserved", compartment_id=compartment_id
        )
        _put_in(parcel, claimed)
        parcel.reserved_until = now + timedelta(hours=ctx.settings.reservation_hold_hours)
    # Recorded and queued first, so both ride in the parcel's INSERT (and roll back with it).
    record(
        tx,
        "parcel.announced",
        actor,
        now,
        site_id=site.id,
        parcel_id=parcel.id,
        compartment_id=parcel.compartment_id,
        data={"tracking_number": parcel.tracking_number, "reserved": request.reserve, **data},
    )
    enqueue(tx, now, webhook(parcel, "parcel.announced", now))
    _insert(tx, parcel, room=None if request.reserve else (sizes, site, need))
    return parcel


def _insert(
    tx: Tx,
    parcel: ParcelRow,
    room: tuple[dict[str, allocation.SizeClass], SiteInfo, allocation.ParcelNeed] | None = None,
) -> None:
    """Store a new parcel; its carrier's tracking number must be new.

    With ``room`` the same statement asks whether the site has a free compartment for the
    parcel, and ``site_full`` is raised (the transaction rolls back) when it has none.
    """
    params = {c: getattr(parcel, c) for c in _COLUMNS}
    params["recipient"] = tx.json_param(parcel.recipient)
    sql = _INSERT
    if room is not None:
        where, _, free = suitable_free(room[0], room[1].id, room[2])
        sql += f", EXISTS (SELECT 1 FROM compartments WHERE {where})"
        params.update(free)
    row = tx.one(sql, params)
    if row is None:
        duplicate = tx.scalar(
            "SELECT id FROM parcels WHERE carrier_org_id = :org AND tracking_number = :number",
            {"org": parcel.carrier_org_id, "number": parcel.tracking_number},
        )
        raise Conflict(
            f"Tracking number {parcel.tracking_number!r} is already announced.",
            code="duplicate_tracking_number",
            extra={"parcel_id": duplicate},
        )
    if room is not None and not row[1]:
        raise site_full(tx, *room)


def _put_in(parcel: ParcelRow, compartment: Claimed) -> None:
    parcel.compartment_id = compartment.id
    parcel.compartment_label = compartment.label
    parcel.compartment_size = compartment.size_code


def get_parcel(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    principal.check_scope("parcels:read")
    with ctx.db.sql.transaction(write=False) as tx:
        return parcel_view(access_parcel(tx, principal, parcel_id))


def list_parcels(
    ctx: Context,
    principal: Principal,
    *,
    status: str | None = None,
    site_id: str | None = None,
    tracking_number: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> ParcelList:
    """The principal's parcels, newest first, ``limit`` at a time; pass ``next_cursor`` on."""
    principal.check_scope("parcels:read")
    filters = {
        "p.carrier_org_id": None if principal.is_admin else principal.org_id,
        "p.status": status,
        "p.site_id": site_id,
        "p.tracking_number": tracking_number,
    }
    sql, params = newest_first(_SELECT, "p.id", filters, cursor, limit)
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all(sql, params)
        parcels = [_parcel(tx, row) for row in rows]
    next_cursor = encode_cursor(parcels[limit - 1].id) if len(parcels) > limit else None
    return ParcelList(items=[parcel_view(p) for p in parcels[:limit]], next_cursor=next_cursor)


def deposit(
    ctx: Context, principal: Principal, parcel_id: str, idempotency_key: str | None = None
) -> Answer:
    """Put an announced parcel in its reserved compartment, or the best free one.

    Issues fresh pickup credentials. A retry with the same ``Idempotency-Key`` returns the
    first answer with newly issued credentials and voids the first ones: no PIN is kept in
    plain text to replay it.
    """
    principal.check_scope("parcels:write")
    digest = request_digest({"parcel_id": parcel_id})
    endpoint = f"deposit:{parcel_id}"
    with ctx.db.sql.transaction() as tx:
        parcel = access_parcel(tx, principal, parcel_id, lock=True)
        check_not_order_item(parcel)
        if idempotency_key is not None:
            stored = stored_answer(tx, principal.org_id, endpoint, idempotency_key, digest)
            if stored is not None:
                first = ParcelOut.model_validate_json(stored.body)
                pickup = (
                    _reissue(tx, ctx, principal.actor, parcel, reason="deposit_replayed")
                    if parcel.status == "deposited"
                    else None
                )
                return Answer(stored.status_code, first.model_copy(update={"pickup": pickup}), True)
        if parcel.status != "announced":
            raise _transition_error(parcel.status, "deposited")
        site = access_site_info(ctx, tx, parcel.site_id)
        now = ctx.clock()
        pickup = do_deposit_parcel(ctx, tx, principal.actor, site, parcel, now, door=commanded(ctx))
        answer = Answer(200, parcel_view(parcel))
        if idempotency_key is not None:
            _remember(tx, ctx, principal.org_id, endpoint, idempotency_key, digest, answer)
    return replace(answer, parcel=answer.parcel.model_copy(update={"pickup": pickup}))


def do_deposit_parcel(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    parcel: ParcelRow,
    now: datetime,
    *,
    door: Door,
    into: str | None = None,
    compartment_id: str | None = None,
    **data: Any,
) -> PickupCredentials | None:
    """Deposit a parcel (``do_deposit``) and issue its credentials: returned for ``notify:
    sender``, else queued for the recipient."""
    do_deposit(
        ctx,
        tx,
        actor,
        site,
        parcel,
        now,
        door=door,
        into=into,
        compartment_id=compartment_id,
        **data,
    )
    pickup, message = _issue(tx, ctx, parcel, site)
    if message is not None:
        enqueue(tx, now, message)
    return pickup


def do_deposit(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    parcel: ParcelRow,
    now: datetime,
    *,
    door: Door,
    latest: datetime | None = None,
    into: str | None = None,
    compartment_id: str | None = None,
    **data: Any,
) -> Claimed:
    """Put an announced parcel (locked) in its reserved compartment or the best free one: the
    door opens (``door``), the carrier is told. Its deadline is the zone's dwell time from
    now, or ``latest`` when that comes first. The caller issues credentials.

    ``into`` puts it in that compartment of the site instead (the kiosk put it there; the
    caller has moved any other parcel out of it), freeing a reservation elsewhere.
    ``compartment_id`` (for a parcel without a reservation) claims that compartment as the
    best free one would be claimed, or raises ``compartment_unavailable`` unless it is a
    free one of the site that fits. ``data`` joins the audit event's."""
    if into is not None and into != parcel.compartment_id:
        _release_compartment(tx, parcel)
        parcel.compartment_id = into
    if parcel.compartment_id is not None:
        reserved = tx.one(
            "UPDATE compartments SET state = 'occupied', use_count = use_count + 1"
            " WHERE id = :id RETURNING id, label, size_code",
            {"id": parcel.compartment_id},
        )
        assert reserved is not None, "a parcel's compartment exists (foreign key)"
        claimed = Claimed(*reserved)
    else:
        claimed = do_claim_compartment(
            ctx, tx, site, _need(parcel), state="occupied", compartment_id=compartment_id
        )
    _put_in(parcel, claimed)
    deadline = now + timedelta(hours=access_zone(ctx, tx, site, parcel.temperature).dwell_hours)
    _set(
        tx,
        parcel,
        status="deposited",
        compartment_id=claimed.id,
        deposited_at=now,
        reserved_until=None,
        dwell_deadline=deadline if latest is None else min(deadline, latest),
    )
    record(
        tx,
        "parcel.deposited",
        actor,
        now,
        site_id=site.id,
        parcel_id=parcel.id,
        compartment_id=claimed.id,
        data={"label": claimed.label, **data},
    )
    # Queued before the credentials so that they ride in the same statement.
    opens = door.commands(site.id, claimed, now, reason="deposit", parcel_id=parcel.id)
    enqueue(tx, now, *opens, webhook(parcel, "parcel.deposited", now))
    return claimed


def _issue(
    tx: Tx, ctx: Context, parcel: ParcelRow, site: SiteInfo
) -> tuple[PickupCredentials | None, Message | None]:
    assert parcel.dwell_deadline is not None
    return issue_pickup(
        tx,
        ctx,
        site,
        parcel_id=parcel.id,
        expires_at=parcel.dwell_deadline,
        recipient=parcel.recipient,
        notify=parcel.notify,
        about={"parcel_id": parcel.id, "tracking_number": parcel.tracking_number},
    )


def issue_pickup(
    tx: Tx,
    ctx: Context,
    site: SiteInfo,
    *,
    parcel_id: str,
    expires_at: datetime,
    recipient: dict[str, Any],
    notify: str,
    about: dict[str, Any],
    order_id: str | None = None,
) -> tuple[PickupCredentials | None, Message | None]:
    """Issue credentials (for a parcel, or with ``order_id`` for an order's items): returned
    for ``notify: sender``, else sealed in a ``recipient.pickup_ready`` message whose payload
    starts with ``about`` (what the recipient collects)."""
    issued = access.do_issue_credentials(
        ctx,
        tx,
        parcel_id=parcel_id,
        site=site,
        expires_at=expires_at,
        phone=recipient.get("phone"),
        order_id=order_id,
    )
    credentials = PickupCredentials(
        pin=issued.pin,
        qr=issued.qr,
        link=f"{ctx.settings.base_url.rstrip('/')}/p/{issued.link_token}",
        expires_at=issued.expires_at,
    )
    if notify == "sender":
        return credentials, None
    message = Message(
        "recipient.pickup_ready",
        {
            **about,
            "site_id": site.id,
            "site_name": site.name,
            "site_address": site.address,
            "recipient": recipient,
            "expires_at": issued.expires_at.isoformat(),
        },
        parcel_id=parcel_id,
        sealed=ctx.keyring.seal(credentials.model_dump_json()),
    )
    return None, message


def reissue_credentials(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    """Void a deposited parcel's credentials and issue a fresh set (audited).

    For a sender whose deposit answer was lost: with ``notify: sender`` the answer carries the
    new credentials, else they go to the recipient in a new message. Each call voids the set
    before it, so a retry is safe. Raises ``parcel_not_found``, ``invalid_transition``.
    """
    principal.check_scope("parcels:write")
    with ctx.db.sql.transaction() as tx:
        parcel = access_parcel(tx, principal, parcel_id, lock=True)
        check_not_order_item(parcel)
        if parcel.status != "deposited":
            raise _transition_error(parcel.status, "given new credentials")
        pickup = _reissue(tx, ctx, principal.actor, parcel, reason="requested")
    return parcel_view(parcel, pickup)


def _reissue(
    tx: Tx, ctx: Context, actor: Actor, parcel: ParcelRow, *, reason: str
) -> PickupCredentials | None:
    now = ctx.clock()
    access.do_void_credentials(tx, parcel.id, now)
    record(
        tx,
        "parcel.credentials_reissued",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        data={"reason": reason},
    )
    pickup, message = _issue(tx, ctx, parcel, access_site_info(ctx, tx, parcel.site_id))
    if message is not None:
        enqueue(tx, now, message)
    return pickup


def cancel(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    """Cancel a parcel before deposit; a reserved compartment is freed."""
    principal.check_scope("parcels:write")
    with ctx.db.sql.transaction() as tx:
        parcel = access_parcel(tx, principal, parcel_id, lock=True)
        check_not_order_item(parcel)
        if parcel.status != "announced":
            raise _transition_error(parcel.status, "cancelled")
        do_cancel(tx, principal.actor, parcel, ctx.clock())
        return parcel_view(parcel)


def do_cancel(tx: Tx, actor: Actor, parcel: ParcelRow, now: datetime) -> None:
    """Cancel an announced parcel (locked); a reserved compartment is freed."""
    released = _release_compartment(tx, parcel)
    _set(tx, parcel, status="cancelled", cancelled_at=now, reserved_until=None, compartment_id=None)
    record(
        tx,
        "parcel.cancelled",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=released,
    )
    enqueue(tx, now, webhook(parcel, "parcel.cancelled", now))


def retrieve(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    """The courier takes an expired parcel back out: it is ``returned`` to the carrier."""
    principal.check_scope("parcels:write")
    with ctx.db.sql.transaction() as tx:
        parcel = access_parcel(tx, principal, parcel_id, lock=True)
        if parcel.status != "expired":
            raise _transition_error(parcel.status, "returned")
        do_retrieve(tx, principal.actor, parcel, ctx.clock(), door=commanded(ctx))
        return parcel_view(parcel)


def do_move_deadline(
    tx: Tx, actor: Actor, parcel: ParcelRow, deadline: datetime, now: datetime, *, reason: str
) -> None:
    """Bring a deposited parcel's (locked) dwell deadline forward to ``deadline``: its own
    credentials expire then too (an order's follow its last item), its carrier is told."""
    before = parcel.dwell_deadline
    _set(tx, parcel, dwell_deadline=deadline)
    if parcel.order_id is None:
        access.do_cap_credential_expiry(tx, deadline, parcel_id=parcel.id)
    record(
        tx,
        "parcel.deadline_moved",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=parcel.compartment_id,
        data={
            "reason": reason,
            "from": before.isoformat() if before else None,
            "to": deadline.isoformat(),
        },
    )
    message = webhook(parcel, "parcel.deadline_moved", now)
    message.payload["dwell_deadline"] = deadline.isoformat()
    enqueue(tx, now, message)


def do_retrieve(
    tx: Tx, actor: Actor, parcel: ParcelRow, now: datetime, *, door: Door, **data: Any
) -> None:
    """A courier takes a parcel (locked) out: an expired one is ``returned``, a return
    ``awaiting_collection`` is ``collected``. Its door opens (``door``), its carrier is told;
    ``data`` joins the audit event's."""
    if parcel.status == "awaiting_collection":
        status, event = "collected", "parcel.collected"
        _set(tx, parcel, status=status, collected_at=now)
    else:
        status, event = "returned", "parcel.returned"
        _set(tx, parcel, status=status, returned_at=now)
    messages = [webhook(parcel, event, now)]
    if parcel.compartment_id is not None:
        _free_compartment(tx, parcel.compartment_id)
        opens = door.commands(
            parcel.site_id, _compartment_of(parcel), now, reason="retrieval", parcel_id=parcel.id
        )
        messages[:0] = opens
    record(
        tx,
        event,
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=parcel.compartment_id,
        data=data,
    )
    enqueue(tx, now, *messages)


def pickup(ctx: Context, principal: Principal, site_id: str, request: PickupIn) -> PickupOut:
    """Open the compartment of the parcel whose PIN, QR or link token is given at its site.

    Every failure is audited. Wrong typed PINs count per bucket (the site's PINs typed
    alone, or those typed with one phone suffix); after a run of them the bucket's PINs are
    refused for a growing time (``too_many_attempts``), and only the first refusal of a
    lockout is an audit event of its own. QR and link still work.
    """
    principal.check_kiosk(site_id)
    kind, secret = request.kind_and_secret
    door = KIOSK_OPENED if request.door == "kiosk" else commanded(ctx)
    failure: DomainError | None = None
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        now = ctx.clock()
        bucket = access.pin_bucket(ctx, site.id, request.phone)
        try:
            match = access.check_credential(ctx, tx, site, kind, secret, bucket=bucket)
        except DomainError as error:
            failure = error
            data: dict[str, Any] = {"method": kind, "reason": error.code}
            if kind == "pin":
                data["with_phone"] = bucket != access.PIN_ALONE
            if error.code == "too_many_attempts":
                if access.do_count_refusal(tx, site.id, bucket):
                    record(tx, "pickup.refused", principal.actor, now, site_id=site.id, data=data)
            else:
                if kind == "pin":
                    counted = access.do_count_pin_failure(tx, site.id, bucket, now)
                    data["lockout_s"] = counted.lockout_s
                    data["refused_before"] = counted.refused_before
                record(tx, "pickup.failed", principal.actor, now, site_id=site.id, data=data)
        else:
            return _do_pickup(tx, principal.actor, site, match, kind, now, door=door)
    raise failure


def _link_match(
    ctx: Context, tx: Tx, link_token: str
) -> tuple[access.LinkSet, SiteInfo, access.Match]:
    """The link's credential set (read after its parcel is locked), site and parcel.

    Raises ``link_not_found`` for a token never issued, else what ``check_credential`` raises
    for a link used, expired or replaced.
    """
    link = access.access_link(ctx, tx, link_token)
    if link is None:
        raise NotFound("No parcel has this link.", code="link_not_found")
    site = access_site_info(ctx, tx, link.site_id)
    match = access.check_credential(ctx, tx, site, "link", link_token)
    # Read again now that the parcel is locked: a racing request may have counted a failure.
    fresh = access.access_link(ctx, tx, link_token)
    assert fresh is not None, "credential sets are never deleted"
    return fresh, site, match


def extend_deadline(ctx: Context, link_token: str) -> ParcelOut:
    """Move a deposited parcel's dwell deadline on by its site's ``extension_hours``, once, for
    the holder of its link. The credentials stay valid as long (a new QR token is signed:
    ``access.do_extend_credentials``); audited and the carrier's webhook queued.

    Raises ``link_not_found``, ``code_used``, ``code_expired``, ``invalid_code`` (a link
    replaced or voided), ``invalid_transition``, ``already_extended``,
    ``extension_not_allowed``.
    """
    with ctx.db.sql.transaction() as tx:
        link, site, match = _link_match(ctx, tx, link_token)
        if match.status != "deposited":
            raise _transition_error(match.status, "given more time")
        row = tx.one(_SELECT + " WHERE p.id = :id", {"id": match.parcel_id})
        assert row is not None, "the link's parcel exists (foreign key)"
        parcel = _parcel(tx, row)
        if parcel.deadline_extended_at is not None:
            raise Conflict("The deadline was extended once already.", code="already_extended")
        if site.extension_hours <= 0:
            raise Conflict(
                "This locker site does not extend deadlines.", code="extension_not_allowed"
            )
        now = ctx.clock()
        assert parcel.dwell_deadline is not None, "a deposited parcel has a deadline"
        before = parcel.dwell_deadline
        deadline = before + timedelta(hours=site.extension_hours)
        access.do_extend_credentials(ctx, tx, link, link_token, site, deadline)
        _set(tx, parcel, dwell_deadline=deadline, deadline_extended_at=now)
        record(
            tx,
            "parcel.deadline_extended",
            LINK_HOLDER,
            now,
            site_id=site.id,
            parcel_id=parcel.id,
            compartment_id=parcel.compartment_id,
            data={"from": before.isoformat(), "to": deadline.isoformat()},
        )
        enqueue(tx, now, webhook(parcel, "parcel.deadline_extended", now))
        return parcel_view(parcel)


def pickup_by_link(ctx: Context, link_token: str, presence_code: str) -> PickupOut:
    """Open the compartment for the holder of a parcel's link who is standing at the locker:
    ``presence_code`` must be what the site's kiosk shows (``access.presence``).

    A pickup like the kiosk's (``parcel.picked_up``, the door command, the carrier's webhook).
    Wrong presence codes are counted per link and audited (``pickup.failed``); after a run of
    them the link refuses codes for a while, on the schedule of typed PINs. Raises
    ``link_not_found``, ``code_used``, ``code_expired``, ``invalid_code``,
    ``invalid_transition``, ``too_many_attempts``, ``invalid_presence_code``.
    """
    with ctx.db.sql.transaction() as tx:
        link, site, match = _link_match(ctx, tx, link_token)
        now = ctx.clock()
        access.check_presence_allowed(link, now)
        if presence.is_present(ctx.keyring, site.id, presence_code, now):
            return _do_pickup(tx, LINK_HOLDER, site, match, "link", now, door=commanded(ctx))
        lockout = access.do_count_presence_failure(tx, link, now)
        record(
            tx,
            "pickup.failed",
            LINK_HOLDER,
            now,
            site_id=site.id,
            parcel_id=match.parcel_id,
            data={"method": "link", "reason": "invalid_presence_code", "lockout_s": lockout},
        )
        failure = Forbidden(
            "That is not the code on the locker's screen.",
            code="invalid_presence_code",
            extra={"lockout_s": lockout},
        )
    # Raised after the commit, so the failure stays counted.
    raise failure


def _do_pickup(
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    match: access.Match,
    kind: str,
    now: datetime,
    *,
    door: Door,
) -> PickupOut:
    if match.order_id is not None:
        # Imported here: orders build on the parcel lifecycle, not the other way round.
        from openlocker.orders.service import do_pick_up_order

        return do_pick_up_order(tx, actor, site, match.order_id, kind, now, door=door)
    if match.status != "deposited" or match.compartment_id is None:
        raise _transition_error(match.status, "picked up")
    access.do_void_credentials(tx, match.parcel_id, now, used_kind=kind)
    compartment = do_pick_up_item(tx, actor, site, match, kind, now, door=door)
    assert compartment is not None, "a deposited parcel is in a compartment"
    return PickupOut(
        parcel_id=match.parcel_id,
        tracking_number=match.tracking_number,
        status="picked_up",
        compartment=compartment,
        compartments=[compartment],
    )


def do_pick_up_item(
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    item: access.Match,
    kind: str,
    now: datetime,
    *,
    door: Door,
    **data: Any,
) -> CompartmentRef | None:
    """Take a parcel out (the caller voids its credentials): its door opens (``door``), its
    compartment is free, the carrier is told. ``data`` joins the audit event's. A parcel no
    longer in a compartment (a kiosk reports a pickup the server did not expect) is picked up
    all the same, touching no compartment; None is returned then."""
    compartment = None
    if item.compartment_id is not None:
        compartment = Claimed(
            item.compartment_id, item.compartment_label or "", item.compartment_size or ""
        )
        _free_compartment(tx, compartment.id)
    tx.defer(
        "UPDATE parcels SET status = 'picked_up', picked_up_at = :now WHERE id = :id",
        {"now": now, "id": item.parcel_id},
    )
    record(
        tx,
        "parcel.picked_up",
        actor,
        now,
        site_id=site.id,
        parcel_id=item.parcel_id,
        compartment_id=item.compartment_id,
        data={"method": kind, **data},
    )
    webhook = _webhook_message(
        item.carrier_org_id,
        item.parcel_id,
        item.tracking_number,
        "picked_up",
        "parcel.picked_up",
        now,
    )
    if compartment is None:
        enqueue(tx, now, webhook)
        return None
    opens = door.commands(site.id, compartment, now, reason="pickup", parcel_id=item.parcel_id)
    enqueue(tx, now, *opens, webhook)
    return CompartmentRef(id=compartment.id, label=compartment.label, size=compartment.size_code)


def _compartment_of(parcel: ParcelRow) -> Claimed:
    assert parcel.compartment_id is not None
    return Claimed(
        parcel.compartment_id, parcel.compartment_label or "", parcel.compartment_size or ""
    )


def _release_compartment(tx: Tx, parcel: ParcelRow) -> str | None:
    """Free the parcel's reserved compartment; returns its id. The caller sets the parcel's
    ``compartment_id`` to None in its own change of the parcel (one update per row)."""
    released = parcel.compartment_id
    if released is None:
        return None
    tx.defer(
        "UPDATE compartments SET state = 'free' WHERE id = :id AND state = 'reserved'",
        {"id": released},
    )
    parcel.compartment_label = parcel.compartment_size = None
    return released


def open_door(
    site_id: str,
    compartment: Claimed,
    now: datetime,
    ttl: timedelta,
    *,
    reason: str,
    parcel_id: str,
) -> Message:
    """The command that makes the site's locker open this compartment's door for
    ``parcel_id``, if it gets it within ``ttl`` (``expires_at``: a kiosk refuses it later).
    ``reason`` says what for (``deposit``, ``pickup``, ``retrieval``, ``return_drop_off``).
    Its outbox id is the command's id for the kiosk, over HTTP sync and MQTT alike
    (``docs/kiosk-sync.md``)."""
    return Message(
        "kiosk.open_compartment",
        {
            "site_id": site_id,
            "compartment_id": compartment.id,
            "label": compartment.label,
            "parcel_id": parcel_id,
            "reason": reason,
            "expires_at": (now + ttl).isoformat(),
        },
        parcel_id=parcel_id,
        site_id=site_id,
    )


def webhook(parcel: ParcelRow, event: str, at: datetime) -> Message:
    """The ``webhook.carrier`` message telling the parcel's organization of ``event``."""
    return _webhook_message(
        parcel.carrier_org_id, parcel.id, parcel.tracking_number, parcel.status, event, at
    )


def _webhook_message(
    org_id: str, parcel_id: str, tracking_number: str, status: str, event: str, at: datetime
) -> Message:
    return Message(
        "webhook.carrier",
        {
            "event": event,
            "org_id": org_id,
            "parcel_id": parcel_id,
            "tracking_number": tracking_number,
            "status": status,
            "at": at.isoformat(),
        },
        parcel_id=parcel_id,
    )


def expire_due(ctx: Context, *, batch: int = 500) -> tuple[int, int]:
    """Expire deposited parcels past their dwell deadline and release lapsed reservations.

    Works in transactions of at most ``batch`` parcels of each kind until none is left, so
    a backlog clears in one run. Safe to run from several processes at once (SKIP LOCKED on
    PostgreSQL). Returns (expired, reservations released).
    """
    total_expired = total_released = 0
    while True:
        expired, released = _expire_batch(ctx, batch)
        total_expired += expired
        total_released += released
        if expired < batch and released < batch:
            return total_expired, total_released


def do_expire(tx: Tx, actor: Actor, parcel: ParcelRow, now: datetime, **data: Any) -> None:
    """A parcel (locked) in its compartment waits no longer for its recipient: its
    credentials die, it waits for its courier (``retrieve``), its carrier is told."""
    _set(tx, parcel, status="expired", expired_at=now)
    access.do_void_credentials(tx, parcel.id, now)
    record(
        tx,
        "parcel.expired",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=parcel.compartment_id,
        data=data,
    )
    enqueue(tx, now, webhook(parcel, "parcel.expired", now))


def do_move_reservation(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    parcel: ParcelRow,
    now: datetime,
    **data: Any,
) -> str | None:
    """Move an announced parcel's (locked) reservation to the best other free compartment
    (its old one is the caller's to reuse or take out of service); without room it has none
    until its deposit claims one. Audited (``parcel.reservation_moved``); returns the new
    compartment's id."""
    before = parcel.compartment_id
    try:
        claimed: Claimed | None = do_claim_compartment(
            ctx, tx, site, _need(parcel), state="reserved"
        )
    except Conflict as full:
        if full.code != "site_full":
            raise
        claimed = None
    if claimed is not None:
        _put_in(parcel, claimed)
        _set(tx, parcel, compartment_id=claimed.id)
    else:
        parcel.compartment_label = parcel.compartment_size = None
        _set(tx, parcel, compartment_id=None, reserved_until=None)
    record(
        tx,
        "parcel.reservation_moved",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=before,
        data={"to": claimed.id if claimed else None, **data},
    )
    return claimed.id if claimed else None


def do_displace(tx: Tx, actor: Actor, parcel: ParcelRow, now: datetime, **data: Any) -> None:
    """A parcel (locked) the server had in a compartment that the locker found empty (it put
    another parcel in): where it is, nobody knows, so it is in none until an operator finds
    out. Audited (``parcel.displaced``)."""
    before = parcel.compartment_id
    parcel.compartment_label = parcel.compartment_size = None
    _set(tx, parcel, compartment_id=None)
    record(
        tx,
        "parcel.displaced",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=before,
        data=data,
    )


def _expire_batch(ctx: Context, batch: int) -> tuple[int, int]:
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        lock = tx.lock("p", skip_locked=True)
        params = {"now": now, "batch": batch}
        due = tx.all(
            _SELECT
            + " WHERE p.status = 'deposited' AND p.dwell_deadline <= :now LIMIT :batch"
            + lock,
            params,
        )
        orders: set[str] = set()
        for row in due:
            parcel = _parcel(tx, row)
            do_expire(tx, SYSTEM_EXPIRY, parcel, now)
            if parcel.order_id is not None:
                orders.add(parcel.order_id)
        lapsed = tx.all(
            _SELECT
            + " WHERE p.status = 'announced' AND p.reserved_until <= :now LIMIT :batch"
            + lock,
            params,
        )
        for row in lapsed:
            parcel = _parcel(tx, row)
            compartment_id = _release_compartment(tx, parcel)
            _set(tx, parcel, reserved_until=None, compartment_id=None)
            record(
                tx,
                "parcel.reservation_lapsed",
                SYSTEM_EXPIRY,
                now,
                site_id=parcel.site_id,
                parcel_id=parcel.id,
                compartment_id=compartment_id,
            )
            if parcel.order_id is not None:
                orders.add(parcel.order_id)
        if orders:
            # Imported here: orders build on the parcel lifecycle, not the other way round.
            from openlocker.orders.service import do_refresh_orders

            do_refresh_orders(tx, SYSTEM_EXPIRY, orders, now)
    return len(due), len(lapsed)
