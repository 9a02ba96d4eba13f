"""What a site's kiosk pushes: pickups, deposits, doors, alarms, refusals, command answers.

The kiosk decides from its own store, often offline, and tells the server afterwards. Each
event is applied once, by its id, in its own transaction and in the order pushed: its
receipt (``kiosk_event_receipts``) is written with it, so a retried push finds it and
answers ``duplicate``. Pickups and deposits go through the parcel and order lifecycle, at
the kiosk's time, queueing no door command (the kiosk opened the door).

The locker's events are what physically happened; the server's records give way to them
where they disagree (``docs/kiosk-sync.md``, "Conflicts"). Such an event is applied as far
as reality allows and flagged (``kiosk.conflict``); one that cannot be applied at all (it is
malformed, or names another site's compartment, an unknown credential or parcel) is
``rejected`` and audited, and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from openlocker.access import service as access
from openlocker.audit.models import PENDING_COMMANDS
from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, DomainError
from openlocker.core.sql import Row, Tx
from openlocker.fleet import alarms
from openlocker.fleet.schemas import (
    AlarmEvent,
    AnyEvent,
    CommandEvent,
    DepositEvent,
    DoorEvent,
    EventResult,
    EventResults,
    EventsIn,
    InServiceEvent,
    KioskEvent,
    OutOfServiceEvent,
    PickupEvent,
    RefusedEvent,
)
from openlocker.lockers.service import SiteInfo, access_site_info
from openlocker.orders import service as orders
from openlocker.orgs.service import Principal
from openlocker.parcels import service as parcels
from openlocker.parcels.models import HOLDING

_EVENT: TypeAdapter[Any] = TypeAdapter(AnyEvent)

#: What each conflict means, for the answer's ``detail`` and the operator reading the log.
CONFLICTS = {
    "already_picked_up": "the parcel was picked up already; nothing else changes",
    "expired_on_server": "the parcel had expired on the server; it is picked up all the same",
    "cancelled_on_server": "the parcel had been cancelled on the server",
    "returned_on_server": "the server had the parcel back with its carrier",
    "collected_on_server": "the server had the parcel collected by its carrier",
    "awaiting_collection_on_server": "the server had the parcel waiting for collection",
    "announced_on_server": "the server never saw the parcel deposited; nothing changes",
    "picked_up_on_server": "the parcel was picked up already; nothing changes",
    "expired_before_deposit": "the parcel had expired on the server; nothing changes",
    "credential_inactive": "the code used was no longer valid on the server",
    "compartment_mismatch": "the server had the parcel in another compartment",
    "already_deposited": "the parcel was deposited there already; nothing changes",
    "deposited_elsewhere": "the server has the parcel in another compartment; nothing changes",
    "compartment_given_away": "the server had given the compartment to another parcel, moved",
    "order_not_loading": "the parcel's order was no longer being loaded",
    "unknown_courier": "the courier code is unknown",
    "courier_of_another_org": "the courier is not of the parcel's carrier",
    "courier_inactive": "the courier code was deactivated",
    "command_not_pending": "the command was answered or withdrawn already; nothing changes",
}


class Rejected(Exception):
    """An event the server cannot apply at all; nothing of it is kept but its audit event."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass
class Applied:
    """What applying an event did: the conflicts met (none: ``applied``), a ``code`` for a
    plain ``applied`` answer, and what the ``kiosk.conflict`` event names."""

    conflicts: list[str] = field(default_factory=list)
    code: str | None = None
    parcel_id: str | None = None
    compartment_id: str | None = None


Apply = Callable[[Context, Tx, Actor, SiteInfo, Any, datetime], Applied]
#: The kiosk opened the doors of what it reports.
KIOSK = parcels.KIOSK_OPENED


def push_events(
    ctx: Context, principal: Principal, site_id: str, request: EventsIn
) -> EventResults:
    """Apply the site's kiosk's events in order, each once; one result per event."""
    principal.check_kiosk(site_id)
    with ctx.db.sql.transaction(write=False) as tx:
        site = access_site_info(ctx, tx, site_id)
    return EventResults(
        results=[_push_one(ctx, principal.actor, site, raw) for raw in request.events]
    )


