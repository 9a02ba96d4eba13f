"""The fleet channel's use cases: what kiosks said, the commands sent to them, remote opens.

The consumer (``fleet.mqtt.consumer``) hears messages on the event loop and hands them
here in batches, one transaction a batch: a thousand kiosks heartbeating every 10 s are a
hundred messages a second, a few statements a flush rather than a hundred transactions.
What changes a kiosk's standing (online, offline, silent, a new version), every answer and
every door the state snapshot reports moved is audited; a heartbeat that changes nothing
but the time last heard is not (it would be a hundred audit events a second).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from openlocker.audit.service import Message, enqueue, record
from openlocker.core.clock import as_utc
from openlocker.core.context import Actor, Context
from openlocker.core.errors import NotFound
from openlocker.core.ids import new_id
from openlocker.core.mqtt import (
    Answer,
    Heartbeat,
    KioskMessage,
    OpenCommand,
    Presence,
    StateSnapshot,
)
from openlocker.core.sql import Row, Tx, insert_rows
from openlocker.fleet.alarms import do_clear_alarm, do_raise_alarm
from openlocker.fleet.mqtt.schemas import (
    CompartmentRef,
    KioskOut,
    KioskStateOut,
    RemoteOpenOut,
)

log = logging.getLogger("openlocker.fleet")

#: The outbox topic of door commands, whoever queued them (a pickup, a deposit, an operator).
OPEN_TOPIC = "kiosk.open_compartment"
#: PostgreSQL ``NOTIFY`` channel: a process that queued a command wakes the consumer.
NOTIFY_CHANNEL = "openlocker_fleet"
#: An unanswered command stays pending this long past its expiry (a late answer may still
#: come over HTTP), then it is skipped.
EXPIRY_GRACE = timedelta(seconds=60)
SYSTEM = Actor("system:fleet")
#: The status reason of a kiosk heard of only by an answer or a snapshot so far.
NEVER_SEEN = "never_seen"
#: The alarm of a kiosk not heard for ``fleet_silence_seconds`` (``GET /v1/alarms``).
SILENT_ALARM = "kiosk_silent"
_ROWS_PER_STATEMENT = 200


def kiosk_actor(site_id: str) -> Actor:
    return Actor(f"kiosk:{site_id}")


@dataclass(frozen=True)
class Heard:
    """One message a kiosk sent, as the consumer received it. ``retained``: the broker
    replayed it on subscribing, so it says what was true at ``message.sent_at``, not now."""

    site_id: str
    message: KioskMessage
    received_at: datetime
    retained: bool = False


@dataclass
class Kiosk:
    """A ``fleet_kiosks`` row (``stored`` False when there is none yet)."""

    site_id: str
    status: str = "offline"
    status_reason: str = NEVER_SEEN
    status_since: datetime | None = None
    last_seen_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    version: str | None = None
    uptime_seconds: float | None = None
    queued_events: int | None = None
    clock_offset_ms: int | None = None
    last_message_at: datetime | None = None
    silent: bool = False
    state: dict[str, Any] | None = None
    state_sent_at: datetime | None = None
    stored: bool = False


_KIOSK_COLUMNS = (
    "status",
    "status_reason",
    "status_since",
    "last_seen_at",
    "last_heartbeat_at",
    "version",
    "uptime_seconds",
    "queued_events",
    "clock_offset_ms",
    "last_message_at",
    "silent",
    "state",
    "state_sent_at",
)
_TIMES = {
    "status_since",
    "last_seen_at",
    "last_heartbeat_at",
    "last_message_at",
    "state_sent_at",
}


@dataclass(frozen=True)
class Note:
    """An audit event a message calls for."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)


