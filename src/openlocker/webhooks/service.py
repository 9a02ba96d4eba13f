"""Webhook endpoints (the API's use cases) and the delivery job's steps.

An organization registers endpoints for event types and hears about its own parcels only:
the fan-out matches a message's ``org_id`` to the endpoints of that organization. Each
public function is one use case in one transaction; every change of an endpoint, a replay,
a disabled endpoint and a delivery that ran out of retries writes its audit event.

The job (``webhooks.delivery``) calls ``fan_out``, ``claim_due`` and ``record_outcome``;
the HTTP itself happens between a claim and its outcome, outside any transaction.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag

from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.core.keys import Sealer
from openlocker.core.pages import decode_cursor, encode_cursor
from openlocker.core.sql import Row, Tx, insert_rows
from openlocker.orgs.service import Principal
from openlocker.webhooks.events import delivery_body
from openlocker.webhooks.schemas import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    EndpointChange,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointWithSecret,
)
from openlocker.webhooks.urls import AddressRefused, check_url, resolve_now

SYSTEM_WEBHOOKS = Actor("system:webhooks")
#: The Standard Webhooks schedule: the wait before each attempt after the one before failed.
SCHEDULE = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
#: Endpoints an organization may have; each costs every fan-out of its events.
MAX_ENDPOINTS = 20
SECRET_PREFIX = "whsec_"
_GONE = "the endpoint answered 410 Gone"


# --- endpoints -----------------------------------------------------------------------------


def check_may_manage(principal: Principal) -> None:
    """Raise ``missing_scope`` unless the key may manage webhooks (``webhooks``,
    ``parcels:write`` or ``admin``)."""
    if principal.is_admin or {"webhooks", "parcels:write"} & principal.scopes:
        return
    raise Forbidden(
        "This API key lacks the scope 'webhooks' (or 'parcels:write').", code="missing_scope"
    )


def new_secret() -> str:
    """A signing secret as Standard Webhooks spells it: ``whsec_`` and 24 random bytes in
    standard base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _sealer(ctx: Context) -> Sealer:
    return ctx.keyring.sealer("webhook-secret")


_ENDPOINT = (
    "SELECT id, org_id, url, events, created_at, rotated_at, previous_expires_at,"
    " disabled_at, disabled_reason, deleted_at FROM webhook_endpoints"
)


def _endpoint(tx: Tx, row: Row) -> EndpointOut:
    return EndpointOut(
        id=row[0],
        org_id=row[1],
        url=row[2],
        events=tx.json(row[3]),
        created_at=tx.time(row[4]),
        rotated_at=tx.time(row[5]),
        previous_secret_expires_at=tx.time(row[6]),
        disabled_at=tx.time(row[7]),
        disabled_reason=row[8],
        deleted_at=tx.time(row[9]),
    )


def access_endpoint(
    tx: Tx, principal: Principal, endpoint_id: str, *, lock: bool = False
) -> EndpointOut:
    """The endpoint if the principal may see it; another organization's, or a deleted one,
    is ``webhook_not_found``."""
    check_may_manage(principal)
    sql = _ENDPOINT + " WHERE id = :id AND deleted_at IS NULL"
    params = {"id": endpoint_id}
    if not principal.is_admin:
        sql += " AND org_id = :org_id"
        params["org_id"] = principal.org_id
    row = tx.one(sql + (tx.lock() if lock else ""), params)
    if row is None:
        raise NotFound(f"No webhook endpoint {endpoint_id!r}.", code="webhook_not_found")
    return _endpoint(tx, row)


def check_endpoint_url(ctx: Context, url: str) -> str:
    """``url`` when the server may call it now: its form (``invalid_webhook_url``) and where
    it resolves (``webhook_url_not_public``)."""
    allow_private = ctx.settings.webhooks_allow_private
    parts = check_url(url, allow_private=allow_private)
    try:
        resolve_now(parts, allow_private=allow_private)
    except AddressRefused as exc:
        raise InvalidInput(str(exc), code="webhook_url_not_public") from exc
    return url