def _push_one(ctx: Context, actor: Actor, site: SiteInfo, raw: dict[str, Any]) -> EventResult:
    try:
        event = _EVENT.validate_python(raw)
    except ValidationError as invalid:
        problem = invalid.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        detail = f"{where}: {problem['msg']}" if where else str(problem["msg"])
        kind = str(raw.get("type", "unknown"))[:20]
        return _reject(ctx, actor, site, _usable_id(raw), None, kind, "malformed_event", detail)
    now = ctx.clock()
    at = min(event.at, now)  # a kiosk clock running ahead does not date events in the future
    try:
        with ctx.db.sql.transaction() as tx:
            receipt = tx.one(
                "INSERT INTO kiosk_event_receipts (site_id, id, seq, type, status, at,"
                " received_at) VALUES (:site, :id, :seq, :type, 'applied', :at, :now)"
                " ON CONFLICT (site_id, id) DO NOTHING RETURNING id",
                {
                    "site": site.id,
                    "id": event.id,
                    "seq": event.seq,
                    "type": event.type,
                    "at": at,
                    "now": now,
                },
            )
            if receipt is None:
                return _duplicate(tx, site, event.id)
            applied = _APPLY[event.type](ctx, tx, actor, site, event, at)
            return _settle(tx, actor, site, event, at, applied)
    except Rejected as rejected:
        return _reject(
            ctx, actor, site, event.id, event.seq, event.type, rejected.code, rejected.detail
        )
    except DomainError as refused:  # a rule of the lifecycle the event cannot get past
        return _reject(
            ctx, actor, site, event.id, event.seq, event.type, refused.code, str(refused)
        )


def _usable_id(raw: dict[str, Any]) -> str | None:
    """A malformed event's id, when it is one a receipt can keep."""
    try:
        return KioskEvent.model_validate({"id": raw.get("id"), "at": "2000-01-01T00:00:00Z"}).id
    except ValidationError:
        return None


def _duplicate(tx: Tx, site: SiteInfo, event_id: str) -> EventResult:
    row = tx.one(
        "SELECT status, code FROM kiosk_event_receipts WHERE site_id = :site AND id = :id",
        {"site": site.id, "id": event_id},
    )
    assert row is not None, "a receipt is never deleted"
    return EventResult(
        id=event_id,
        status="duplicate",
        code=row[1],
        detail="This event was pushed before; nothing changed.",
        first_status=row[0],
    )


def _settle(
    tx: Tx, actor: Actor, site: SiteInfo, event: Any, at: datetime, applied: Applied
) -> EventResult:
    """The receipt's final word and, for a conflict, the ``kiosk.conflict`` event."""
    if not applied.conflicts:
        if applied.code is not None:
            tx.execute(
                "UPDATE kiosk_event_receipts SET code = :code WHERE site_id = :site AND id = :id",
                {"code": applied.code, "site": site.id, "id": event.id},
            )
        return EventResult(id=event.id, status="applied", code=applied.code)
    detail = "; ".join(CONFLICTS[reason] for reason in applied.conflicts) + "."
    detail = detail[0].upper() + detail[1:]
    tx.execute(
        "UPDATE kiosk_event_receipts SET status = 'conflict', code = :code, detail = :detail"
        " WHERE site_id = :site AND id = :id",
        {"code": applied.conflicts[0], "detail": detail, "site": site.id, "id": event.id},
    )
    record(
        tx,
        "kiosk.conflict",
        actor,
        at,
        site_id=site.id,
        parcel_id=applied.parcel_id,
        compartment_id=applied.compartment_id,
        data={"reasons": applied.conflicts, "event": event.model_dump(mode="json")},
    )
    return EventResult(id=event.id, status="conflict", code=applied.conflicts[0], detail=detail)