def apply(kiosk: Kiosk, heard: Heard) -> tuple[Kiosk, list[Note]]:
    """The kiosk after ``heard``, and what to audit. A plain function of the two.

    Any live message proves the kiosk is there (``last_seen_at``). Presence and heartbeats
    older than the newest applied (by the kiosk's own ``sent_at``) change nothing else: a
    last will the broker sends after the kiosk reconnected, a retained ``online`` replayed
    to a restarted consumer.
    """
    message, now = heard.message, heard.received_at
    seen = now if not heard.retained else min(message.sent_at, now)
    notes: list[Note] = []
    after = replace(kiosk, last_seen_at=max(kiosk.last_seen_at or seen, seen))
    if after.status_since is None:
        after.status_since = seen
    if kiosk.silent and not heard.retained:
        after.silent = False
        notes.append(Note("kiosk.heard_again", {"silent_since": _iso(kiosk.last_seen_at)}))
    newer = kiosk.last_message_at is None or message.sent_at > kiosk.last_message_at
    if isinstance(message, Heartbeat):
        after.last_heartbeat_at = now
        if newer:
            after.last_message_at = message.sent_at
            after.uptime_seconds = message.uptime_seconds
            after.queued_events = message.queued_events
            after.clock_offset_ms = round((message.sent_at - now).total_seconds() * 1000)
            notes += _version(after, message.version)
            notes += _status(after, "online", "heartbeat", now)
    elif isinstance(message, Presence) and newer:
        after.last_message_at = message.sent_at
        if message.version is not None:
            notes += _version(after, message.version)
        notes += _status(after, message.status, message.reason, now)
    return after, notes


def _status(kiosk: Kiosk, status: str, reason: str, now: datetime) -> list[Note]:
    never_seen = kiosk.status_reason == NEVER_SEEN
    if kiosk.status == status and not never_seen:
        return []
    previous = None if never_seen else kiosk.status
    kiosk.status, kiosk.status_reason, kiosk.status_since = status, reason, now
    return [Note(f"kiosk.{status}", {"reason": reason, "previous": previous})]


