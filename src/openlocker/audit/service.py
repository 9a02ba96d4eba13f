"""The audit log: every state change, hash-chained; and the outbox for side effects.

Use cases call ``record`` and ``enqueue`` inside their transaction, so an event exists
exactly when its change committed. A sealer (``seal_pending``, run by every server process
in the background and by ``openlocker audit verify``) then appends committed events to the
chain in batches: it gives each one its ``chain_index``, the previous event's hash and its
own. Appending at commit time instead would make every write in the network queue on the
chain head for the length of its commit.

Anyone who can write to the database could cut the chain and link it anew, so the sealer
also signs checkpoints of it (``audit.checkpoints``) and refuses to seal a chain that no
longer agrees with the newest one it knows; ``check_chain`` holds the chain against all of
them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openlocker.audit.checkpoints import (
    FILE_NAME,
    Checkpoint,
    Witness,
    key_id,
    read_checkpoints,
    sign_checkpoint,
    signature_valid,
    witness,
)
from openlocker.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from openlocker.audit.schemas import CheckpointList, CheckpointOut, EventList, EventOut
from openlocker.core.context import Actor, Context
from openlocker.core.errors import DomainError, InvalidInput
from openlocker.core.ids import new_id
from openlocker.core.sql import Row, Tx, insert_rows

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
    #: The site a locker command is for (its kiosk finds its pending commands by it).
    site_id: str | None = None


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
                "site_id": message.site_id,
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


class AuditTampered(DomainError):
    """The chain no longer agrees with a signed checkpoint: events were removed or rewritten."""

    status = 409
    code = "audit_tampered"
    title = "Audit log tampered with"


#: The head (the caller locks it first), the newest checkpoint of this key in the database, and
#: the hashes of the events at the head, at that checkpoint and at the one the caller knows.
_HEAD = (
    "SELECT h.hash, h.count, c.count, c.hash, c.at, c.key_id, c.signature,"
    " (SELECT hash FROM audit_events WHERE chain_index = h.count),"
    " (SELECT hash FROM audit_events WHERE chain_index = c.count),"
    " (SELECT hash FROM audit_events WHERE chain_index = :known)"
    " FROM audit_head h LEFT JOIN audit_checkpoints c ON c.count ="
    " (SELECT MAX(count) FROM audit_checkpoints WHERE key_id = :key_id) WHERE h.id = 1"
)
_INSERT_CHECKPOINT = (
    "INSERT INTO audit_checkpoints (count, hash, at, key_id, signature)"
    " VALUES (:count, :hash, :at, :key_id, :signature)"
)


def seal_pending(ctx: Context, *, batch: int = 5000) -> int:
    """Append committed, unsealed events to the chain, oldest first; returns how many.

    Works in transactions of at most ``batch`` events until a pass finds fewer than that.
    Sealers in several processes take turns on the chain head's row lock.

    Each pass first holds the head against the newest checkpoint this process knows (in its
    memory, in the data folder's file, in the database) and raises ``AuditTampered``, sealing
    nothing, when they disagree. When the chain has grown past that checkpoint and it is
    ``audit_checkpoint_interval_seconds`` old, the pass signs a checkpoint of the new head,
    stores it and, once committed, appends it to the file.
    """
    known_by = witness(ctx.settings.data_folder / FILE_NAME, ctx.keyring.audit_public_key())
    sealed = 0
    while True:
        known = known_by.newest()
        with ctx.db.sql.transaction() as tx:
            # The lock first, the reads after it: on PostgreSQL a statement that waits for a
            # row lock still reads its subqueries from the snapshot taken before the wait, so
            # it would miss the events the sealer it waited for just linked.
            tx.execute(f"SELECT id FROM audit_head WHERE id = 1{tx.lock()}")
            state = tx.one(_HEAD, {"known": known.count if known else 0, "key_id": known_by.key_id})
            assert state is not None, "audit_head is seeded by the first migration"
            newest = _check_head(known_by, state, known)
            pending = tx.all(_PENDING, {"batch": batch})
            prev, index = state[0], state[1]
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
            checkpoint = _due_checkpoint(ctx, newest, index, prev)
            if checkpoint is not None:
                tx.defer(_INSERT_CHECKPOINT, asdict(checkpoint))
            if links:
                tx.execute(
                    "UPDATE audit_head SET hash = :hash, count = :count WHERE id = 1",
                    {"hash": prev, "count": index},
                )
        # Only once committed: a file line the database then rolled back would read as tampering.
        if checkpoint is not None:
            known_by.append(checkpoint)
        sealed += len(pending)
        if len(pending) < batch:
            # A short pass cleared the backlog; what commits from now on is the next run's.
            return sealed


def _check_head(known_by: Witness, state: Row, known: Checkpoint | None) -> Checkpoint | None:
    """The newest of the checkpoints in ``state`` and ``known``, when the head agrees with
    both; ``AuditTampered`` otherwise."""
    head_hash, count, at_head, at_stored, at_known = (state[i] for i in (0, 1, 7, 8, 9))
    if count and at_head != head_hash:
        raise AuditTampered(
            f"Refusing to seal: the chain head says {count} events, but event {count}"
            + (" is missing." if at_head is None else " carries another hash.")
        )
    stored = None
    if state[2] is not None:
        signed_at = Tx.time(state[4])
        assert signed_at is not None, "the column is not nullable"
        stored = Checkpoint(state[2], state[3], signed_at, state[5], state[6])
    newest = None
    for checkpoint, found, where in (
        (stored, at_stored, "the database"),
        (known, at_known, f"{known_by.path} or this process's memory"),
    ):
        if checkpoint is None:
            continue
        if not known_by.verified(checkpoint):
            raise AuditTampered(
                f"Refusing to seal: the checkpoint at {checkpoint.count} in {where} is not"
                " signed by this server's audit key: it was forged or altered."
            )
        problem = _disagreement(checkpoint, count, found, where)
        if problem is not None:
            raise AuditTampered(f"Refusing to seal: {problem}.")
        if newest is None or checkpoint.count > newest.count:
            newest = checkpoint
    if stored is not None:
        known_by.remember(stored)
    return newest


def _due_checkpoint(
    ctx: Context, newest: Checkpoint | None, count: int, head_hash: str
) -> Checkpoint | None:
    """A checkpoint of the head, when the chain grew past ``newest`` and that one is old enough."""
    if count == 0 or (newest is not None and count <= newest.count):
        return None
    now = ctx.clock()
    if newest is not None:
        age = (now - newest.at).total_seconds()
        if 0 <= age < ctx.settings.audit_checkpoint_interval_seconds:
            return None  # a clock set back must not stop checkpoints until it catches up
    return sign_checkpoint(ctx.keyring.audit_signing_key(), count, head_hash, now)


def _disagreement(checkpoint: Checkpoint, length: int, found: str | None, where: str) -> str | None:
    """How a chain of ``length`` events, whose event ``checkpoint.count`` carries the hash
    ``found``, disagrees with ``checkpoint`` (from ``where``); ``None`` when it agrees."""
    if checkpoint.count <= length and found == checkpoint.hash:
        return None
    signed = f"signed at {checkpoint.at.isoformat(timespec='seconds')} ({where})"
    if checkpoint.count > length:
        return (
            f"the chain has {length} events but a checkpoint {signed} covers"
            f" {checkpoint.count}: events were removed"
        )
    if found is None:
        return (
            f"event {checkpoint.count} is missing, which a checkpoint {signed} covers:"
            " events were removed"
        )
    return (
        f"the checkpoint at {checkpoint.count} {signed} does not match: events up to"
        f" {checkpoint.count} were rewritten"
    )


@dataclass(frozen=True)
class ChainReport:
    """What ``check_chain`` found: ``intact`` when the chain holds and agrees with every
    checkpoint."""

    intact: bool
    checked: int
    broken_seq: int | None = None
    broken_id: str | None = None
    #: Why the chain itself does not hold.
    reason: str | None = None
    unsealed: int = 0
    #: Checkpoints whose signature verified and that the chain matches.
    checkpoints: int = 0
    newest: Checkpoint | None = None
    #: Where the checkpoints disagree with the chain or with each other (the first few).
    problems: tuple[str, ...] = ()
    #: Where checkpoints were looked for, and how many each held.
    sources: tuple[tuple[str, int], ...] = ()


def check_chain(
    ctx: Context,
    *,
    kept: Path | None = None,
    public_keys: Sequence[Ed25519PublicKey] = (),
    batch: int = 5000,
) -> ChainReport:
    """Walk the chain, then hold it against every checkpoint: the database's, the data
    folder's file's and those in ``kept`` (JSON lines or answers of the checkpoints API).

    The first event whose place, link or hash does not hold breaks the chain. A checkpoint
    must be signed by this server's audit key or one of ``public_keys``, match the event at
    its count, and be in the database too when it comes from a file. Events not sealed yet
    are counted in ``unsealed``; seal first to check everything.
    """
    keys = {
        key_id(key): key for key in (ctx.keyring.audit_signing_key().public_key(), *public_keys)
    }
    with ctx.db.read() as session:
        chain = _walk(session, batch)
        length = session.scalar(select(func.max(AuditEvent.chain_index))) or 0
        audit = _CheckpointAudit(session, keys, length)
        audit.check_database()
        for path in (ctx.settings.data_folder / FILE_NAME, kept):
            if path is not None:
                audit.check_file(path)
        unsealed = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.chain_index.is_(None))
        )
    return replace(
        chain,
        intact=chain.intact and not audit.problems,
        unsealed=unsealed or 0,
        checkpoints=audit.matched,
        newest=audit.newest,
        problems=audit.report(),
        sources=tuple(audit.sources),
    )


def _walk(session: Session, batch: int) -> ChainReport:
    """The chain on its own: each event's place, link and hash, and the head."""
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
    return ChainReport(True, checked)


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


#: Checkpoints looked up in one query (an ``IN`` list of this many counts).
_CHECKPOINTS_PER_QUERY = 1000
_MAX_PROBLEMS = 20


class _CheckpointAudit:
    """Checkpoints from several places, held against the chain and the database's copies."""

    def __init__(self, session: Session, keys: dict[str, Ed25519PublicKey], length: int) -> None:
        self.session = session
        self.keys = keys
        self.own_key_id = next(iter(keys))
        self.length = length
        self.matched = 0
        self.newest: Checkpoint | None = None
        #: The first problems found (``_MAX_PROBLEMS``), and how many more there were.
        self.problems: list[str] = []
        self.more = 0
        self.sources: list[tuple[str, int]] = []

    def check_database(self) -> None:
        held, last = 0, 0
        while True:
            rows = self.session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.count > last)
                .order_by(AuditCheckpoint.count)
                .limit(_CHECKPOINTS_PER_QUERY)
            ).all()
            if not rows:
                break
            self._check([_checkpoint(row) for row in rows], "the database")
            held, last = held + len(rows), rows[-1].count
            self.session.expunge_all()
        self.sources.append(("the database", held))

    def check_file(self, path: Path) -> None:
        """Each checkpoint of ``path``, and that the database holds the same one."""
        if not path.exists():
            self.sources.append((f"{path} (no such file)", 0))
            return
        held = 0
        entries = read_checkpoints(path)
        while chunk := list(islice(entries, _CHECKPOINTS_PER_QUERY)):
            held += len(chunk)
            found = [(where, checkpoint) for where, checkpoint in chunk if checkpoint is not None]
            stored = {
                row.count: _checkpoint(row)
                for row in self.session.scalars(
                    select(AuditCheckpoint).where(
                        AuditCheckpoint.count.in_(sorted({c.count for _, c in found}))
                    )
                )
            }
            unknown = []
            for where, checkpoint in chunk:
                if checkpoint is None:
                    self._problem(f"{where} of {path} is not a checkpoint")
                    continue
                copy = stored.get(checkpoint.count)
                if copy == checkpoint:
                    continue  # checked as the database's
                self._problem(
                    f"the checkpoint at {checkpoint.count} in {path} ({where}) "
                    + (
                        "is missing from the database: checkpoints were deleted"
                        if copy is None
                        else "differs from the database's at that count"
                    )
                )
                unknown.append(checkpoint)
            self._check(unknown, str(path))
            self.session.expunge_all()
        self.sources.append((str(path), held))

    def _check(self, checkpoints: list[Checkpoint], where: str) -> None:
        """Each checkpoint's signature, and the hash of the event at its count."""
        if not checkpoints:
            return
        counts = sorted({checkpoint.count for checkpoint in checkpoints})
        hashes: dict[int | None, str | None] = {
            index: digest
            for index, digest in self.session.execute(
                select(AuditEvent.chain_index, AuditEvent.hash).where(
                    AuditEvent.chain_index.in_(counts)
                )
            )
        }
        for checkpoint in checkpoints:
            key = self.keys.get(checkpoint.key_id)
            problem: str | None
            if key is None:
                problem = (
                    f"the checkpoint at {checkpoint.count} ({where}) is signed by key"
                    f" {checkpoint.key_id}, not this server's {self.own_key_id}: forged, or"
                    " signed before the secret key changed"
                )
            elif not signature_valid(checkpoint, key):
                problem = (
                    f"the checkpoint at {checkpoint.count} ({where}) has a bad signature:"
                    " forged or altered"
                )
            else:
                problem = _disagreement(
                    checkpoint, self.length, hashes.get(checkpoint.count), where
                )
            if problem is not None:
                self._problem(problem)
                continue
            self.matched += 1
            if self.newest is None or checkpoint.count > self.newest.count:
                self.newest = checkpoint

    def _problem(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more += 1

    def report(self) -> tuple[str, ...]:
        """The first problems, and how many more there were."""
        if self.more:
            return (*self.problems, f"… and {self.more} more")
        return tuple(self.problems)


def _checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(row.count, row.hash, row.at, row.key_id, row.signature)


_CURSOR = re.compile(r"[0-9]{1,18}")


def _after(cursor: str) -> int:
    """The number a cursor stands for; ``invalid_cursor`` unless it is 1 to 18 ASCII digits
    (what fits PostgreSQL's bigint)."""
    if not _CURSOR.fullmatch(cursor):
        raise InvalidInput("The cursor is not valid.", code="invalid_cursor")
    return int(cursor)


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
        query = query.where(AuditEvent.seq > _after(cursor))
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


def list_checkpoints(
    ctx: Context, *, cursor: str | None = None, limit: int = 100
) -> CheckpointList:
    """Checkpoints oldest first, with the public key that checks them; the cursor is the last
    count seen, so a copy kept elsewhere is brought up to date from its newest count."""
    query = select(AuditCheckpoint).order_by(AuditCheckpoint.count).limit(limit + 1)
    if cursor is not None:
        query = query.where(AuditCheckpoint.count > _after(cursor))
    with ctx.db.read() as session:
        rows = session.scalars(query).all()
        items = [CheckpointOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    return CheckpointList(
        public_key=ctx.keyring.audit_public_key(),
        key_id=key_id(ctx.keyring.audit_signing_key().public_key()),
        items=items,
        next_cursor=str(rows[limit - 1].count) if len(rows) > limit else None,
    )