def _audited_url(url: str) -> str:
    # The query string may hold the integrator's own token; the audit log holds no secrets.
    return urlsplit(url)._replace(query="", fragment="").geturl()


def create_endpoint(ctx: Context, principal: Principal, request: EndpointIn) -> EndpointWithSecret:
    """Register an endpoint of the principal's organization; the answer holds its secret,
    shown this once. Raises ``invalid_webhook_url``, ``webhook_url_not_public``,
    ``webhook_limit_reached``."""
    check_may_manage(principal)
    url = check_endpoint_url(ctx, request.url)
    events = sorted(set(request.events))
    endpoint_id = new_id("whe")
    secret = new_secret()
    with ctx.db.sql.transaction() as tx:
        # Counted under the organization's advisory lock, so a burst cannot pass the limit.
        tx.serialize(_org_lock(principal.org_id))
        count = tx.scalar(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE org_id = :org AND deleted_at IS NULL",
            {"org": principal.org_id},
        )
        if count >= MAX_ENDPOINTS:
            raise Conflict(
                f"An organization may have at most {MAX_ENDPOINTS} webhook endpoints.",
                code="webhook_limit_reached",
            )
        now = ctx.clock()
        tx.execute(
            "INSERT INTO webhook_endpoints (id, org_id, url, events, secret_sealed, created_at)"
            " VALUES (:id, :org, :url, :events, :sealed, :now)",
            {
                "id": endpoint_id,
                "org": principal.org_id,
                "url": url,
                "events": tx.json_param(events),
                "sealed": _sealer(ctx).seal(secret, endpoint_id),
                "now": now,
            },
        )
        record(
            tx,
            "webhook.created",
            principal.actor,
            now,
            data={"endpoint_id": endpoint_id, "url": _audited_url(url), "events": events},
        )
        endpoint = access_endpoint(tx, principal, endpoint_id)
    return EndpointWithSecret(**endpoint.model_dump(), secret=secret)


