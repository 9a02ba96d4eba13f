"""Recipients' messages from the outbox: claiming, recording attempts, reminders, the
operator's view.

A message goes ``pending`` → ``sending`` (claimed with a lease) → ``sent``, back to
``pending`` with a backoff after a temporary failure, ``dead`` after a permanent one or too
many attempts, or ``skipped`` when it is no longer worth sending (the parcel was picked up,
newer credentials replaced these). A claim is ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
dispatchers in several processes never take the same row; a lease that runs out (its
dispatcher died) lets another take the row, which then asks the channel before sending
again (``dispatcher``). Every attempt is a ``delivery_attempts`` row, with the channel's
answer scrubbed of the message's codes; sent, dead, skipped and retried messages are audit
events.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from openlocker.audit.models import ONCE_PER_PARCEL
from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.core.sql import Tx, insert_rows
from openlocker.notify.messages import Credentials, SiteFacts
from openlocker.notify.schemas import AttemptOut, OutboxList, OutboxOut

SYSTEM_NOTIFY = Actor("system:notify")
#: The topics this dispatcher delivers; webhooks and locker commands have their own senders.
TOPICS = (
    "recipient.pickup_ready",
    "recipient.reminder",
    "recipient.expired",
    "recipient.return_receipt",
)
#: Topics that are sent whatever became of the parcel since (an expiry notice, a receipt).
_ALWAYS_SENT = ("recipient.expired", "recipient.return_receipt")
_TOPICS_SQL = ", ".join(f"'{topic}'" for topic in TOPICS)
#: Notices are not queued for parcels that expired longer ago than this (an old backlog).
EXPIRY_NOTICE_WINDOW = timedelta(days=2)


def backoff_seconds(
    attempt: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """The wait before attempt ``attempt + 1``: ``base · 2^(attempt-1)``, capped, then drawn
    from its upper half so that messages failing together do not retry together."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    draw: float = (rng or random).random()
    return ceiling * (0.5 + 0.5 * draw)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, longest first (a link holds its token)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[code]")
    return text[:2000]


# --- claiming ------------------------------------------------------------------------------


@dataclass
class Claim:
    """A message a dispatcher holds until ``lease``, with what composing it needs."""

    id: str
    topic: str
    parcel_id: str | None
    payload: dict[str, Any]
    attempts: int
    lease: datetime
    #: It was ``sending`` under a lease that ran out: its dispatcher stopped mid-send.
    recovered: bool
    site: SiteFacts
    credentials: Credentials | None
    #: Channels that already took this message (an earlier attempt sent one of two).
    done: set[str] = field(default_factory=set)


_CLAIM = (
    "SELECT o.id, o.topic, o.parcel_id, o.payload, o.attempts, o.state,"
    # A reminder brings the credentials of the parcel's latest announcement, kept sealed.
    " CASE WHEN o.topic = 'recipient.reminder' THEN (SELECT r.sealed FROM outbox r"
    "  WHERE r.parcel_id = o.parcel_id AND r.topic = 'recipient.pickup_ready'"
    "  AND r.sealed IS NOT NULL ORDER BY r.seq DESC LIMIT 1) ELSE o.sealed END,"
    " p.status,"
    " CASE WHEN o.topic = 'recipient.pickup_ready' AND EXISTS (SELECT 1 FROM outbox n"
    "  WHERE n.parcel_id = o.parcel_id AND n.sealed IS NOT NULL"
    "  AND n.topic = 'recipient.pickup_ready' AND n.seq > o.seq) THEN 1 ELSE 0 END"
    " FROM outbox o LEFT JOIN parcels p ON p.id = o.parcel_id"
    f" WHERE o.topic IN ({_TOPICS_SQL})"
    " AND ((o.state = 'pending' AND o.available_at <= :now)"
    " OR (o.state = 'sending' AND o.claimed_until <= :now))"
    " ORDER BY o.available_at LIMIT :batch"
)


