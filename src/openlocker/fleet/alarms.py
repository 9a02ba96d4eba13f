"""Alarms: what a site needs an operator for (a forced door, a board that went quiet, …).

Any feature raises one in its own transaction (``do_raise_alarm``): the site's kiosk through
its events, orders for ``collection_discrepancy`` and ``temperature_fault``, the fleet
channel for ``kiosk_silent``. An alarm of a kind already open for the same compartment (or
the same site, without one) counts up instead of opening another. It is open until its
cause clears (``do_clear_alarm``) or an operator acknowledges it. Every raise, clear and
acknowledgement is an audit event; a new alarm also queues an ``alarm.raised`` webhook
for every operator organization.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openlocker.audit.service import Message, enqueue, record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import NotFound
from openlocker.core.ids import new_id
from openlocker.core.pages import encode_cursor, newest_first
from openlocker.core.sql import Row, Tx
from openlocker.fleet.schemas import AlarmList, AlarmOut
from openlocker.orgs.service import Principal

_COLUMNS = (
    "id, site_id, compartment_id, kind, state, count, detail, raised_by, raised_at,"
    " last_raised_at, closed_at, closed_reason, closed_by"
)
_SELECT = f"SELECT {_COLUMNS} FROM alarms a"


@dataclass(frozen=True, slots=True)
class Raised:
    """An alarm raised: its id, how often it was raised while open, and whether this raise
    opened it (False: it was open already and counted up)."""

    id: str
    count: int
    opened: bool


def _view(tx: Tx, row: Row) -> AlarmOut:
    return AlarmOut(
        id=row[0],
        site_id=row[1],
        compartment_id=row[2],
        kind=row[3],
        state=row[4],
        count=row[5],
        detail=tx.json(row[6]) or {},
        raised_by=row[7],
        raised_at=tx.time(row[8]),
        last_raised_at=tx.time(row[9]),
        closed_at=tx.time(row[10]),
        closed_reason=row[11],
        closed_by=row[12],
    )


def _lock_key(site_id: str, kind: str, compartment_id: str | None) -> int:
    digest = hashlib.blake2b(
        f"alarm:{site_id}:{kind}:{compartment_id or ''}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _open(tx: Tx, site_id: str, kind: str, compartment_id: str | None) -> Row | None:
    """The open alarm of ``kind`` there, holding its lock until the transaction ends."""
    tx.serialize(_lock_key(site_id, kind, compartment_id))
    where = "compartment_id = :c" if compartment_id is not None else "compartment_id IS NULL"
    return tx.one(
        f"SELECT id, count FROM alarms WHERE site_id = :s AND kind = :k AND state = 'open'"
        f" AND {where}",
        {"s": site_id, "k": kind, "c": compartment_id},
    )


def do_raise_alarm(
    tx: Tx,
    actor: Actor,
    site_id: str,
    kind: str,
    now: datetime,
    *,
    compartment_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Raised:
    """Raise an alarm of ``kind`` at the site (a compartment of it, or the site as a whole)
    in the caller's transaction; audited (``alarm.raised``). One already open there counts
    up and takes the new ``detail``; a new one queues the ``alarm.raised`` webhook for the
    operators. Racing raises of one alarm take turns (an advisory lock on PostgreSQL)."""
    detail = detail or {}
    found = _open(tx, site_id, kind, compartment_id)
    if found is not None:
        alarm_id, count = found[0], int(found[1]) + 1
        tx.execute(
            "UPDATE alarms SET count = :count, last_raised_at = :now, detail = :detail"
            " WHERE id = :id",
            {"count": count, "now": now, "detail": tx.json_param(detail), "id": alarm_id},
        )
    else:
        alarm_id, count = new_id("alm"), 1
        tx.execute(
            f"INSERT INTO alarms ({_COLUMNS}) VALUES (:id, :site, :compartment, :kind, 'open',"
            " 1, :detail, :actor, :now, :now, NULL, NULL, NULL)",
            {
                "id": alarm_id,
                "site": site_id,
                "compartment": compartment_id,
                "kind": kind,
                "detail": tx.json_param(detail),
                "actor": actor.name,
                "now": now,
            },
        )
        _notify_operators(tx, now, alarm_id, site_id, compartment_id, kind, detail)
    record(
        tx,
        "alarm.raised",
        actor,
        now,
        site_id=site_id,
        compartment_id=compartment_id,
        data={"alarm_id": alarm_id, "kind": kind, "count": count, "detail": detail},
    )
    return Raised(alarm_id, count, found is None)


def _notify_operators(
    tx: Tx,
    now: datetime,
    alarm_id: str,
    site_id: str,
    compartment_id: str | None,
    kind: str,
    detail: dict[str, Any],
) -> None:
    # Sites belong to the network, not to one organization: every operator hears of them.
    operators = [row[0] for row in tx.all("SELECT id FROM organizations WHERE kind = 'operator'")]
    if not operators:
        return
    enqueue(
        tx,
        now,
        *(
            Message(
                "webhook.operator",
                {
                    "event": "alarm.raised",
                    "org_id": org_id,
                    "at": now.isoformat(),
                    "alarm_id": alarm_id,
                    "site_id": site_id,
                    "compartment_id": compartment_id,
                    "kind": kind,
                    "detail": detail,
                },
            )
            for org_id in operators
        ),
    )


def do_clear_alarm(
    tx: Tx,
    actor: Actor,
    site_id: str,
    kind: str,
    now: datetime,
    *,
    compartment_id: str | None = None,
) -> str | None:
    """Close the open alarm of ``kind`` there, its cause gone (``cleared``), audited; its id,
    or None when none was open."""
    found = _open(tx, site_id, kind, compartment_id)
    if found is None:
        return None
    _close(tx, str(found[0]), "cleared", actor, now)
    record(
        tx,
        "alarm.cleared",
        actor,
        now,
        site_id=site_id,
        compartment_id=compartment_id,
        data={"alarm_id": found[0], "kind": kind},
    )
    return str(found[0])


def _close(tx: Tx, alarm_id: str, reason: str, actor: Actor, now: datetime) -> None:
    tx.execute(
        "UPDATE alarms SET state = 'closed', closed_at = :now, closed_reason = :reason,"
        " closed_by = :actor WHERE id = :id",
        {"now": now, "reason": reason, "actor": actor.name, "id": alarm_id},
    )


def list_alarms(
    ctx: Context,
    principal: Principal,
    *,
    site_id: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> AlarmList:
    """Alarms, newest first, for operators; filters by site, kind and state."""
    principal.check_scope("admin")
    filters = {"a.site_id": site_id, "a.kind": kind, "a.state": state}
    sql, params = newest_first(_SELECT, "a.id", filters, cursor, limit)
    with ctx.db.sql.transaction(write=False) as tx:
        items = [_view(tx, row) for row in tx.all(sql, params)]
    more = len(items) > limit
    return AlarmList(
        items=items[:limit], next_cursor=encode_cursor(items[limit - 1].id) if more else None
    )


def acknowledge_alarm(ctx: Context, principal: Principal, alarm_id: str) -> AlarmOut:
    """An operator takes an open alarm: it is closed (``acknowledged``), audited. A closed
    one is answered unchanged. Raises ``alarm_not_found``."""
    principal.check_scope("admin")
    with ctx.db.sql.transaction() as tx:
        row = tx.one(_SELECT + " WHERE a.id = :id" + tx.lock("a"), {"id": alarm_id})
        if row is None:
            raise NotFound(f"No alarm {alarm_id!r}.", code="alarm_not_found")
        alarm = _view(tx, row)
        if alarm.state == "open":
            now = ctx.clock()
            _close(tx, alarm.id, "acknowledged", principal.actor, now)
            record(
                tx,
                "alarm.acknowledged",
                principal.actor,
                now,
                site_id=alarm.site_id,
                compartment_id=alarm.compartment_id,
                data={"alarm_id": alarm.id, "kind": alarm.kind, "count": alarm.count},
            )
            alarm = alarm.model_copy(
                update={
                    "state": "closed",
                    "closed_at": now,
                    "closed_reason": "acknowledged",
                    "closed_by": principal.actor.name,
                }
            )
        return alarm
