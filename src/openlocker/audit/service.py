"""The audit log: every state change, hash-chained; and the outbox for side effects.

Use cases call ``record`` and ``enqueue`` inside their transaction, so an event exists
exactly when its change committed. A sealer (``seal_pending``, run by every server process
in the background and by ``openlocker audit verify``) then appends committed events to the
chain in batches: it gives each one its ``chain_index``, the previous event's hash and its
own. Appending at commit time instead would make every write in the network queue on the
chain head for the length of its commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from openlocker.audit.models import AuditEvent, AuditHead, OutboxMessage
from openlocker.audit.schemas import EventList, EventOut
from openlocker.core.context import Actor, Context
from openlocker.core.errors import InvalidInput
from openlocker.core.ids import new_id

GENESIS = "0" * 64


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
    """Add an audit event to the current transaction; the sealer chains it after commit."""
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
    session.add(event)


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


def seal_pending(ctx: Context, *, batch: int = 5000) -> int:
    """Append committed, unsealed events to the chain, oldest first; returns how many.

    Works in transactions of at most ``batch`` events until a pass finds fewer than that.

    Sealers in several processes take turns on the chain head's row lock.
    """
    sealed = 0
    while True:
        with ctx.db.transaction() as session:
            head = session.execute(
                select(AuditHead).where(AuditHead.id == 1).with_for_update()
            ).scalar_one()
            pending = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.chain_index.is_(None))
                .order_by(AuditEvent.seq)
                .limit(batch)
            ).all()
            if not pending:
                return sealed
            prev, index = head.hash, head.count
            changes = []
            for event in pending:
                index += 1
                digest = event_hash(prev, event)
                changes.append(
                    {"seq": event.seq, "chain_index": index, "prev_hash": prev, "hash": digest}
                )
                prev = digest
            session.expunge_all()
            session.execute(update(AuditEvent), changes)
            session.execute(
                update(AuditHead).where(AuditHead.id == 1).values(hash=prev, count=index)
            )
            sealed += len(pending)
        if len(pending) < batch:
            # A short pass cleared the backlog; what commits from now on is the next run's.
            return sealed


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked: int
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str | None = None
    unsealed: int = 0


def check_chain(session: Session, *, batch: int = 5000) -> ChainReport:
    """Walk the chain; the first event whose place, link or hash does not hold breaks it.

    Events not sealed yet are counted in ``unsealed``; seal first to check everything.
    """
    prev = GENESIS
    checked = 0
    for event in _events_in_order(session, batch):
        if event.chain_index != checked + 1 or event.prev_hash != prev:
            return ChainReport(
                False, checked, event.seq, event.id, "link to the previous event broken"
            )
        if event_hash(prev, event) != event.hash:
            return ChainReport(False, checked, event.seq, event.id, "event content altered")
        prev = event.hash
        checked += 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.hash != prev or head.count != checked):
        return ChainReport(False, checked, None, None, "events missing at the end of the chain")
    unsealed = session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.chain_index.is_(None))
    )
    return ChainReport(True, checked, unsealed=unsealed or 0)


def _events_in_order(session: Session, batch: int) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.chain_index > last)
            .order_by(AuditEvent.chain_index)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].chain_index or 0
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
    return EventList(
        items=items, next_cursor=str(rows[limit - 1].seq) if len(rows) > limit else None
    )