def claim_due(ctx: Context, *, batch: int | None = None) -> list[Claim]:
    """Take up to ``batch`` due messages for this dispatcher, leased for
    ``notify_lease_seconds``. Messages no longer worth sending are marked ``skipped`` here."""
    settings = ctx.settings
    now = ctx.clock()
    lease = now + timedelta(seconds=settings.notify_lease_seconds)
    claims: list[Claim] = []
    with ctx.db.sql.transaction() as tx:
        rows = tx.all(
            _CLAIM + tx.lock("o", skip_locked=True),
            {"now": now, "batch": batch or settings.notify_batch},
        )
        if not rows:
            return []
        skipped: list[tuple[str, str | None, str, str]] = []
        sites = _sites(ctx, tx, {tx.json(row[3]).get("site_id", "") for row in rows})
        for outbox_id, topic, parcel_id, payload, attempts, state, sealed, status, old in rows:
            payload = tx.json(payload)
            reason = _skip_reason(topic, status, bool(old))
            site = sites.get(payload.get("site_id", ""))
            if reason is None and site is None:
                reason = "its site no longer exists"
            if reason is not None or site is None:
                skipped.append((outbox_id, parcel_id, topic, reason or ""))
                continue
            claims.append(
                Claim(
                    id=outbox_id,
                    topic=topic,
                    parcel_id=parcel_id,
                    payload=payload,
                    attempts=attempts + 1,
                    lease=lease,
                    recovered=state == "sending",
                    site=site,
                    credentials=_unseal(ctx, sealed) if sealed else None,
                )
            )
        if claims:
            ids = _in_list([c.id for c in claims], "c")
            tx.execute(
                "UPDATE outbox SET state = 'sending', claimed_until = :lease,"
                f" attempts = attempts + 1 WHERE id IN ({ids[0]})",
                {"lease": lease, **ids[1]},
            )
            done = _in_list([c.id for c in claims], "d")
            by_id = {c.id: c for c in claims}
            for outbox_id, channel in tx.all(
                "SELECT outbox_id, channel FROM delivery_attempts"
                f" WHERE outcome = 'sent' AND outbox_id IN ({done[0]})",
                done[1],
            ):
                by_id[outbox_id].done.add(channel)
        for outbox_id, parcel_id, topic, reason in skipped:
            _do_skip(tx, outbox_id, parcel_id, topic, reason, now)
    return claims


def _skip_reason(topic: str, status: str | None, superseded: bool) -> str | None:
    if topic in _ALWAYS_SENT:
        return None
    if status != "deposited":
        return f"the parcel is {status or 'gone'}"
    if superseded:
        return "newer credentials replaced these"
    return None


def _do_skip(
    tx: Tx, outbox_id: str, parcel_id: str | None, topic: str, reason: str, now: datetime
) -> None:
    tx.execute(
        "UPDATE outbox SET state = 'skipped', sealed = NULL, claimed_until = NULL,"
        " last_error = :reason WHERE id = :id",
        {"reason": reason, "id": outbox_id},
    )
    _attempts(tx, outbox_id, now, [("message", "skipped", reason)])
    record(
        tx,
        "notification.skipped",
        SYSTEM_NOTIFY,
        now,
        parcel_id=parcel_id,
        data={"outbox_id": outbox_id, "topic": topic, "reason": reason},
    )


def _unseal(ctx: Context, sealed: str) -> Credentials:
    opened = Tx.json(ctx.keyring.unseal(sealed))
    return Credentials(pin=opened["pin"], qr=opened["qr"], link=opened["link"])


def _sites(ctx: Context, tx: Tx, site_ids: set[str]) -> dict[str, SiteFacts]:
    """The sites' facts for messages (cached like the lifecycle's site info)."""
    settings = ctx.settings
    found: dict[str, SiteFacts] = {}
    for site_id in site_ids:

        def load(site_id: str = site_id) -> SiteFacts | None:
            row = tx.one(
                "SELECT id, name, address, lat, lon, opening_hours, language, timezone"
                " FROM sites WHERE id = :id",
                {"id": site_id},
            )
            if row is None:
                return None
            return SiteFacts(
                id=row[0],
                name=row[1],
                address=row[2],
                lat=row[3],
                lon=row[4],
                opening_hours=tx.json(row[5]),
                language=row[6] or settings.default_language,
                timezone=row[7] or settings.default_timezone,
            )

        site: SiteFacts | None = ctx.cache.get_or_load(("notify-site", site_id), load)
        if site is not None:
            found[site_id] = site
    return found