def _reject(
    ctx: Context,
    actor: Actor,
    site: SiteInfo,
    event_id: str | None,
    seq: int | None,
    kind: str,
    code: str,
    detail: str,
) -> EventResult:
    """Keep a refused event's receipt (when it has an id) and audit it; nothing else."""
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        if event_id is not None:
            kept = tx.one(
                "INSERT INTO kiosk_event_receipts (site_id, id, seq, type, status, code, detail,"
                " received_at) VALUES (:site, :id, :seq, :type, 'rejected', :code, :detail,"
                " :now) ON CONFLICT (site_id, id) DO NOTHING RETURNING id",
                {
                    "site": site.id,
                    "id": event_id,
                    "seq": seq,
                    "type": kind,
                    "code": code,
                    "detail": detail[:500],
                    "now": now,
                },
            )
            if kept is None:
                return _duplicate(tx, site, event_id)
        record(
            tx,
            "kiosk.event_rejected",
            actor,
            now,
            site_id=site.id,
            data={"event_id": event_id, "type": kind, "code": code, "detail": detail[:500]},
        )
    return EventResult(id=event_id, status="rejected", code=code, detail=detail)


# --- helpers ---------------------------------------------------------------------------------


def _compartment(tx: Tx, site: SiteInfo, compartment_id: str) -> Row:
    """(id, label, size_code, state) of a compartment of the site; ``rejected`` otherwise."""
    row = tx.one(
        "SELECT id, label, size_code, state FROM compartments WHERE id = :id AND site_id = :site",
        {"id": compartment_id, "site": site.id},
    )
    if row is None:
        raise Rejected("unknown_compartment", f"No compartment {compartment_id!r} at this site.")
    return row


def _withdraw_commands(
    tx: Tx, actor: Actor, site: SiteInfo, parcel_ids: list[str], at: datetime
) -> None:
    """Door commands still pending for parcels the kiosk has handed out are withdrawn (a
    remote open of a parcel picked up offline must not open its emptied door)."""
    names = {f"p{i}": parcel_id for i, parcel_id in enumerate(parcel_ids)}
    if not names:
        return
    for command_id, parcel_id in tx.all(
        "UPDATE outbox SET state = 'skipped', last_error = 'the parcel left through the kiosk'"
        f" WHERE site_id = :site AND {PENDING_COMMANDS}"
        f" AND parcel_id IN ({', '.join(':' + n for n in names)}) RETURNING id, parcel_id",
        {"site": site.id, **names},
    ):
        record(
            tx,
            "kiosk.command_withdrawn",
            actor,
            at,
            site_id=site.id,
            parcel_id=parcel_id,
            data={"command_id": command_id, "reason": "picked_up_at_kiosk"},
        )


def _match(parcel: parcels.ParcelRow) -> access.Match:
    """The parcel as a pickup takes it: in its compartment only while it holds one."""
    holds = parcel.status in HOLDING and parcel.compartment_id is not None
    return access.Match(
        parcel.id,
        parcel.status,
        parcel.tracking_number,
        parcel.carrier_org_id,
        parcel.compartment_id if holds else None,
        parcel.compartment_label if holds else None,
        parcel.compartment_size if holds else None,
    )


# --- pickups ---------------------------------------------------------------------------------


def _pickup(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: PickupEvent, at: datetime
) -> Applied:
    for compartment_id in event.compartments:
        _compartment(tx, site, compartment_id)
    row = tx.one(
        "SELECT parcel_id, order_id, active, site_id FROM credential_sets WHERE id = :id",
        {"id": event.credential_id},
    )
    if row is None or row[3] != site.id:
        raise Rejected("unknown_credential", f"No credential {event.credential_id!r} here.")
    parcel_id, order_id, active = row[0], row[1], bool(row[2])
    applied = Applied(conflicts=[] if active else ["credential_inactive"], parcel_id=parcel_id)
    opened = set(event.compartments)
    data = {"kiosk_event": event.id, "offline": event.offline}
    # The set's parcel first, then (for an order) the order and its items: as every pickup.
    (parcel,) = parcels.select_parcels(tx, "p.id = :id", {"id": parcel_id}, lock=True)
    if order_id is not None:
        return _pickup_order(tx, actor, site, event, at, order_id, opened, applied)
    if parcel.status == "picked_up":
        applied.conflicts.insert(0, "already_picked_up")
        _withdraw_commands(tx, actor, site, [parcel.id], at)
        return applied
    if parcel.status == "announced":
        applied.conflicts.insert(0, "announced_on_server")
        return applied
    if parcel.status != "deposited":
        applied.conflicts.insert(0, f"{parcel.status}_on_server")
    match = _match(parcel)
    if match.compartment_id is not None and match.compartment_id not in opened:
        applied.conflicts.append("compartment_mismatch")
    applied.compartment_id = match.compartment_id
    access.do_void_credentials(tx, parcel.id, at, used_kind=event.method)
    parcels.do_pick_up_item(tx, actor, site, match, event.method, at, door=KIOSK, **data)
    _withdraw_commands(tx, actor, site, [parcel.id], at)
    return applied


