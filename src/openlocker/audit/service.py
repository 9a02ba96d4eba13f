"""The audit log: every state change, hash-chained; and the outbox for side effects.

Use cases call ``record`` and ``enqueue`` inside their transaction. Events are chained
just before commit (``before_commit``), so the chain head is locked only for the few
milliseconds of the commit and a rolled-back transaction leaves no trace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from openlocker.audit.models import AuditEvent, AuditHead, OutboxMessage
from openlocker.audit.schemas import EventList, EventOut
from openlocker.core.context import Actor, Context
from openlocker.core.errors import InvalidInput
from openlocker.core.ids import new_id

GENESIS = "0" * 64
_PENDING = "audit_pending"


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    """SHA-256 over the previous hash and every field a reader relies on."""
    body = orjson.dumps(
        [
            prev_hash,
            event.id,
            event.name,
            event.actor,
            event.site_id,
            event.parcel_id,
            event.compartment_id,
            event.at.isoformat(timespec="microseconds"),
            event.data,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def record(
    session: Session,
    name: str,
    actor: Actor,
    at: datetime,
    *,
    site_id: str | None = None,
    parcel_id: str | None = None,
    compartment_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the current transaction; it is chained at commit."""
    event = AuditEvent(
        id=new_id("evt"),
        name=name,
        actor=actor.name,
        site_id=site_id,
        parcel_id=parcel_id,
        compartment_id=compartment_id,
        at=at,
        data=data or {},
    )
    session.info.setdefault(_PENDING, []).append(event)


def enqueue(
    session: Session,
    topic: str,
    payload: dict[str, Any],
    at: datetime,
    *,
    parcel_id: str | None = None,
    sealed: str | None = None,
) -> None:
    """Queue a side effect (message, webhook, locker command); it leaves after commit."""
    session.add(
        OutboxMessage(
            id=new_id("obx"),
            topic=topic,
            parcel_id=parcel_id,
            payload=payload,
            sealed=sealed,
            created_at=at,
            available_at=at,
            attempts=0,
        )
    )


@sa_event.listens_for(Session, "before_commit")
def _chain_pending(session: Session) -> None:
    pending: list[AuditEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    prev = head.hash
    for event in pending:
        event.prev_hash = prev
        event.hash = prev = event_hash(prev, event)
    session.add_all(pending)
    session.flush()
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(hash=prev, count=AuditHead.count + len(pending))
    )


@sa_event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked: int
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str | None = None


def check_chain(session: Session, *, batch: int = 5000) -> ChainReport:
    """Walk the chain; the first event whose hash or link does not hold breaks it."""
    prev = GENESIS
    checked = 0
    for event in _events_in_order(session, batch):
        if event.prev_hash != prev:
            return ChainReport(False, checked, event.seq, event.id, "link to the previous event broken")
        if event_hash(prev, event) != event.hash:
            return ChainReport(False, checked, event.seq, event.id, "event content altered")
        prev = event.hash
        checked += 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.hash != prev or head.count != checked):
        return ChainReport(False, checked, None, None, "events missing at the end of the chain")
    return ChainReport(True, checked)


def _events_in_order(session: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def count_events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def list_events(
    ctx: Context,
    *,
    parcel_id: str | None = None,
    site_id: str | None = None,
    name: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> EventList:
    """Events oldest first; the cursor is the last sequence number seen."""
    query = select(AuditEvent).order_by(AuditEvent.seq).limit(limit + 1)
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidInput("The cursor is not valid.", code="invalid_cursor")
        query = query.where(AuditEvent.seq > int(cursor))
    if parcel_id is not None:
        query = query.where(AuditEvent.parcel_id == parcel_id)
    if site_id is not None:
        query = query.where(AuditEvent.site_id == site_id)
    if name is not None:
        query = query.where(AuditEvent.name == name)
    with ctx.db.read() as session:
        rows = session.scalars(query).all()
        items = [EventOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    return EventList(items=items, next_cursor=str(rows[limit - 1].seq) if len(rows) > limit else None)