def _in_list(values: Sequence[str], prefix: str) -> tuple[str, dict[str, str]]:
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{name}" for name in params), params


# --- recording what happened ---------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one channel did with one claimed message; ``error`` is already scrubbed."""

    channel: str
    outcome: str  # sent, retry, failed, unknown (see models.OUTCOMES)
    error: str | None = None


def _attempts(
    tx: Tx, outbox_id: str, at: datetime, attempts: Sequence[tuple[str, str, str | None]]
) -> None:
    sql, params = insert_rows(
        "delivery_attempts",
        {"outbox_id": outbox_id, "at": at},
        [{"channel": c, "outcome": o, "error": e} for c, o, e in attempts],
    )
    tx.execute(sql, params)


def do_record_results(ctx: Context, results: Sequence[tuple[Claim, Sequence[Attempt]]]) -> None:
    """Record each claimed message's attempts and its next state, in one transaction.

    All channels took it (or had before): ``sent``. A permanent failure, an unknown outcome
    or the last allowed attempt: ``dead`` (audited). Otherwise ``pending`` again after the
    backoff. A message whose lease ran out meanwhile (another dispatcher took it) keeps the
    state that dispatcher gives it; its attempts are recorded all the same.
    """
    settings = ctx.settings
    now = ctx.clock()
    sent: list[Claim] = []
    with ctx.db.sql.transaction() as tx:
        for claim, attempts in results:
            if attempts:
                _attempts(tx, claim.id, now, [(a.channel, a.outcome, a.error) for a in attempts])
            failures = [a for a in attempts if a.outcome not in ("sent", "skipped")]
            if not failures:
                sent.append(claim)
                continue
            final = any(a.outcome in ("failed", "unknown") for a in failures)
            error = "; ".join(f"{a.channel}: {a.error}" for a in failures)
            if final or claim.attempts >= settings.notify_max_attempts:
                _do_dead(tx, claim, error, now)
            else:
                delay = backoff_seconds(
                    claim.attempts,
                    settings.notify_backoff_seconds,
                    settings.notify_backoff_max_seconds,
                )
                tx.execute(
                    "UPDATE outbox SET state = 'pending', claimed_until = NULL,"
                    " available_at = :at, last_error = :error"
                    " WHERE id = :id AND state = 'sending' AND claimed_until = :lease",
                    {
                        "at": now + timedelta(seconds=delay),
                        "error": error,
                        "id": claim.id,
                        "lease": claim.lease,
                    },
                )
        if sent:
            _do_sent(tx, sent, now)


def _do_sent(tx: Tx, claims: Sequence[Claim], now: datetime) -> None:
    # An announcement keeps its sealed credentials for the reminder until the parcel leaves.
    for keep, group in (
        (True, [c for c in claims if c.topic == "recipient.pickup_ready"]),
        (False, [c for c in claims if c.topic != "recipient.pickup_ready"]),
    ):
        for lease in {c.lease for c in group}:
            ids, params = _in_list([c.id for c in group if c.lease == lease], "s")
            tx.execute(
                "UPDATE outbox SET state = 'sent', sent_at = :now, claimed_until = NULL,"
                " last_error = NULL"
                + ("" if keep else ", sealed = NULL")
                + f" WHERE id IN ({ids}) AND state = 'sending' AND claimed_until = :lease",
                {"now": now, "lease": lease, **params},
            )
    for claim in claims:
        record(
            tx,
            "notification.sent",
            SYSTEM_NOTIFY,
            now,
            site_id=claim.site.id,
            parcel_id=claim.parcel_id,
            data={"outbox_id": claim.id, "topic": claim.topic, "attempt": claim.attempts},
        )


def _do_dead(tx: Tx, claim: Claim, error: str, now: datetime) -> None:
    tx.execute(
        "UPDATE outbox SET state = 'dead', claimed_until = NULL, last_error = :error"
        " WHERE id = :id AND state = 'sending' AND claimed_until = :lease",
        {"error": error, "id": claim.id, "lease": claim.lease},
    )
    record(
        tx,
        "notification.dead",
        SYSTEM_NOTIFY,
        now,
        site_id=claim.site.id,
        parcel_id=claim.parcel_id,
        data={"outbox_id": claim.id, "topic": claim.topic, "attempts": claim.attempts},
    )