def _pickup_order(
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    event: PickupEvent,
    at: datetime,
    order_id: str,
    opened: set[str],
    applied: Applied,
) -> Applied:
    _, items = orders.lock_order(tx, order_id)
    taken = [i for i in items if i.compartment_id in opened and i.status in HOLDING]
    if any(item.status == "expired" for item in taken):
        applied.conflicts.insert(0, "expired_on_server")
    try:
        out = orders.do_pick_up_order(
            tx, actor, site, order_id, event.method, at, door=KIOSK, opened=opened
        )
    except Conflict:  # nothing of the order waits in those compartments any more
        applied.conflicts.insert(0, "already_picked_up")
        _withdraw_commands(tx, actor, site, [item.id for item in items], at)
        return applied
    if {c.id for c in out.compartments} != opened:
        applied.conflicts.append("compartment_mismatch")
    _withdraw_commands(tx, actor, site, [item.id for item in taken], at)
    return applied


# --- deposits --------------------------------------------------------------------------------


def _deposit(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: DepositEvent, at: datetime
) -> Applied:
    target = _compartment(tx, site, event.compartment_id)
    row = tx.one("SELECT order_id, site_id FROM parcels WHERE id = :id", {"id": event.parcel_id})
    if row is None or row[1] != site.id:
        raise Rejected("unknown_parcel", f"No parcel {event.parcel_id!r} announced here.")
    order: orders.OrderRow | None = None
    items: list[parcels.ParcelRow] = []
    if row[0] is not None:
        order, items = orders.lock_order(tx, row[0])
        parcel = next(item for item in items if item.id == event.parcel_id)
    else:
        (parcel,) = parcels.select_parcels(tx, "p.id = :id", {"id": event.parcel_id}, lock=True)
    applied = Applied(
        conflicts=_courier_conflicts(tx, event.courier_id, parcel),
        parcel_id=parcel.id,
        compartment_id=target[0],
    )
    if parcel.status == "deposited":
        reason = (
            "already_deposited" if parcel.compartment_id == target[0] else "deposited_elsewhere"
        )
        applied.conflicts.insert(0, reason)
        return applied
    if parcel.status not in ("announced", "cancelled"):
        applied.conflicts.insert(0, f"{parcel.status}_on_server")
        if parcel.status == "expired":
            applied.conflicts[0] = "expired_before_deposit"
        return applied
    if parcel.status == "cancelled":
        applied.conflicts.insert(0, "cancelled_on_server")
    if _make_room(ctx, tx, actor, site, target[0], parcel, at, event.id):
        applied.conflicts.append("compartment_given_away")
    data: dict[str, Any] = {
        "kiosk_event": event.id,
        "offline": event.offline,
        "courier_id": event.courier_id,
    }
    if order is not None:
        if order.status not in ("reserved", "loading") or at >= order.collect_by:
            applied.conflicts.append("order_not_loading")
        orders.do_load(
            ctx, tx, actor, site, order, items, [parcel], at, door=KIOSK, into=target[0], **data
        )
    elif parcel.status == "cancelled":
        # Physically in the locker, but its carrier called it off: it waits for the courier.
        parcels.do_deposit(ctx, tx, actor, site, parcel, at, door=KIOSK, into=target[0], **data)
        tx.flush()  # the deposit's change of the parcel goes first (one change of a row each)
        parcels.do_expire(tx, actor, parcel, at, reason="cancelled_on_server", **data)
    else:
        parcels.do_deposit_parcel(
            ctx, tx, actor, site, parcel, at, door=KIOSK, into=target[0], **data
        )
    return applied


