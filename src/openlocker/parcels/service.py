"""The parcel lifecycle: announce, deposit, pickup, cancel, expire, return.

Each public function is one use case in one transaction. State changes write their audit
event and their outbox messages in that transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from openlocker.access import service as access
from openlocker.audit.service import enqueue, record
from openlocker.core.context import Actor, Context
from openlocker.core.db import is_postgres
from openlocker.core.errors import Conflict, DomainError, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.core.keys import b64url, unb64url
from openlocker.lockers import allocation
from openlocker.lockers.models import Compartment, Site
from openlocker.lockers.service import (
    access_site,
    check_fits_network,
    check_room,
    do_claim_compartment,
    load_sizes,
)
from openlocker.orgs.service import Principal
from openlocker.parcels.models import IdempotencyRecord, Parcel
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


@dataclass(frozen=True)
class Answer:
    """A use case's result as the API returns it; ``replayed`` for idempotent retries."""

    status_code: int
    parcel: ParcelOut
    replayed: bool = False


# --- views -------------------------------------------------------------------------------


def parcel_view(
    session: Session, parcel: Parcel, pickup: PickupCredentials | None = None
) -> ParcelOut:
    compartment = session.get(Compartment, parcel.compartment_id) if parcel.compartment_id else None
    box = _dimensions(parcel)
    dims = Dimensions(length=box[0], width=box[1], height=box[2]) if box else None
    return ParcelOut(
        id=parcel.id,
        tracking_number=parcel.tracking_number,
        site_id=parcel.site_id,
        status=parcel.status,
        size=parcel.size_code,
        dimensions_mm=dims,
        temperature=parcel.temperature,
        accessible=parcel.accessible,
        notify=parcel.notify,
        compartment=_compartment_ref(compartment) if compartment else None,
        reserved_until=parcel.reserved_until,
        dwell_deadline=parcel.dwell_deadline,
        announced_at=parcel.announced_at,
        deposited_at=parcel.deposited_at,
        picked_up_at=parcel.picked_up_at,
        cancelled_at=parcel.cancelled_at,
        expired_at=parcel.expired_at,
        returned_at=parcel.returned_at,
        pickup=pickup,
    )


def _compartment_ref(compartment: Compartment) -> CompartmentRef:
    return CompartmentRef(id=compartment.id, label=compartment.label, size=compartment.size_code)


def _dimensions(parcel: Parcel) -> tuple[int, int, int] | None:
    if parcel.length_mm and parcel.width_mm and parcel.height_mm:
        return parcel.length_mm, parcel.width_mm, parcel.height_mm
    return None


def _need(parcel: Parcel) -> allocation.ParcelNeed:
    return allocation.ParcelNeed(
        _dimensions(parcel), parcel.size_code, parcel.temperature, parcel.accessible
    )


def access_parcel(
    session: Session, principal: Principal, parcel_id: str, *, lock: bool = False
) -> Parcel:
    """The parcel if the principal may see it; another carrier's parcel is a 404.

    Its site is loaded in the same query (into the session), since most use cases need it.
    """
    query = select(Parcel, Site).join(Site, Site.id == Parcel.site_id).where(Parcel.id == parcel_id)
    if not principal.is_admin:
        query = query.where(Parcel.carrier_org_id == principal.org_id)
    if lock and is_postgres(session):
        query = query.with_for_update(of=Parcel)
    row = session.execute(query).first()
    if row is None:
        raise NotFound(f"No parcel {parcel_id!r}.", code="parcel_not_found")
    parcel: Parcel = row.Parcel
    return parcel


def _transition_error(parcel: Parcel, action: str) -> Conflict:
    return Conflict(
        f"A parcel that is {parcel.status} cannot be {action}.",
        code="invalid_transition",
        extra={"parcel_status": parcel.status},
    )


# --- idempotency ---------------------------------------------------------------------------


def _request_digest(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _stored_answer(
    session: Session, org_id: str, endpoint: str, key: str, digest: str
) -> IdempotencyRecord | None:
    stored = session.get(IdempotencyRecord, (org_id, endpoint, key))
    if stored is not None and stored.request_digest != digest:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request.", code="idempotency_key_reused"
        )
    return stored


def _remember(
    session: Session,
    ctx: Context,
    org_id: str,
    endpoint: str,
    key: str,
    digest: str,
    answer: Answer,
) -> None:
    body = answer.parcel.model_copy(update={"pickup": None}).model_dump_json()
    session.add(
        IdempotencyRecord(
            org_id=org_id,
            endpoint=endpoint,
            key=key,
            request_digest=digest,
            status_code=answer.status_code,
            body=body,
            created_at=ctx.clock(),
        )
    )


# --- use cases -----------------------------------------------------------------------------