def do_release(ctx: Context, claims: Sequence[Claim]) -> None:
    """Give back claims that were never handed to a channel (a dispatcher stopping)."""
    if not claims:
        return
    with ctx.db.sql.transaction() as tx:
        for claim in claims:
            tx.execute(
                "UPDATE outbox SET state = 'pending', claimed_until = NULL,"
                " attempts = attempts - 1 WHERE id = :id AND claimed_until = :lease",
                {"id": claim.id, "lease": claim.lease},
            )


# --- reminders and expiry notices ----------------------------------------------------------


def queue_notices(ctx: Context, *, batch: int = 500) -> int:
    """Queue reminders and expiry notices that are due; returns how many.

    A deposited parcel of ``notify: openlocker`` gets a reminder ``reminder_hours`` before
    its deadline (its site's setting; none when unset, or when that moment is not after the
    deposit); an expired one a notice, when its site says so. Each at most once per parcel:
    a partial unique index over parcel and topic turns a second one, from another process,
    into nothing. Also forgets (unseals nothing, drops) the kept credentials of parcels that
    left the locker.
    """
    now = ctx.clock()
    queued = 0
    with ctx.db.sql.transaction() as tx:
        longest = tx.scalar("SELECT MAX(reminder_hours) FROM sites") or 0
        rows = tx.all(
            "SELECT p.id, p.site_id, p.tracking_number, p.recipient, p.dwell_deadline,"
            " p.deposited_at, s.reminder_hours FROM parcels p JOIN sites s ON s.id = p.site_id"
            " WHERE p.status = 'deposited' AND p.notify = 'openlocker'"
            " AND p.dwell_deadline > :now AND p.dwell_deadline <= :horizon"
            " AND s.reminder_hours IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outbox o"
            "  WHERE o.parcel_id = p.id AND o.topic = 'recipient.reminder') LIMIT :batch",
            {"now": now, "horizon": now + timedelta(hours=longest), "batch": batch},
        )
        due = []
        for parcel_id, site_id, number, recipient, deadline, deposited, hours in rows:
            remind_at = tx.time(deadline) - timedelta(hours=hours)  # type: ignore[operator]
            if remind_at <= now and remind_at > tx.time(deposited):  # type: ignore[operator]
                due.append(("recipient.reminder", parcel_id, site_id, number, recipient, deadline))
        rows = tx.all(
            "SELECT p.id, p.site_id, p.tracking_number, p.recipient, p.dwell_deadline"
            " FROM parcels p JOIN sites s ON s.id = p.site_id"
            " WHERE p.status IN ('expired', 'returned') AND p.notify = 'openlocker'"
            " AND p.dwell_deadline > :since AND s.expiry_notice AND NOT EXISTS (SELECT 1"
            "  FROM outbox o WHERE o.parcel_id = p.id AND o.topic = 'recipient.expired')"
            " LIMIT :batch",
            {"since": now - EXPIRY_NOTICE_WINDOW, "batch": batch},
        )
        due += [("recipient.expired", *row) for row in rows]
        for topic, parcel_id, site_id, number, recipient, deadline in due:
            queued += _do_queue_once(
                tx, now, topic, parcel_id, site_id, number, recipient, deadline
            )
        tx.execute(
            "UPDATE outbox SET sealed = NULL WHERE sealed IS NOT NULL AND state IN"
            " ('sent', 'dead', 'skipped') AND parcel_id IN (SELECT id FROM parcels"
            " WHERE status <> 'deposited')"
        )
    return queued


def _do_queue_once(
    tx: Tx,
    now: datetime,
    topic: str,
    parcel_id: str,
    site_id: str,
    number: str,
    recipient: Any,
    deadline: Any,
) -> int:
    assert topic in ONCE_PER_PARCEL
    outbox_id = new_id("obx")
    payload = {
        "parcel_id": parcel_id,
        "tracking_number": number,
        "site_id": site_id,
        "recipient": tx.json(recipient),
        "expires_at": tx.time(deadline).isoformat(),  # type: ignore[union-attr]
    }
    inserted = tx.one(
        "INSERT INTO outbox (id, topic, parcel_id, payload, created_at, available_at, attempts)"
        " VALUES (:id, :topic, :parcel_id, :payload, :now, :now, 0)"
        " ON CONFLICT (parcel_id, topic)"
        " WHERE topic IN ('recipient.reminder', 'recipient.expired') DO NOTHING RETURNING id",
        {
            "id": outbox_id,
            "topic": topic,
            "parcel_id": parcel_id,
            "payload": tx.json_param(payload),
            "now": now,
        },
    )
    if inserted is None:
        return 0
    record(
        tx,
        "notification.queued",
        SYSTEM_NOTIFY,
        now,
        site_id=site_id,
        parcel_id=parcel_id,
        data={"outbox_id": outbox_id, "topic": topic},
    )
    return 1