def _courier_conflicts(tx: Tx, courier_id: str | None, parcel: parcels.ParcelRow) -> list[str]:
    if courier_id is None:
        return []
    row = tx.one("SELECT org_id, active FROM courier_codes WHERE id = :id", {"id": courier_id})
    if row is None:
        return ["unknown_courier"]
    if row[0] != parcel.carrier_org_id:
        return ["courier_of_another_org"]
    return [] if row[1] else ["courier_inactive"]


def _make_room(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    site: SiteInfo,
    compartment_id: str,
    parcel: parcels.ParcelRow,
    at: datetime,
    event_id: str,
) -> bool:
    """Move every other parcel the server has in the compartment the kiosk just filled: a
    reservation to another free compartment, a parcel it thought inside to none (it was not
    there: an operator must find it, so an alarm is raised). True when there was one."""
    others = parcels.select_parcels(
        tx,
        "p.compartment_id = :c AND p.id <> :id"
        " AND p.status IN ('announced', 'deposited', 'expired', 'awaiting_collection')",
        {"c": compartment_id, "id": parcel.id},
        lock=True,
    )
    for other in others:
        if other.status == "announced":
            parcels.do_move_reservation(
                ctx, tx, actor, site, other, at, reason="kiosk_deposit", kiosk_event=event_id
            )
        else:
            parcels.do_displace(tx, actor, other, at, reason="kiosk_deposit", kiosk_event=event_id)
            alarms.do_raise_alarm(
                tx,
                actor,
                site.id,
                "parcel_displaced",
                at,
                compartment_id=compartment_id,
                detail={"parcel_id": other.id, "by_parcel_id": parcel.id},
            )
    # The others' changes go first: two live parcels never share a compartment, even
    # for the length of one statement.
    tx.flush()
    return bool(others)


# --- doors, compartments, alarms, refusals, commands -----------------------------------------


def _door(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: DoorEvent, at: datetime
) -> Applied:
    target = _compartment(tx, site, event.compartment_id)
    tx.execute(
        "UPDATE compartments SET door = :door WHERE id = :id", {"door": event.door, "id": target[0]}
    )
    record(
        tx,
        "compartment.door_opened" if event.door == "open" else "compartment.door_closed",
        actor,
        at,
        site_id=site.id,
        compartment_id=target[0],
        data={"commanded": event.commanded, "kiosk_event": event.id, "offline": event.offline},
    )
    return Applied(compartment_id=target[0])


def _alarm(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: AlarmEvent, at: datetime
) -> Applied:
    compartment_id = None
    if event.compartment_id is not None:
        compartment_id = str(_compartment(tx, site, event.compartment_id)[0])
    if event.state == "cleared":
        cleared = alarms.do_clear_alarm(
            tx, actor, site.id, event.kind, at, compartment_id=compartment_id
        )
        return Applied(code=None if cleared else "no_open_alarm", compartment_id=compartment_id)
    detail = event.detail if isinstance(event.detail, dict) else {}
    if isinstance(event.detail, str):
        detail = {"message": event.detail}
    detail = {**detail, "kiosk_event": event.id, "offline": event.offline}
    raised = alarms.do_raise_alarm(
        tx, actor, site.id, event.kind, at, compartment_id=compartment_id, detail=detail
    )
    return Applied(code=None if raised.opened else "alarm_repeated", compartment_id=compartment_id)