def announce(
    ctx: Context, principal: Principal, request: AnnounceIn, idempotency_key: str | None = None
) -> Answer:
    """Announce a parcel for a site; with ``reserve`` a compartment is held until a deadline.

    Raises ``site_not_found``, ``unknown_size``, ``too_large``, ``site_full`` (with the nearest
    sites that have room), ``duplicate_tracking_number``, ``idempotency_key_reused``.
    """
    principal.check_scope("parcels:write")
    digest = _request_digest(request.model_dump(mode="json"))
    dims = request.dimensions_mm
    need = allocation.ParcelNeed(
        (dims.length, dims.width, dims.height) if dims else None,
        request.size,
        request.temperature,
        request.accessible,
    )
    with ctx.db.transaction() as session:
        if idempotency_key is not None:
            stored = _stored_answer(session, principal.org_id, "announce", idempotency_key, digest)
            if stored is not None:
                return Answer(stored.status_code, ParcelOut.model_validate_json(stored.body), True)
        site = access_site(session, request.site_id)
        sizes = load_sizes(ctx, session)
        if request.size is not None and request.size not in sizes:
            raise InvalidInput(f"Unknown size class {request.size!r}.", code="unknown_size")
        check_fits_network(sizes, need)
        duplicate = session.scalar(
            select(Parcel.id).where(
                Parcel.carrier_org_id == principal.org_id,
                Parcel.tracking_number == request.tracking_number,
            )
        )
        if duplicate is not None:
            raise Conflict(
                f"Tracking number {request.tracking_number!r} is already announced.",
                code="duplicate_tracking_number",
                extra={"parcel_id": duplicate},
            )
        now = ctx.clock()
        parcel = Parcel(
            id=new_id("prc"),
            carrier_org_id=principal.org_id,
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
        compartment = None
        if request.reserve:
            compartment = do_claim_compartment(session, sizes, site, need)
            compartment.state = "reserved"
            parcel.compartment_id = compartment.id
            parcel.reserved_until = now + timedelta(hours=ctx.settings.reservation_hold_hours)
        else:
            check_room(session, sizes, site, need)
        session.add(parcel)
        record(
            session,
            "parcel.announced",
            principal.actor,
            now,
            site_id=site.id,
            parcel_id=parcel.id,
            compartment_id=compartment.id if compartment else None,
            data={"tracking_number": parcel.tracking_number, "reserved": request.reserve},
        )
        session.flush()
        answer = Answer(201, parcel_view(session, parcel))
        if idempotency_key is not None:
            _remember(session, ctx, principal.org_id, "announce", idempotency_key, digest, answer)
    return answer


def get_parcel(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    principal.check_scope("parcels:read")
    with ctx.db.read() as session:
        return parcel_view(session, access_parcel(session, principal, parcel_id))


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
    query = select(Parcel).order_by(Parcel.id.desc()).limit(limit + 1)
    if not principal.is_admin:
        query = query.where(Parcel.carrier_org_id == principal.org_id)
    if status is not None:
        query = query.where(Parcel.status == status)
    if site_id is not None:
        query = query.where(Parcel.site_id == site_id)
    if tracking_number is not None:
        query = query.where(Parcel.tracking_number == tracking_number)
    if cursor is not None:
        query = query.where(Parcel.id < decode_cursor(cursor))
    with ctx.db.read() as session:
        rows = session.scalars(query).all()
        items = [parcel_view(session, p) for p in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return ParcelList(items=items, next_cursor=next_cursor)


def encode_cursor(last_id: str) -> str:
    return b64url(last_id.encode())


def decode_cursor(cursor: str) -> str:
    try:
        return unb64url(cursor).decode("ascii")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("The cursor is not valid.", code="invalid_cursor") from exc


def deposit(
    ctx: Context, principal: Principal, parcel_id: str, idempotency_key: str | None = None
) -> Answer:
    """Put an announced parcel in its reserved compartment, or the best free one.

    Issues fresh pickup credentials. A retry with the same ``Idempotency-Key`` returns the
    first answer with newly issued credentials and voids the first ones: no PIN is kept in
    plain text to replay it.
    """
    principal.check_scope("parcels:write")
    digest = _request_digest({"parcel_id": parcel_id})
    endpoint = f"deposit:{parcel_id}"
    with ctx.db.transaction() as session:
        parcel = access_parcel(session, principal, parcel_id, lock=True)
        if idempotency_key is not None:
            stored = _stored_answer(session, principal.org_id, endpoint, idempotency_key, digest)
            if stored is not None:
                first = ParcelOut.model_validate_json(stored.body)
                pickup = (
                    _reissue(session, ctx, principal.actor, parcel)
                    if parcel.status == "deposited"
                    else None
                )
                return Answer(stored.status_code, first.model_copy(update={"pickup": pickup}), True)
        if parcel.status != "announced":
            raise _transition_error(parcel, "deposited")
        site = access_site(session, parcel.site_id)
        now = ctx.clock()
        compartment = (
            session.get(Compartment, parcel.compartment_id) if parcel.compartment_id else None
        )
        if compartment is None:
            compartment = do_claim_compartment(
                session, load_sizes(ctx, session), site, _need(parcel)
            )
        compartment.state = "occupied"
        compartment.use_count += 1
        parcel.compartment_id = compartment.id
        parcel.status = "deposited"
        parcel.deposited_at = now
        parcel.reserved_until = None
        parcel.dwell_deadline = now + timedelta(hours=site.dwell_hours)
        record(
            session,
            "parcel.deposited",
            principal.actor,
            now,
            site_id=site.id,
            parcel_id=parcel.id,
            compartment_id=compartment.id,
            data={"label": compartment.label},
        )
        _open_door(session, compartment, now)
        _webhook(session, parcel, "parcel.deposited", now)
        pickup = _issue_and_send(session, ctx, parcel, site)
        answer = Answer(200, parcel_view(session, parcel))
        if idempotency_key is not None:
            _remember(session, ctx, principal.org_id, endpoint, idempotency_key, digest, answer)
    return Answer(200, answer.parcel.model_copy(update={"pickup": pickup}))


def _issue_and_send(
    session: Session, ctx: Context, parcel: Parcel, site: Site
) -> PickupCredentials | None:
    """Issue credentials; return them for ``notify: sender``, else seal them into the outbox."""
    assert parcel.dwell_deadline is not None
    issued = access.do_issue_credentials(
        session, ctx, parcel_id=parcel.id, site=site, expires_at=parcel.dwell_deadline
    )
    credentials = PickupCredentials(
        pin=issued.pin,
        qr=issued.qr,
        link=f"{ctx.settings.base_url.rstrip('/')}/p/{issued.link_token}",
        expires_at=issued.expires_at,
    )
    if parcel.notify == "sender":
        return credentials
    enqueue(
        session,
        "recipient.pickup_ready",
        {
            "parcel_id": parcel.id,
            "tracking_number": parcel.tracking_number,
            "site_id": site.id,
            "site_name": site.name,
            "site_address": site.address,
            "recipient": parcel.recipient,
            "expires_at": issued.expires_at.isoformat(),
        },
        ctx.clock(),
        parcel_id=parcel.id,
        sealed=ctx.keyring.seal(credentials.model_dump_json()),
    )
    return None


def _reissue(
    session: Session, ctx: Context, actor: Actor, parcel: Parcel
) -> PickupCredentials | None:
    now = ctx.clock()
    access.do_void_credentials(session, parcel.id, now)
    record(
        session,
        "parcel.credentials_reissued",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
    )
    return _issue_and_send(session, ctx, parcel, access_site(session, parcel.site_id))


def cancel(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    """Cancel a parcel before deposit; a reserved compartment is freed."""
    principal.check_scope("parcels:write")
    with ctx.db.transaction() as session:
        parcel = access_parcel(session, principal, parcel_id, lock=True)
        if parcel.status != "announced":
            raise _transition_error(parcel, "cancelled")
        now = ctx.clock()
        released = _release_compartment(session, parcel)
        parcel.status = "cancelled"
        parcel.cancelled_at = now
        parcel.reserved_until = None
        record(
            session,
            "parcel.cancelled",
            principal.actor,
            now,
            site_id=parcel.site_id,
            parcel_id=parcel.id,
            compartment_id=released,
        )
        _webhook(session, parcel, "parcel.cancelled", now)
        return parcel_view(session, parcel)


def retrieve(ctx: Context, principal: Principal, parcel_id: str) -> ParcelOut:
    """The courier takes an expired parcel back out: it is ``returned`` to the carrier."""
    principal.check_scope("parcels:write")
    with ctx.db.transaction() as session:
        parcel = access_parcel(session, principal, parcel_id, lock=True)
        if parcel.status != "expired":
            raise _transition_error(parcel, "returned")
        now = ctx.clock()
        compartment = (
            session.get(Compartment, parcel.compartment_id) if parcel.compartment_id else None
        )
        if compartment is not None:
            compartment.state = "free"
            _open_door(session, compartment, now)
        parcel.status = "returned"
        parcel.returned_at = now
        record(
            session,
            "parcel.returned",
            principal.actor,
            now,
            site_id=parcel.site_id,
            parcel_id=parcel.id,
            compartment_id=parcel.compartment_id,
        )
        _webhook(session, parcel, "parcel.returned", now)
        return parcel_view(session, parcel)


def pickup(ctx: Context, principal: Principal, site_id: str, request: PickupIn) -> PickupOut:
    """Open the compartment of the parcel whose PIN, QR or link token is given at its site.

    Every failure is audited. Wrong typed PINs count per kiosk; after a run of them typed
    PINs are refused for a growing time (``too_many_attempts``); QR and link still work.
    """
    principal.check_kiosk(site_id)
    kind, secret = request.kind_and_secret
    failure: DomainError | None = None
    with ctx.db.transaction() as session:
        site, pins_locked_until = access.access_kiosk_site(session, site_id)
        now = ctx.clock()
        try:
            if kind == "pin":
                access.check_typed_pins_allowed(pins_locked_until, now)
            match = access.check_credential(session, ctx, site, kind, secret)
        except DomainError as error:
            failure = error
            lockout = 0
            if kind == "pin" and error.code != "too_many_attempts":
                lockout = access.do_count_pin_failure(session, site.id, now)
            record(
                session,
                "pickup.refused" if error.code == "too_many_attempts" else "pickup.failed",
                principal.actor,
                now,
                site_id=site.id,
                data={"method": kind, "reason": error.code, "lockout_s": lockout},
            )
        else:
            return _do_pickup(session, principal.actor, match, kind, now)
    raise failure


def _do_pickup(
    session: Session, actor: Actor, match: access.Match, kind: str, now: datetime
) -> PickupOut:
    parcel, compartment = match.parcel, match.compartment
    if parcel.status != "deposited" or compartment is None:
        raise _transition_error(parcel, "picked up")
    access.do_void_credentials(session, parcel.id, now, used_kind=kind)
    compartment.state = "free"
    parcel.status = "picked_up"
    parcel.picked_up_at = now
    record(
        session,
        "parcel.picked_up",
        actor,
        now,
        site_id=parcel.site_id,
        parcel_id=parcel.id,
        compartment_id=compartment.id,
        data={"method": kind},
    )
    _open_door(session, compartment, now)
    _webhook(session, parcel, "parcel.picked_up", now)
    return PickupOut(
        parcel_id=parcel.id,
        tracking_number=parcel.tracking_number,
        status="picked_up",
        compartment=_compartment_ref(compartment),
    )


def _release_compartment(session: Session, parcel: Parcel) -> str | None:
    if parcel.compartment_id is None:
        return None
    compartment = session.get(Compartment, parcel.compartment_id)
    released = parcel.compartment_id
    if compartment is not None and compartment.state == "reserved":
        compartment.state = "free"
    parcel.compartment_id = None
    return released


def _open_door(session: Session, compartment: Compartment, at: datetime) -> None:
    """Queue the command that makes the site's locker open this compartment's door."""
    enqueue(
        session,
        "kiosk.open_compartment",
        {
            "site_id": compartment.site_id,
            "compartment_id": compartment.id,
            "label": compartment.label,
        },
        at,
    )


def _webhook(session: Session, parcel: Parcel, event: str, at: datetime) -> None:
    enqueue(
        session,
        "webhook.carrier",
        {
            "event": event,
            "org_id": parcel.carrier_org_id,
            "parcel_id": parcel.id,
            "tracking_number": parcel.tracking_number,
            "status": parcel.status,
            "at": at.isoformat(),
        },
        at,
        parcel_id=parcel.id,
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


def _expire_batch(ctx: Context, batch: int) -> tuple[int, int]:
    now = ctx.clock()
    with ctx.db.transaction() as session:
        postgres = is_postgres(session)
        due = (
            select(Parcel)
            .where(Parcel.status == "deposited", Parcel.dwell_deadline <= now)
            .limit(batch)
        )
        lapsed = (
            select(Parcel)
            .where(Parcel.status == "announced", Parcel.reserved_until <= now)
            .limit(batch)
        )
        if postgres:
            due = due.with_for_update(skip_locked=True)
            lapsed = lapsed.with_for_update(skip_locked=True)
        expired = session.scalars(due).all()
        for parcel in expired:
            parcel.status = "expired"
            parcel.expired_at = now
            access.do_void_credentials(session, parcel.id, now)
            record(
                session,
                "parcel.expired",
                SYSTEM_EXPIRY,
                now,
                site_id=parcel.site_id,
                parcel_id=parcel.id,
                compartment_id=parcel.compartment_id,
            )
            _webhook(session, parcel, "parcel.expired", now)
        released = session.scalars(lapsed).all()
        for parcel in released:
            compartment_id = _release_compartment(session, parcel)
            parcel.reserved_until = None
            record(
                session,
                "parcel.reservation_lapsed",
                SYSTEM_EXPIRY,
                now,
                site_id=parcel.site_id,
                parcel_id=parcel.id,
                compartment_id=compartment_id,
            )
    return len(expired), len(released)
