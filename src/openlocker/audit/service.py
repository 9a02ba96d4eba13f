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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openlocker.audit.models import AuditEvent, AuditHead
from openlocker.audit.schemas import EventList, EventOut
from openlocker.core.context import Actor, Context
from openlocker.core.errors import InvalidInput
from openlocker.core.ids import new_id
from openlocker.core.sql import Tx, insert_rows

GENESIS = "0" * 64


#: The fields an event's hash covers, in order (after the previous hash).
EVENT_FIELDS = ("id", "name", "actor", "site_id", "parcel_id", "compartment_id", "at", "data")


def event_hash(prev_hash: str, fields: Sequence[Any]) -> str:
    """SHA-256 over the previous hash and every field a reader relies on (``EVENT_FIELDS``)."""
    event_id, name, actor, site_id, parcel_id, compartment_id, at, data = fields
    body = orjson.dumps(
        [
            prev_hash,
            event_id,
            name,
            actor,
            site_id,
            parcel_id,
            compartment_id,
            at.isoformat(timespec="microseconds"),
            data,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(body).hexdigest()


def record(
    tx: Tx,
    name: str,
    actor: Actor,
    at: datetime,
    *,
    site_id: str | None = None,
    parcel_id: str | None = None,
    compartment_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write an audit event in the current transaction; the sealer chains it after commit."""
    tx.defer(
        "INSERT INTO audit_events (id, name, actor, site_id, parcel_id, compartment_id, at, data)"
        " VALUES (:id, :name, :actor, :site_id, :parcel_id, :compartment_id, :at, :data)",
        {
            "id": new_id("evt"),
            "name": name,
            "actor": actor.name,
            "site_id": site_id,
            "parcel_id": parcel_id,
            "compartment_id": compartment_id,
            "at": at,
            "data": tx.json_param(data or {}),
        },
    )


@dataclass(frozen=True)
class Message:
    """A side effect (recipient message, webhook, locker command) waiting in the outbox."""

    topic: str
    payload: dict[str, Any]
    parcel_id: str | None = None
    #: Credentials for the recipient, AES-GCM sealed with the server key.
    sealed: str | None = None


def enqueue(tx: Tx, at: datetime, *messages: Message) -> None:
    """Queue side effects in the current transaction, in one statement; they leave after commit."""
    sql, params = insert_rows(
        "outbox",
        {"created_at": at, "available_at": at, "attempts": 0},
        [
            {
                "id": new_id("obx"),
                "topic": message.topic,
                "parcel_id": message.parcel_id,
                "payload": tx.json_param(message.payload),
                "sealed": message.sealed,
            }
            for message in messages
        ],
    )
    tx.defer(sql, params)


_PENDING = (
    "SELECT seq, " + ", ".join(EVENT_FIELDS) + " FROM audit_events"
    " WHERE chain_index IS NULL ORDER BY seq LIMIT :batch"
)


_LINKS_PER_STATEMENT = 1000


def _write_links(tx: Tx, links: list[tuple[int, int, str, str]]) -> None:
    """Give events their place and hashes: one statement for many (not one per event)."""
    if tx.postgres:
        # Four arrays keep the statement's text constant: prepared once, not parsed per batch.
        seqs, indexes, prevs, hashes = (list(column) for column in zip(*links, strict=True))
        tx.execute(
            "UPDATE audit_events SET chain_index = v.i, prev_hash = v.p, hash = v.h"
            " FROM unnest(CAST(:seqs AS bigint[]), CAST(:indexes AS bigint[]),"
            " CAST(:prevs AS text[]), CAST(:hashes AS text[])) AS v(s, i, p, h)"
            " WHERE audit_events.seq = v.s",
            {"seqs": seqs, "indexes": indexes, "prevs": prevs, "hashes": hashes},
        )
        return
    values = ", ".join(f"(:s{i}, :i{i}, :p{i}, :h{i})" for i in range(len(links)))
    params: dict[str, Any] = {}
    for i, (seq, chain_index, prev_hash, digest) in enumerate(links):
        params.update({f"s{i}": seq, f"i{i}": chain_index, f"p{i}": prev_hash, f"h{i}": digest})
    tx.execute(
        "UPDATE audit_events SET chain_index = v.column2, prev_hash = v.column3,"
        f" hash = v.column4 FROM (VALUES {values}) AS v WHERE audit_events.seq = v.column1",
        params,
    )


def seal_pending(ctx: Context, *, batch: int = 5000) -> int:
    """Append committed, unsealed events to the chain, oldest first; returns how many.

    Works in transactions of at most ``batch`` events until a pass finds fewer than that.

    Sealers in several processes take turns on the chain head's row lock.
    """
    sealed = 0
    while True:
        with ctx.db.sql.transaction() as tx:
            head = tx.one(f"SELECT hash, count FROM audit_head WHERE id = 1{tx.lock()}")
            assert head is not None, "audit_head is seeded by the first migration"
            pending = tx.all(_PENDING, {"batch": batch})
            if not pending:
                return sealed
            prev, index = head[0], head[1]
            links = []
            for seq, *fields in pending:
                fields[6] = tx.time(fields[6])
                fields[7] = tx.json(fields[7])
                index += 1
                digest = event_hash(prev, fields)
                links.append((seq, index, prev, digest))
                prev = digest
            for start in range(0, len(links), _LINKS_PER_STATEMENT):
                _write_links(tx, links[start : start + _LINKS_PER_STATEMENT])
            tx.execute(
                "UPDATE audit_head SET hash = :hash, count = :count WHERE id = 1",
                {"hash": prev, "count": index},
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
        if event_hash(prev, [getattr(event, f) for f in EVENT_FIELDS]) != event.hash:
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