def _out_of_service(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: OutOfServiceEvent, at: datetime
) -> Applied:
    target = _compartment(tx, site, event.compartment_id)
    reserved = parcels.select_parcels(
        tx, "p.compartment_id = :c AND p.status = 'announced'", {"c": target[0]}, lock=True
    )
    tx.execute("UPDATE compartments SET state = 'out_of_service' WHERE id = :id", {"id": target[0]})
    moved = [
        parcels.do_move_reservation(
            ctx, tx, actor, site, parcel, at, reason="out_of_service", kiosk_event=event.id
        )
        for parcel in reserved
    ]
    record(
        tx,
        "compartment.out_of_service",
        actor,
        at,
        site_id=site.id,
        compartment_id=target[0],
        data={
            "reason": event.reason,
            "moved": [p.id for p in reserved],
            "to": moved,
            "kiosk_event": event.id,
            "offline": event.offline,
        },
    )
    return Applied(compartment_id=target[0])


def _in_service(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: InServiceEvent, at: datetime
) -> Applied:
    target = _compartment(tx, site, event.compartment_id)
    back = tx.one(
        "UPDATE compartments SET state = CASE"
        " WHEN EXISTS (SELECT 1 FROM parcels WHERE compartment_id = :id"
        "  AND status IN ('deposited', 'expired', 'awaiting_collection')) THEN 'occupied'"
        " WHEN EXISTS (SELECT 1 FROM parcels WHERE compartment_id = :id"
        "  AND status = 'announced') THEN 'reserved' ELSE 'free' END"
        " WHERE id = :id AND state = 'out_of_service' RETURNING state",
        {"id": target[0]},
    )
    if back is None:
        return Applied(code="already_in_service", compartment_id=target[0])
    record(
        tx,
        "compartment.in_service",
        actor,
        at,
        site_id=site.id,
        compartment_id=target[0],
        data={"state": back[0], "kiosk_event": event.id, "offline": event.offline},
    )
    return Applied(compartment_id=target[0])


def _refused(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: RefusedEvent, at: datetime
) -> Applied:
    record(
        tx,
        "pickup.failed",
        actor,
        at,
        site_id=site.id,
        data={
            "method": event.method,
            "reason": event.reason,
            "count": event.count,
            "source": "kiosk",
            "kiosk_event": event.id,
            "offline": event.offline,
        },
    )
    return Applied()


#: The outbox state and reason a kiosk's answer to a command leaves it in.
_COMMAND_OUTCOMES = {
    "opened": ("sent", None),
    "expired": ("skipped", "expired before the kiosk ran it"),
    "declined": ("skipped", "declined by the kiosk (its parcel had left)"),
    "failed": ("dead", "the kiosk could not open the door"),
}


def _command(
    ctx: Context, tx: Tx, actor: Actor, site: SiteInfo, event: CommandEvent, at: datetime
) -> Applied:
    row = tx.one(
        "SELECT state, parcel_id, payload FROM outbox WHERE id = :id AND site_id = :site"
        " AND topic = 'kiosk.open_compartment'" + tx.lock(),
        {"id": event.command_id, "site": site.id},
    )
    if row is None:
        raise Rejected("unknown_command", f"No door command {event.command_id!r} here.")
    compartment_id = tx.json(row[2]).get("compartment_id")
    applied = Applied(parcel_id=row[1], compartment_id=compartment_id)
    if row[0] != "pending":
        applied.conflicts.append("command_not_pending")
        return applied
    state, why = _COMMAND_OUTCOMES[event.result]
    tx.execute(
        "UPDATE outbox SET state = :state, last_error = :why, attempts = attempts + 1,"
        " sent_at = :sent WHERE id = :id",
        {
            "state": state,
            "why": why,
            "sent": at if state == "sent" else None,
            "id": event.command_id,
        },
    )
    record(
        tx,
        f"kiosk.command_{event.result}",
        actor,
        at,
        site_id=site.id,
        parcel_id=row[1],
        compartment_id=compartment_id,
        data={"command_id": event.command_id, "kiosk_event": event.id, "offline": event.offline},
    )
    return applied


_APPLY: dict[str, Apply] = {
    "pickup": _pickup,
    "deposit": _deposit,
    "door": _door,
    "alarm": _alarm,
    "out_of_service": _out_of_service,
    "in_service": _in_service,
    "refused": _refused,
    "command": _command,
}