def _org_lock(org_id: str) -> int:
    digest = hashlib.blake2b(f"webhooks:{org_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def list_endpoints(ctx: Context, principal: Principal) -> EndpointList:
    """The organization's endpoints, oldest first (every organization's, for operators)."""
    check_may_manage(principal)
    sql = _ENDPOINT + " WHERE deleted_at IS NULL"
    params = {}
    if not principal.is_admin:
        sql += " AND org_id = :org"
        params["org"] = principal.org_id
    with ctx.db.sql.transaction(write=False) as tx:
        return EndpointList(
            items=[_endpoint(tx, row) for row in tx.all(sql + " ORDER BY id", params)]
        )


def get_endpoint(ctx: Context, principal: Principal, endpoint_id: str) -> EndpointOut:
    with ctx.db.sql.transaction(write=False) as tx:
        return access_endpoint(tx, principal, endpoint_id)


def update_endpoint(
    ctx: Context, principal: Principal, endpoint_id: str, change: EndpointChange
) -> EndpointOut:
    """Change an endpoint's URL or event types, or turn it on or off (audited)."""
    url = check_endpoint_url(ctx, change.url) if change.url is not None else None
    with ctx.db.sql.transaction() as tx:
        endpoint = access_endpoint(tx, principal, endpoint_id, lock=True)
        now = ctx.clock()
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = url
        if change.events is not None:
            changes["events"] = tx.json_param(sorted(set(change.events)))
        if change.enabled is True:
            changes.update(disabled_at=None, disabled_reason=None)
        elif change.enabled is False and endpoint.disabled_at is None:
            changes.update(disabled_at=now, disabled_reason=f"turned off by {principal.actor.name}")
        if changes:
            assignments = ", ".join(f"{name} = :{name}" for name in changes)
            tx.execute(
                f"UPDATE webhook_endpoints SET {assignments} WHERE id = :id",
                {**changes, "id": endpoint_id},
            )
            data: dict[str, Any] = {"endpoint_id": endpoint_id}
            if url is not None:
                data["url"] = _audited_url(url)
            if change.events is not None:
                data["events"] = sorted(set(change.events))
            if change.enabled is not None:
                data["enabled"] = change.enabled
            record(tx, "webhook.updated", principal.actor, now, data=data)
        return access_endpoint(tx, principal, endpoint_id)


def delete_endpoint(ctx: Context, principal: Principal, endpoint_id: str) -> EndpointOut:
    """Delete an endpoint: it hears nothing more, its secrets are erased, and its pending
    deliveries are marked failed."""
    with ctx.db.sql.transaction() as tx:
        endpoint = access_endpoint(tx, principal, endpoint_id, lock=True)
        now = ctx.clock()
        tx.execute(
            "UPDATE webhook_endpoints SET deleted_at = :now, secret_sealed = NULL,"
            " previous_secret_sealed = NULL, previous_expires_at = NULL WHERE id = :id",
            {"now": now, "id": endpoint_id},
        )
        _fail_pending(tx, endpoint_id, now, "the endpoint was deleted")
        record(tx, "webhook.deleted", principal.actor, now, data={"endpoint_id": endpoint_id})
    return endpoint.model_copy(update={"deleted_at": now, "previous_secret_expires_at": None})


def rotate_secret(ctx: Context, principal: Principal, endpoint_id: str) -> EndpointWithSecret:
    """Give an endpoint a new secret, shown this once. The one it replaces keeps signing too
    for ``webhooks_rotation_overlap_hours`` (both signatures are sent); a secret replaced
    before that stops at once."""
    secret = new_secret()
    with ctx.db.sql.transaction() as tx:
        access_endpoint(tx, principal, endpoint_id, lock=True)
        now = ctx.clock()
        tx.execute(
            "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed,"
            " previous_expires_at = :until, secret_sealed = :sealed, rotated_at = :now"
            " WHERE id = :id",
            {
                "until": now + timedelta(hours=ctx.settings.webhooks_rotation_overlap_hours),
                "sealed": _sealer(ctx).seal(secret, endpoint_id),
                "now": now,
                "id": endpoint_id,
            },
        )
        record(
            tx, "webhook.secret_rotated", principal.actor, now, data={"endpoint_id": endpoint_id}
        )
        endpoint = access_endpoint(tx, principal, endpoint_id)
    return EndpointWithSecret(**endpoint.model_dump(), secret=secret)


# --- deliveries ----------------------------------------------------------------------------

_DELIVERY = (
    "SELECT id, endpoint_id, event_type, parcel_id, state, next_attempt_at, created_at,"
    " delivered_at, failed_at, last_error FROM webhook_deliveries"
)


def _deliveries(tx: Tx, rows: list[Row]) -> list[DeliveryOut]:
    attempts: dict[str, list[AttemptOut]] = {row[0]: [] for row in rows}
    if rows:
        names = {f"d{i}": row[0] for i, row in enumerate(rows)}
        for delivery_id, at, status_code, error, duration_ms in tx.all(
            "SELECT delivery_id, at, status_code, error, duration_ms FROM webhook_attempts"
            f" WHERE delivery_id IN ({', '.join(':' + name for name in names)}) ORDER BY id",
            names,
        ):
            attempts[delivery_id].append(
                AttemptOut(
                    at=tx.time(at), status_code=status_code, error=error, duration_ms=duration_ms
                )
            )
    return [
        DeliveryOut(
            id=row[0],
            endpoint_id=row[1],
            event_type=row[2],
            parcel_id=row[3],
            state=row[4],
            next_attempt_at=tx.time(row[5]) if row[4] == "pending" else None,
            created_at=tx.time(row[6]),
            delivered_at=tx.time(row[7]),
            failed_at=tx.time(row[8]),
            last_error=row[9],
            attempts=attempts[row[0]],
        )
        for row in rows
    ]


def list_deliveries(
    ctx: Context,
    principal: Principal,
    endpoint_id: str,
    *,
    state: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> DeliveryList:
    """An endpoint's deliveries, newest first, each with its attempts; ``state`` filters
    (``failed`` lists what ran out of retries)."""
    where = ["endpoint_id = :endpoint"]
    params: dict[str, Any] = {"endpoint": endpoint_id, "limit": limit + 1}
    if state is not None:
        where.append("state = :state")
        params["state"] = state
    if cursor is not None:
        where.append("id < :cursor")
        params["cursor"] = decode_cursor(cursor)
    with ctx.db.sql.transaction(write=False) as tx:
        access_endpoint(tx, principal, endpoint_id)
        rows = tx.all(
            _DELIVERY + f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit", params
        )
        items = _deliveries(tx, rows[:limit])
    return DeliveryList(
        items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
    )


def replay_delivery(
    ctx: Context, principal: Principal, endpoint_id: str, delivery_id: str
) -> DeliveryOut:
    """Send a delivery again now, with the schedule's retries afresh and the same
    ``webhook-id`` (so a receiver that has it already can tell). Raises
    ``delivery_not_found``, ``endpoint_disabled``, ``delivery_in_flight``."""
    with ctx.db.sql.transaction() as tx:
        endpoint = access_endpoint(tx, principal, endpoint_id, lock=True)
        if endpoint.disabled_at is not None:
            raise Conflict(
                "The endpoint is disabled; turn it on (PATCH enabled: true) before replaying.",
                code="endpoint_disabled",
            )
        now = ctx.clock()
        row = tx.one(
            "SELECT parcel_id, lease_until FROM webhook_deliveries"
            f" WHERE id = :id AND endpoint_id = :endpoint{tx.lock()}",
            {"id": delivery_id, "endpoint": endpoint_id},
        )
        if row is None:
            raise NotFound(f"No delivery {delivery_id!r}.", code="delivery_not_found")
        lease_until = tx.time(row[1])
        if lease_until is not None and lease_until > now:
            raise Conflict(
                "An attempt at this delivery is under way; wait for its outcome.",
                code="delivery_in_flight",
            )
        tx.execute(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,"
            " next_attempt_at = :now, failed_at = NULL, claim = NULL, lease_until = NULL"
            " WHERE id = :id",
            {"now": now, "id": delivery_id},
        )
        record(
            tx,
            "webhook.delivery_replayed",
            principal.actor,
            now,
            parcel_id=row[0],
            data={"endpoint_id": endpoint_id, "delivery_id": delivery_id},
        )
        return _deliveries(tx, tx.all(_DELIVERY + " WHERE id = :id", {"id": delivery_id}))[0]


def _fail_pending(tx: Tx, endpoint_id: str, now: datetime, why: str) -> None:
    """Mark an endpoint's pending deliveries failed (visible and replayable, not dropped);
    one in flight records its attempt but no longer its outcome."""
    tx.execute(
        "UPDATE webhook_deliveries SET state = 'failed', failed_at = :now, last_error = :why,"
        " lease_until = NULL, claim = NULL WHERE endpoint_id = :id AND state = 'pending'",
        {"now": now, "why": why, "id": endpoint_id},
    )


# --- the delivery job's steps --------------------------------------------------------------


def fan_out(ctx: Context, *, batch: int = 500) -> int:
    """Turn unsent ``webhook.*`` outbox messages into one delivery per matching endpoint
    (active, of the message's organization, subscribed to its event type) and mark them
    sent, in one transaction. Safe in several processes (SKIP LOCKED on PostgreSQL).
    Returns how many messages it took."""
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        messages = tx.all(
            "SELECT id, parcel_id, payload FROM outbox"
            " WHERE sent_at IS NULL AND topic LIKE 'webhook.%' AND available_at <= :now"
            f" ORDER BY seq LIMIT :batch{tx.lock(skip_locked=True)}",
            {"now": now, "batch": batch},
        )
        if not messages:
            return 0
        payloads = [(message_id, parcel_id, tx.json(p)) for message_id, parcel_id, p in messages]
        orgs = {f"o{i}": org for i, org in enumerate({p.get("org_id") for _, _, p in payloads})}
        listeners: dict[str, list[tuple[str, set[str]]]] = {}
        for endpoint_id, org_id, events in tx.all(
            "SELECT id, org_id, events FROM webhook_endpoints WHERE deleted_at IS NULL"
            f" AND disabled_at IS NULL AND org_id IN ({', '.join(':' + o for o in orgs)})",
            orgs,
        ):
            listeners.setdefault(org_id, []).append((endpoint_id, set(tx.json(events))))
        deliveries = [
            {
                "id": new_id("whd"),
                "endpoint_id": endpoint_id,
                "outbox_id": message_id,
                "event_type": payload["event"],
                "parcel_id": parcel_id,
                "body": delivery_body(payload),
            }
            for message_id, parcel_id, payload in payloads
            for endpoint_id, events in listeners.get(payload.get("org_id"), [])
            if payload["event"] in events
        ]
        shared = {"state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
        # Six values a row and four shared keep each statement within 50 parameters.
        for start in range(0, len(deliveries), 7):
            tx.execute(*insert_rows("webhook_deliveries", shared, deliveries[start : start + 7]))
        sent = {f"m{i}": message[0] for i, message in enumerate(messages)}
        tx.execute(
            "UPDATE outbox SET state = 'sent', sent_at = :now, attempts = attempts + 1"
            f" WHERE id IN ({', '.join(':' + m for m in sent)})",
            {"now": now, **sent},
        )
    return len(messages)


@dataclass(frozen=True)
class Claimed:
    """A delivery a sender holds until ``lease_until``: what to send, and with which keys."""

    delivery_id: str
    endpoint_id: str
    claim: str
    url: str
    body: str
    #: The current secret first, then the previous one during a rotation's overlap.
    secrets: tuple[str, ...]


def claim_due(
    ctx: Context, *, limit: int, per_endpoint: int, in_flight: Mapping[str, int]
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` in flight to one
    endpoint counting ``in_flight`` (this process's sends). Endpoints at their bound are
    left out of the query, so one slow endpoint's backlog does not crowd out the others.
    Several processes never hold one delivery at once (SKIP LOCKED and the lease)."""
    now = ctx.clock()
    busy = {f"b{i}": e for i, (e, n) in enumerate(in_flight.items()) if n >= per_endpoint}
    lease_until = now + timedelta(seconds=ctx.settings.webhooks_timeout_seconds + 30)
    with ctx.db.sql.transaction() as tx:
        rows = tx.all(
            "SELECT d.id, d.endpoint_id, d.body, e.url, e.secret_sealed,"
            " e.previous_secret_sealed, e.previous_expires_at"
            " FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
            " WHERE d.state = 'pending' AND d.next_attempt_at <= :now"
            " AND (d.lease_until IS NULL OR d.lease_until <= :now)"
            # An endpoint turned off keeps its deliveries pending until it is turned on.
            " AND e.disabled_at IS NULL AND e.deleted_at IS NULL"
            + (f" AND d.endpoint_id NOT IN ({', '.join(':' + b for b in busy)})" if busy else "")
            + f" ORDER BY d.next_attempt_at LIMIT :scan{tx.lock('d', skip_locked=True)}",
            {"now": now, "scan": limit * 2, **busy},
        )
        sealer = _sealer(ctx)
        counts = dict(in_flight)
        claimed: list[Claimed] = []
        for delivery_id, endpoint_id, body, url, sealed, previous, previous_until in rows:
            if len(claimed) == limit or counts.get(endpoint_id, 0) >= per_endpoint:
                continue
            keys = [_unsealed(sealer, sealed, endpoint_id)]
            until = tx.time(previous_until)
            if previous is not None and until is not None and until > now:
                keys.append(_unsealed(sealer, previous, endpoint_id))
            if keys[0] is None:
                _fail_unopenable(tx, delivery_id, now)
                continue
            counts[endpoint_id] = counts.get(endpoint_id, 0) + 1
            signing = tuple(key for key in keys if key is not None)
            claimed.append(
                Claimed(delivery_id, endpoint_id, secrets.token_hex(8), url, body, signing)
            )
        for held in claimed:
            tx.defer(
                "UPDATE webhook_deliveries SET lease_until = :until, claim = :claim WHERE id = :id",
                {"until": lease_until, "claim": held.claim, "id": held.delivery_id},
            )
    return claimed


def _unsealed(sealer: Sealer, sealed: str, endpoint_id: str) -> str | None:
    """The secret, or None when it no longer opens (the server secret was changed)."""
    try:
        return sealer.unseal(sealed, endpoint_id)
    except InvalidTag:
        return None


_UNOPENABLE = (
    "the endpoint's secret no longer opens (was OPENLOCKER_SECRET_KEY changed?); rotate it"
)


def _fail_unopenable(tx: Tx, delivery_id: str, now: datetime) -> None:
    # Failed, not skipped: it would otherwise be scanned again at every step, and stay unseen.
    tx.defer(
        "UPDATE webhook_deliveries SET state = 'failed', failed_at = :now, last_error = :why"
        " WHERE id = :id",
        {"now": now, "why": _UNOPENABLE, "id": delivery_id},
    )


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: the answer's status, or why there was none."""

    at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def record_outcome(ctx: Context, claimed: Claimed, outcome: Outcome) -> str:
    """Record an attempt and move its delivery on: ``delivered`` on a 2xx; on a ``410 Gone``
    ``failed`` and the endpoint disabled (its pending deliveries failed too); otherwise the
    next attempt on the schedule, or ``failed`` when it has run out. Returns the delivery's
    state; a sender whose lease was taken over records only the attempt."""
    with ctx.db.sql.transaction() as tx:
        tx.defer(
            "INSERT INTO webhook_attempts (id, delivery_id, at, status_code, error, duration_ms)"
            " VALUES (:id, :delivery, :at, :status, :error, :ms)",
            {
                "id": new_id("wha"),
                "delivery": claimed.delivery_id,
                "at": outcome.at,
                "status": outcome.status_code,
                "error": outcome.error,
                "ms": outcome.duration_ms,
            },
        )
        row = tx.one(
            f"SELECT attempts, parcel_id FROM webhook_deliveries WHERE id = :id AND claim = :claim"
            f"{tx.lock()}",
            {"id": claimed.delivery_id, "claim": claimed.claim},
        )
        if row is None:
            return "taken_over"
        attempts, parcel_id = row[0] + 1, row[1]
        changes: dict[str, Any]
        error = outcome.error or f"HTTP {outcome.status_code}"
        if outcome.delivered:
            state, changes = "delivered", {"delivered_at": outcome.at, "last_error": None}
        elif outcome.status_code == 410 or attempts >= len(SCHEDULE):
            state, changes = "failed", {"failed_at": outcome.at, "last_error": error}
        else:
            next_at = outcome.at + SCHEDULE[attempts]
            state, changes = "pending", {"next_attempt_at": next_at, "last_error": error}
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        tx.execute(
            f"UPDATE webhook_deliveries SET state = :state, attempts = :attempts, {assignments},"
            " lease_until = NULL, claim = NULL WHERE id = :id",
            {"state": state, "attempts": attempts, **changes, "id": claimed.delivery_id},
        )
        if outcome.status_code == 410:
            _disable_gone(tx, claimed.endpoint_id, outcome.at)
        elif state == "failed":
            record(
                tx,
                "webhook.delivery_failed",
                SYSTEM_WEBHOOKS,
                outcome.at,
                parcel_id=parcel_id,
                data={
                    "endpoint_id": claimed.endpoint_id,
                    "delivery_id": claimed.delivery_id,
                    "attempts": attempts,
                    "error": error,
                },
            )
    return state


def _disable_gone(tx: Tx, endpoint_id: str, now: datetime) -> None:
    disabled = tx.execute(
        "UPDATE webhook_endpoints SET disabled_at = :now, disabled_reason = :why"
        " WHERE id = :id AND disabled_at IS NULL",
        {"now": now, "why": _GONE, "id": endpoint_id},
    ).rowcount
    if disabled:
        _fail_pending(tx, endpoint_id, now, f"{_GONE}; the endpoint was disabled")
        record(
            tx,
            "webhook.disabled",
            SYSTEM_WEBHOOKS,
            now,
            data={"endpoint_id": endpoint_id, "reason": _GONE},
        )