# --- the operator's view -------------------------------------------------------------------

_OUTBOX = (
    "SELECT seq, id, topic, parcel_id, state, attempts, created_at, available_at, sent_at,"
    " last_error FROM outbox"
)


def _view(tx: Tx, row: Any, attempts: list[AttemptOut] | None = None) -> OutboxOut:
    return OutboxOut(
        id=row[1],
        topic=row[2],
        parcel_id=row[3],
        state=row[4],
        attempts=row[5],
        created_at=tx.time(row[6]),
        available_at=tx.time(row[7]),
        sent_at=tx.time(row[8]),
        last_error=row[9],
        deliveries=attempts,
    )


def list_outbox(
    ctx: Context,
    *,
    state: str | None = None,
    topic: str | None = None,
    parcel_id: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> OutboxList:
    """Outbox messages, newest first, filtered; pass ``next_cursor`` on."""
    where: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (("state", state), ("topic", topic), ("parcel_id", parcel_id)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if cursor is not None:
        if not cursor.isdigit():
            raise InvalidInput("The cursor is not valid.", code="invalid_cursor")
        where.append("seq < :cursor")
        params["cursor"] = int(cursor)
    sql = _OUTBOX + (" WHERE " + " AND ".join(where) if where else "")
    with ctx.db.sql.transaction(write=False) as tx:
        rows = tx.all(sql + " ORDER BY seq DESC LIMIT :limit", {**params, "limit": limit + 1})
        items = [_view(tx, row) for row in rows[:limit]]
    next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
    return OutboxList(items=items, next_cursor=next_cursor)


def get_outbox_message(ctx: Context, outbox_id: str) -> OutboxOut:
    """One message with every delivery attempt, oldest first."""
    with ctx.db.sql.transaction(write=False) as tx:
        return _with_attempts(tx, outbox_id)


def _with_attempts(tx: Tx, outbox_id: str) -> OutboxOut:
    row = tx.one(_OUTBOX + " WHERE id = :id", {"id": outbox_id})
    if row is None:
        raise NotFound(f"No outbox message {outbox_id!r}.", code="message_not_found")
    attempts = [
        AttemptOut(channel=channel, at=tx.time(at), outcome=outcome, error=error)
        for channel, at, outcome, error in tx.all(
            "SELECT channel, at, outcome, error FROM delivery_attempts"
            " WHERE outbox_id = :id ORDER BY seq",
            {"id": outbox_id},
        )
    ]
    return _view(tx, row, attempts)


def retry(ctx: Context, actor: Actor, outbox_id: str) -> OutboxOut:
    """Send a dead message again, now, with a fresh count of attempts (audited).

    Channels that took it before are not sent to again. Raises ``message_not_found``,
    ``not_dead`` (only dead messages are retried: others are on their way or done).
    """
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        row = tx.one(
            "SELECT state, parcel_id, topic FROM outbox WHERE id = :id" + tx.lock(),
            {"id": outbox_id},
        )
        if row is None:
            raise NotFound(f"No outbox message {outbox_id!r}.", code="message_not_found")
        if row[0] != "dead":
            raise Conflict(
                f"Only a dead message is retried; this one is {row[0]}.",
                code="not_dead",
                extra={"state": row[0]},
            )
        tx.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, available_at = :now,"
            " claimed_until = NULL WHERE id = :id",
            {"now": now, "id": outbox_id},
        )
        record(
            tx,
            "notification.retried",
            actor,
            now,
            parcel_id=row[1],
            data={"outbox_id": outbox_id, "topic": row[2]},
        )
        return _with_attempts(tx, outbox_id)