def _version(kiosk: Kiosk, version: str) -> list[Note]:
    if kiosk.version == version:
        return []
    before, kiosk.version = kiosk.version, version
    return (
        [] if before is None else [Note("kiosk.version_changed", {"from": before, "to": version})]
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _placeholders(prefix: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    names = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{name}" for name in names), names


_KIOSKS = (
    "SELECT s.id, k.site_id, " + ", ".join(f"k.{c}" for c in _KIOSK_COLUMNS) + " FROM sites s"
    " LEFT JOIN fleet_kiosks k ON k.site_id = s.id WHERE s.id IN ({ids})"
)


def _load_kiosks(tx: Tx, site_ids: Sequence[str]) -> dict[str, Kiosk]:
    """The kiosks of those of ``site_ids`` that are sites (a fresh one for a site never heard)."""
    found: dict[str, Kiosk] = {}
    for start in range(0, len(site_ids), _ROWS_PER_STATEMENT):
        chunk = site_ids[start : start + _ROWS_PER_STATEMENT]
        marks, params = _placeholders("s", chunk)
        for row in tx.all(_KIOSKS.format(ids=marks), params):
            found[row[0]] = _kiosk(row[0], row[1] is not None, row[2:])
    return found


def _kiosk(site_id: str, stored: bool, values: Row) -> Kiosk:
    if not stored:
        return Kiosk(site_id)
    fields: dict[str, Any] = {}
    for column, value in zip(_KIOSK_COLUMNS, values, strict=True):
        if column in _TIMES:
            value = Tx.time(value)
        elif column == "state" and value is not None:
            value = Tx.json(value)
        elif column == "silent":
            value = bool(value)
        fields[column] = value
    return Kiosk(site_id, stored=True, **fields)


def _save_kiosks(tx: Tx, kiosks: Sequence[Kiosk]) -> None:
    """Insert or update ``kiosks``, a few hundred a statement."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in _KIOSK_COLUMNS)
    for start in range(0, len(kiosks), _ROWS_PER_STATEMENT):
        chunk = kiosks[start : start + _ROWS_PER_STATEMENT]
        rows = [
            {
                "site_id": k.site_id,
                **{
                    c: (
                        tx.json_param(k.state)
                        if c == "state" and k.state is not None
                        else getattr(k, c)
                    )
                    for c in _KIOSK_COLUMNS
                },
            }
            for k in chunk
        ]
        sql, params = insert_rows("fleet_kiosks", {}, rows)
        tx.execute(f"{sql} ON CONFLICT (site_id) DO UPDATE SET {updates}", params)


@dataclass
class Recorded:
    """What one batch did: messages applied, dropped (unknown site, unknown command), and
    the commands whose first answer it recorded."""

    applied: int = 0
    dropped: int = 0
    answered: list[str] = field(default_factory=list)


def record_heard(ctx: Context, batch: Sequence[Heard]) -> Recorded:
    """Apply a batch of kiosk messages, in the order heard, in one transaction."""
    outcome = Recorded()
    if not batch:
        return outcome
    with ctx.db.sql.transaction() as tx:
        kiosks = _load_kiosks(tx, sorted({h.site_id for h in batch}))
        changed: dict[str, Kiosk] = {}
        answers: list[Heard] = []
        snapshots: dict[str, Heard] = {}
        for heard in batch:
            kiosk = changed.get(heard.site_id) or kiosks.get(heard.site_id)
            if kiosk is None:
                log.warning(
                    "fleet message refused",
                    extra={"reason": "unknown_site", "site_id": heard.site_id},
                )
                outcome.dropped += 1
                continue
            after, notes = apply(kiosk, heard)
            if isinstance(heard.message, StateSnapshot):
                after = _take_snapshot(after, heard, snapshots)
            elif isinstance(heard.message, Answer):
                answers.append(heard)
            changed[heard.site_id] = after
            for note in notes:
                record(
                    tx,
                    note.name,
                    kiosk_actor(heard.site_id),
                    heard.received_at,
                    site_id=heard.site_id,
                    data=note.data,
                )
                if note.name == "kiosk.heard_again":
                    do_clear_alarm(
                        tx,
                        kiosk_actor(heard.site_id),
                        heard.site_id,
                        SILENT_ALARM,
                        heard.received_at,
                    )
            outcome.applied += 1
        for snapshot in snapshots.values():
            _apply_doors(tx, snapshot)
        _save_kiosks(tx, list(changed.values()))
        outcome.answered, dropped = _record_answers(tx, answers)
        outcome.dropped += dropped
        outcome.applied -= dropped
    return outcome


def _take_snapshot(kiosk: Kiosk, heard: Heard, snapshots: dict[str, Heard]) -> Kiosk:
    message = heard.message
    assert isinstance(message, StateSnapshot)
    if kiosk.state_sent_at is not None and message.sent_at <= kiosk.state_sent_at:
        return kiosk
    snapshots[heard.site_id] = heard
    return replace(
        kiosk,
        state={"compartments": [c.model_dump(mode="json") for c in message.compartments]},
        state_sent_at=message.sent_at,
    )


def _apply_doors(tx: Tx, heard: Heard) -> None:
    """Compartments of the site whose door the snapshot reports otherwise than recorded."""
    message = heard.message
    assert isinstance(message, StateSnapshot)
    reported = {c.compartment_id: c.door for c in message.compartments}
    rows = tx.all(
        "SELECT id, door FROM compartments WHERE site_id = :site", {"site": heard.site_id}
    )
    for compartment_id, door in rows:
        new = reported.get(compartment_id)
        if new is None or new == door:
            continue
        tx.execute(
            "UPDATE compartments SET door = :door WHERE id = :id AND site_id = :site",
            {"door": new, "id": compartment_id, "site": heard.site_id},
        )
        record(
            tx,
            "compartment.door_changed",
            kiosk_actor(heard.site_id),
            heard.received_at,
            site_id=heard.site_id,
            compartment_id=compartment_id,
            data={"door": new, "before": door, "source": "kiosk_state"},
        )


_COMMANDS = (
    "SELECT o.id, o.topic, o.payload, o.parcel_id, o.state, c.answered_at FROM outbox o"
    " LEFT JOIN fleet_commands c ON c.command_id = o.id WHERE o.id IN ({ids})"
)
_ANSWER = (
    "INSERT INTO fleet_commands (command_id, site_id, compartment_id, transaction_id,"
    " expires_at, publish_count, next_publish_at, answered_at, result, reason, answer)"
    " VALUES (:id, :site, :compartment, :transaction, :expires, 0, :now, :now, :result,"
    " :reason, :answer) ON CONFLICT (command_id) DO UPDATE SET answered_at = excluded.answered_at,"
    " result = excluded.result, reason = excluded.reason, answer = excluded.answer"
)
#: The outbox state a kiosk's answer leaves its command in, and why; as its event push
#: does (``fleet.events``), so the row ends the same whichever way the answer came.
ANSWER_OUTCOMES: dict[str, tuple[str, str | None]] = {
    "opened": ("sent", None),
    "done": ("sent", None),
    "expired": ("skipped", "expired before the kiosk ran it"),
    "declined": ("skipped", "declined by the kiosk (its parcel had left)"),
    "refused": ("skipped", "refused by the kiosk: not its site's"),
    "failed": ("dead", "the kiosk could not open the door"),
}
#: Only a pending command: one withdrawn (its parcel left through the kiosk) or answered
#: over HTTP already stays as it is.
_ANSWERED = (
    "UPDATE outbox SET state = :state, sent_at = :sent, claimed_until = NULL,"
    " last_error = :why, attempts = attempts + 1 WHERE id = :id AND state = 'pending'"
)


def _record_answers(tx: Tx, answers: Sequence[Heard]) -> tuple[list[str], int]:
    """Record each command's first answer and mark its outbox row sent; returns the commands
    answered and how many answers were refused. A repeated answer changes nothing."""
    if not answers:
        return [], 0
    ids = sorted({h.message.command_id for h in answers if isinstance(h.message, Answer)})
    known: dict[str, Row] = {}
    for start in range(0, len(ids), _ROWS_PER_STATEMENT):
        marks, params = _placeholders("c", ids[start : start + _ROWS_PER_STATEMENT])
        known.update((row[0], row) for row in tx.all(_COMMANDS.format(ids=marks), params))
    answered: list[str] = []
    refused = 0
    for heard in answers:
        answer = heard.message
        assert isinstance(answer, Answer)
        row = known.get(answer.command_id)
        payload: dict[str, Any] = Tx.json(row[2]) if row is not None else {}
        problem = None
        if row is None or row[1] != OPEN_TOPIC:
            problem = "unknown_command"
        elif payload.get("site_id") != heard.site_id:
            problem = "wrong_site"
        if problem is not None:
            log.warning(
                "fleet answer refused",
                extra={
                    "reason": problem,
                    "site_id": heard.site_id,
                    "command_id": answer.command_id,
                },
            )
            refused += 1
            continue
        assert row is not None
        if row[5] is not None or answer.command_id in answered:
            log.info(
                "fleet answer repeated",
                extra={"site_id": heard.site_id, "command_id": answer.command_id},
            )
            continue
        _do_record_answer(tx, heard, answer, row, payload)
        answered.append(answer.command_id)
    return answered, refused


def _do_record_answer(
    tx: Tx, heard: Heard, answer: Answer, row: Row, payload: dict[str, Any]
) -> None:
    now = heard.received_at
    details = answer.model_dump(
        mode="json", include={"door", "locked", "detail", "sent_at"}, exclude_none=True
    )
    expires = payload.get("expires_at")
    tx.execute(
        _ANSWER,
        {
            "id": answer.command_id,
            "site": heard.site_id,
            "compartment": payload.get("compartment_id"),
            "transaction": answer.transaction_id,
            "expires": datetime.fromisoformat(expires) if expires else now,
            "now": now,
            "result": answer.result,
            "reason": answer.reason,
            "answer": tx.json_param(details),
        },
    )
    state, why = ANSWER_OUTCOMES[answer.result]
    if why is not None and answer.reason:
        why += f" ({answer.reason})"
    tx.execute(
        _ANSWERED,
        {
            "state": state,
            "sent": now if state == "sent" else None,
            "why": why,
            "id": answer.command_id,
        },
    )
    record(
        tx,
        "kiosk.command_answered",
        kiosk_actor(heard.site_id),
        now,
        site_id=heard.site_id,
        parcel_id=row[3] or payload.get("parcel_id"),
        compartment_id=payload.get("compartment_id"),
        data={
            "command_id": answer.command_id,
            "transaction_id": answer.transaction_id,
            "result": answer.result,
            "reason": answer.reason,
            "door": answer.door,
            "transport": "mqtt",
        },
    )


def mark_silent(ctx: Context) -> list[str]:
    """Mark the kiosks not heard for ``fleet_silence_seconds`` offline and silent, raise
    ``kiosk_silent`` for each; returns their sites. Each is marked once until heard again."""
    now = ctx.clock()
    cutoff = now - timedelta(seconds=ctx.settings.fleet_silence_seconds)
    with ctx.db.sql.transaction() as tx:
        rows = tx.all(
            "SELECT site_id, status, last_seen_at FROM fleet_kiosks"
            f" WHERE silent = :no AND last_seen_at < :cutoff{tx.lock(skip_locked=True)}",
            {"no": False, "cutoff": cutoff},
        )
        for site_id, status, last_seen in rows:
            tx.execute(
                "UPDATE fleet_kiosks SET silent = :yes, status = 'offline',"
                " status_reason = 'silent', status_since = CASE WHEN status = 'online'"
                " THEN :now ELSE status_since END WHERE site_id = :site",
                {"yes": True, "now": now, "site": site_id},
            )
            heard = Tx.time(last_seen)
            record(
                tx,
                "kiosk.silent",
                SYSTEM,
                now,
                site_id=site_id,
                data={
                    "last_seen_at": _iso(heard),
                    "previous": status,
                    "silence_seconds": ctx.settings.fleet_silence_seconds,
                },
            )
            do_raise_alarm(
                tx,
                SYSTEM,
                site_id,
                SILENT_ALARM,
                now,
                detail={"last_seen_at": _iso(heard), "previous": status},
            )
    return [row[0] for row in rows]


@dataclass(frozen=True)
class Due:
    """A command to publish now: the outbox row and what goes on the wire."""

    command: OpenCommand
    first: bool


#: Commands never published, and those unanswered since their last publish whose kiosk is
#: online (one that is away gets what its broker session kept when it is back, and a site
#: whose kiosk works over HTTP alone is not published to every few seconds).
_DUE = (
    "SELECT o.id, o.payload, o.parcel_id, o.created_at, c.command_id, c.transaction_id,"
    " c.expires_at FROM outbox o LEFT JOIN fleet_commands c ON c.command_id = o.id"
    " LEFT JOIN fleet_kiosks k ON k.site_id = c.site_id"
    f" WHERE o.state = 'pending' AND o.topic = '{OPEN_TOPIC}'"
    " AND (c.command_id IS NULL OR (c.answered_at IS NULL AND c.next_publish_at <= :now"
    " AND k.status = 'online'))"
    " ORDER BY o.seq LIMIT :limit"
)


def due_commands(ctx: Context, *, limit: int = 200) -> list[Due]:
    """Pending door commands to publish now: never published, or unanswered since the last
    publish ``fleet_command_retry_seconds`` ago while their kiosk is online. Those past
    their expiry and a grace (for a late answer over HTTP) are skipped instead, audited
    ``kiosk.command_expired``; so are published ones, by ``expire_commands``."""
    now = ctx.clock()
    ttl = timedelta(seconds=ctx.settings.command_ttl_s)
    due: list[Due] = []
    with ctx.db.sql.transaction() as tx:
        for outbox_id, payload, parcel_id, created, known, transaction, expires in tx.all(
            _DUE, {"now": now, "limit": limit}
        ):
            payload = Tx.json(payload)
            expires_at = Tx.time(expires) or _expiry(payload, Tx.time(created), ttl)
            assert expires_at is not None
            if now >= expires_at + EXPIRY_GRACE:
                _do_expire(tx, outbox_id, payload, parcel_id, expires_at, now)
                continue
            if now >= expires_at:
                continue  # past expiry: not sent again, a late answer may still come
            command = _command(outbox_id, payload, parcel_id, transaction, expires_at, now)
            if command is None:
                _do_skip_malformed(tx, outbox_id, now)
                continue
            due.append(Due(command, first=known is None))
    return due


def expire_commands(ctx: Context, *, limit: int = 500) -> int:
    """Skip the published door commands that expired unanswered a grace ago (their kiosk
    is away, or never answers); returns how many."""
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        rows = tx.all(
            "SELECT o.id, o.payload, o.parcel_id, c.expires_at FROM fleet_commands c"
            " JOIN outbox o ON o.id = c.command_id"
            " WHERE c.answered_at IS NULL AND c.expires_at < :cutoff AND o.state = 'pending'"
            " ORDER BY c.expires_at LIMIT :limit",
            {"cutoff": now - EXPIRY_GRACE, "limit": limit},
        )
        for outbox_id, payload, parcel_id, expires in rows:
            expires_at = Tx.time(expires)
            assert expires_at is not None
            _do_expire(tx, outbox_id, Tx.json(payload), parcel_id, expires_at, now)
    return len(rows)


def _expiry(payload: dict[str, Any], created: datetime | None, ttl: timedelta) -> datetime:
    """The payload's ``expires_at``, else ``ttl`` after the row was queued (rows queued
    before commands carried one)."""
    text = payload.get("expires_at")
    if isinstance(text, str):
        with suppress(ValueError):
            return as_utc(datetime.fromisoformat(text))
    assert created is not None, "created_at is not nullable"
    return created + ttl


def _command(
    outbox_id: str,
    payload: dict[str, Any],
    parcel_id: str | None,
    transaction: str | None,
    expires_at: datetime,
    now: datetime,
) -> OpenCommand | None:
    try:
        return OpenCommand(
            message_id=outbox_id,
            transaction_id=transaction or payload.get("transaction_id") or outbox_id,
            site_id=payload["site_id"],
            sent_at=now,
            type="open",
            expires_at=expires_at,
            compartment_id=payload["compartment_id"],
            label=payload["label"],
            reason=str(payload.get("reason") or "door command"),
            parcel_id=parcel_id or payload.get("parcel_id"),
        )
    except (KeyError, ValueError):
        return None


def _do_expire(
    tx: Tx,
    outbox_id: str,
    payload: dict[str, Any],
    parcel_id: str | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    tx.execute(
        "UPDATE outbox SET state = 'skipped', last_error = :why"
        " WHERE id = :id AND state = 'pending'",
        {"id": outbox_id, "why": f"expired at {expires_at.isoformat()} with no answer"},
    )
    record(
        tx,
        "kiosk.command_expired",
        SYSTEM,
        now,
        site_id=payload.get("site_id"),
        parcel_id=parcel_id,
        compartment_id=payload.get("compartment_id"),
        data={"command_id": outbox_id, "expires_at": expires_at.isoformat()},
    )


def _do_skip_malformed(tx: Tx, outbox_id: str, now: datetime) -> None:
    log.error("door command malformed", extra={"outbox_id": outbox_id})
    tx.execute(
        "UPDATE outbox SET state = 'skipped', last_error = :why WHERE id = :id",
        {"id": outbox_id, "why": "no site, compartment or label: cannot be sent"},
    )
    record(tx, "kiosk.command_malformed", SYSTEM, now, data={"command_id": outbox_id})


_PUBLISHED = (
    "INSERT INTO fleet_commands (command_id, site_id, compartment_id, transaction_id,"
    " expires_at, publish_count, first_published_at, next_publish_at)"
    " VALUES (:id, :site, :compartment, :transaction, :expires, 1, :now, :next)"
    " ON CONFLICT (command_id) DO UPDATE SET publish_count = fleet_commands.publish_count + 1,"
    " first_published_at ="
    " COALESCE(fleet_commands.first_published_at, excluded.first_published_at),"
    " next_publish_at = excluded.next_publish_at"
)


def record_published(ctx: Context, commands: Sequence[OpenCommand]) -> None:
    """Commands the broker took: published again ``fleet_command_retry_seconds`` later
    unless answered first."""
    if not commands:
        return
    now = ctx.clock()
    later = now + timedelta(seconds=ctx.settings.fleet_command_retry_seconds)
    with ctx.db.sql.transaction() as tx:
        for command in commands:
            tx.execute(
                _PUBLISHED,
                {
                    "id": command.message_id,
                    "site": command.site_id,
                    "compartment": command.compartment_id,
                    "transaction": command.transaction_id,
                    "expires": command.expires_at,
                    "now": now,
                    "next": later,
                },
            )


@dataclass(frozen=True)
class Queued:
    command_id: str
    transaction_id: str
    site_id: str
    compartment: CompartmentRef
    expires_at: datetime


def request_remote_open(ctx: Context, actor: Actor, compartment_id: str, reason: str) -> Queued:
    """Queue a command that opens ``compartment_id``'s door (``kiosk.open_compartment``, the
    same outbox row the HTTP sync delivers) and wake the consumer to publish it."""
    now = ctx.clock()
    expires_at = now + timedelta(seconds=ctx.settings.command_ttl_s)
    transaction_id = new_id("txn")
    with ctx.db.sql.transaction() as tx:
        row = tx.one(
            "SELECT id, site_id, label FROM compartments WHERE id = :id", {"id": compartment_id}
        )
        if row is None:
            raise NotFound("No such compartment.", code="compartment_not_found")
        _, site_id, label = row
        payload = {
            "site_id": site_id,
            "compartment_id": compartment_id,
            "label": label,
            "expires_at": expires_at.isoformat(),
            "reason": reason,
            "transaction_id": transaction_id,
            "requested_by": actor.name,
        }
        [command_id] = enqueue(tx, now, Message(OPEN_TOPIC, payload, site_id=site_id))
        record(
            tx,
            "compartment.remote_open_requested",
            actor,
            now,
            site_id=site_id,
            compartment_id=compartment_id,
            data={
                "command_id": command_id,
                "transaction_id": transaction_id,
                "reason": reason,
                "expires_at": expires_at.isoformat(),
            },
        )
        if tx.postgres:
            tx.execute(
                "SELECT pg_notify(:channel, :id)", {"channel": NOTIFY_CHANNEL, "id": command_id}
            )
    return Queued(
        command_id,
        transaction_id,
        site_id,
        CompartmentRef(id=compartment_id, label=label),
        expires_at,
    )


#: What a command's outbox state says the kiosk answered, when it answered by its event push.
_PUSHED_RESULTS = {"sent": "opened", "dead": "failed"}


def read_answer(ctx: Context, queued: Queued) -> RemoteOpenOut:
    """What the kiosk answered to ``queued`` so far (``result`` ``pending`` until it does)."""
    with ctx.db.sql.transaction(write=False) as tx:
        row = tx.one(
            "SELECT o.state, c.answered_at, c.result, c.reason, c.answer, c.publish_count,"
            " o.sent_at FROM outbox o LEFT JOIN fleet_commands c ON c.command_id = o.id"
            " WHERE o.id = :id",
            {"id": queued.command_id},
        )
    assert row is not None, "the command was queued by this request"
    state, answered_at, result, reason, answer, published, sent_at = row
    details = Tx.json(answer) or {}
    if result is None and state != "pending":
        # Answered by the kiosk's event push (``fleet.events``), which often beats its MQTT
        # answer: ``sent`` is its ``opened``, ``dead`` its ``failed``; else withdrawn.
        result = _PUSHED_RESULTS.get(state, state)
        answered_at = answered_at or sent_at
    return RemoteOpenOut(
        command_id=queued.command_id,
        transaction_id=queued.transaction_id,
        site_id=queued.site_id,
        compartment=queued.compartment,
        expires_at=queued.expires_at,
        confirmed=result == "opened",
        result=result or "pending",
        reason=reason,
        answered_at=Tx.time(answered_at),
        published=bool(published),
        door=details.get("door"),
        locked=details.get("locked"),
    )


def get_kiosk(ctx: Context, site_id: str) -> KioskOut:
    """The site's kiosk as the fleet channel last heard of it."""
    with ctx.db.sql.transaction(write=False) as tx:
        kiosks = _load_kiosks(tx, [site_id])
    kiosk = kiosks.get(site_id)
    if kiosk is None:
        raise NotFound("No such site.", code="site_not_found")
    state = None
    if kiosk.state is not None and kiosk.state_sent_at is not None:
        state = KioskStateOut(sent_at=kiosk.state_sent_at, **kiosk.state)
    return KioskOut(
        site_id=site_id,
        status=kiosk.status if kiosk.stored else "unknown",
        status_reason=kiosk.status_reason if kiosk.stored else None,
        status_since=kiosk.status_since,
        last_seen_at=kiosk.last_seen_at,
        last_heartbeat_at=kiosk.last_heartbeat_at,
        version=kiosk.version,
        uptime_seconds=kiosk.uptime_seconds,
        queued_events=kiosk.queued_events,
        clock_offset_ms=kiosk.clock_offset_ms,
        silent=kiosk.silent,
        silence_seconds=ctx.settings.fleet_silence_seconds,
        state=state,
    )
