"""Returns and courier collection: issue a return code, drop off at any locker, collect.

A return becomes a parcel at drop-off, ``awaiting_collection`` in the compartment the kiosk
picked, until its organization's courier scans it out of the site's collection manifest
(``collected``); expired parcels leave through the same manifest (``returned``).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from openlocker.audit.service import Message, enqueue, record
from openlocker.core.context import Context
from openlocker.core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from openlocker.core.ids import CROCKFORD, new_id
from openlocker.core.sql import Tx
from openlocker.fleet import alarms
from openlocker.lockers import allocation
from openlocker.lockers.service import (
    access_site_info,
    check_fits_network,
    do_claim_compartment,
    load_sizes,
)
from openlocker.orgs.service import Principal
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import CompartmentRef, Dimensions
from openlocker.returns.schemas import (
    DropOffOut,
    Manifest,
    ManifestItem,
    ReturnIn,
    ReturnOut,
)

#: Crockford base32 characters in a return code: 80 random bits, never guessed.
CODE_CHARS = 16
_COLUMNS = (
    "id, org_id, reference, status, size_code, length_mm, width_mm, height_mm, customer,"
    " parcel_id, expires_at, created_at, dropped_off_at"
)
#: What a collection manifest holds, by parcel status.
COLLECTABLE = {"awaiting_collection": "return", "expired": "expired"}
#: Crockford's reading of look-alike characters.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def generate_code() -> str:
    """A return code, ``XXXX-XXXX-XXXX-XXXX`` in Crockford base32 (no I, L, O, U)."""
    raw = "".join(secrets.choice(CROCKFORD) for _ in range(CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_CHARS, 4))


def normalize_code(code: str) -> str | None:
    """The code's canonical characters however it was typed (case, dashes, spaces, I/L/O),
    or None when it cannot be a return code."""
    raw = code.upper().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(raw) != CODE_CHARS or any(char not in CROCKFORD for char in raw):
        return None
    return raw


def _code_digest(ctx: Context, normalized: str) -> str:
    return ctx.keyring.digest("return-code", normalized)


@dataclass(slots=True)
class _Return:
    id: str
    org_id: str
    reference: str
    status: str
    size_code: str | None
    length_mm: int | None
    width_mm: int | None
    height_mm: int | None
    customer: dict[str, Any]
    parcel_id: str | None
    expires_at: datetime
    created_at: datetime
    dropped_off_at: datetime | None

    @property
    def box(self) -> tuple[int, int, int] | None:
        if self.length_mm and self.width_mm and self.height_mm:
            return self.length_mm, self.width_mm, self.height_mm
        return None


def _return(tx: Tx, row: tuple[Any, ...]) -> _Return:
    values = list(row)
    values[8] = tx.json(values[8])
    for i in (10, 11, 12):
        values[i] = tx.time(values[i])
    return _Return(*values)


def _view(item: _Return, code: str | None = None) -> ReturnOut:
    box = item.box
    return ReturnOut(
        id=item.id,
        reference=item.reference,
        status=item.status,
        size=item.size_code,
        dimensions_mm=Dimensions(length=box[0], width=box[1], height=box[2]) if box else None,
        expires_at=item.expires_at,
        created_at=item.created_at,
        parcel_id=item.parcel_id,
        dropped_off_at=item.dropped_off_at,
        code=code,
    )


def _webhook(item: _Return, event: str, at: datetime, **extra: Any) -> Message:
    """The organization's webhook, in the shape of a parcel's."""
    return Message(
        "webhook.carrier",
        {
            "event": event,
            "org_id": item.org_id,
            "return_id": item.id,
            "reference": item.reference,
            "parcel_id": item.parcel_id,
            "status": item.status,
            "at": at.isoformat(),
            **extra,
        },
        parcel_id=item.parcel_id,
    )


def issue_return(ctx: Context, principal: Principal, request: ReturnIn) -> ReturnOut:
    """Issue a return code for a parcel a customer will drop at any locker site.

    The answer is the only time the code is shown. Raises ``unknown_size``, ``too_large``,
    ``duplicate_reference``.
    """
    principal.check_scope("parcels:write")
    dims = request.dimensions_mm
    need = allocation.ParcelNeed(
        (dims.length, dims.width, dims.height) if dims else None, request.size
    )
    code = generate_code()
    normalized = normalize_code(code)
    assert normalized is not None
    with ctx.db.sql.transaction() as tx:
        sizes = load_sizes(ctx, tx)
        if request.size is not None and request.size not in sizes:
            raise InvalidInput(f"Unknown size class {request.size!r}.", code="unknown_size")
        check_fits_network(sizes, need)
        now = ctx.clock()
        item = _Return(
            id=new_id("ret"),
            org_id=principal.org_id,
            reference=request.reference,
            status="issued",
            size_code=request.size,
            length_mm=dims.length if dims else None,
            width_mm=dims.width if dims else None,
            height_mm=dims.height if dims else None,
            customer=request.customer.model_dump(mode="json", exclude_none=True),
            parcel_id=None,
            expires_at=now + timedelta(days=request.valid_days),
            created_at=now,
            dropped_off_at=None,
        )
        record(
            tx,
            "return.issued",
            principal.actor,
            now,
            data={"return_id": item.id, "reference": item.reference},
        )
        inserted = tx.one(
            f"INSERT INTO returns ({_COLUMNS}, code_digest) VALUES (:id, :org_id, :reference,"
            " :status, :size_code, :length_mm, :width_mm, :height_mm, :customer, :parcel_id,"
            " :expires_at, :created_at, :dropped_off_at, :code_digest)"
            " ON CONFLICT (org_id, reference) DO NOTHING RETURNING id",
            {
                **asdict(item),
                "customer": tx.json_param(item.customer),
                "code_digest": _code_digest(ctx, normalized),
            },
        )
        if inserted is None:
            raise Conflict(
                f"Return {request.reference!r} exists already.", code="duplicate_reference"
            )
    return _view(item, code)


def get_return(ctx: Context, principal: Principal, return_id: str) -> ReturnOut:
    principal.check_scope("parcels:read")
    with ctx.db.sql.transaction(write=False) as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM returns WHERE id = :id", {"id": return_id})
        if row is None or (row[1] != principal.org_id and not principal.is_admin):
            raise NotFound(f"No return {return_id!r}.", code="return_not_found")
        return _view(_return(tx, row))


def drop_off(
    ctx: Context, principal: Principal, site_id: str, code: str, *, door: str = "command"
) -> DropOffOut:
    """A customer drops a return at a site's kiosk: the best free compartment of its size
    opens, the return becomes a parcel ``awaiting_collection``, the customer gets a receipt
    (``recipient.return_receipt``) and the organization a webhook. With ``door`` ``kiosk``
    the kiosk opens the door itself (its own screen asked), so no door command is queued.

    Every refused code is audited. Raises ``invalid_code``, ``code_expired``,
    ``return_code_used`` (a code works once), ``site_full`` (with sites that have room).
    """
    principal.check_kiosk(site_id)
    normalized = normalize_code(code)
    opens = parcels.KIOSK_OPENED if door == "kiosk" else parcels.commanded(ctx)
    failure: DomainError | None = None
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        now = ctx.clock()
        try:
            item = _check_code(ctx, tx, normalized, now)
        except DomainError as error:
            failure = error
            record(
                tx,
                "return.drop_off_failed",
                principal.actor,
                now,
                site_id=site.id,
                data={"reason": error.code},
            )
        else:
            need = allocation.ParcelNeed(item.box, item.size_code)
            claimed = do_claim_compartment(ctx, tx, site, need, state="occupied")
            parcel = parcels.ParcelRow(
                id=new_id("prc"),
                carrier_org_id=item.org_id,
                tracking_number=item.id,
                site_id=site.id,
                status="awaiting_collection",
                size_code=item.size_code,
                length_mm=item.length_mm,
                width_mm=item.width_mm,
                height_mm=item.height_mm,
                weight_g=None,
                temperature="ambient",
                accessible=False,
                recipient={},
                notify="sender",
                compartment_id=claimed.id,
                announced_at=now,
                deposited_at=now,
                compartment_label=claimed.label,
                compartment_size=claimed.size_code,
            )
            parcels.insert_parcels(tx, [parcel])
            item.status, item.parcel_id, item.dropped_off_at = "dropped_off", parcel.id, now
            tx.defer(
                "UPDATE returns SET status = :status, parcel_id = :parcel_id,"
                " dropped_off_at = :at WHERE id = :id",
                {"status": item.status, "parcel_id": parcel.id, "at": now, "id": item.id},
            )
            record(
                tx,
                "return.dropped_off",
                principal.actor,
                now,
                site_id=site.id,
                parcel_id=parcel.id,
                compartment_id=claimed.id,
                data={"return_id": item.id, "reference": item.reference},
            )
            messages = [
                *opens.commands(
                    site.id, claimed, now, reason="return_drop_off", parcel_id=parcel.id
                ),
                _webhook(item, "return.dropped_off", now, site_id=site.id),
            ]
            if item.customer.get("email") or item.customer.get("phone"):
                messages.append(_receipt(item, site.id, claimed.label, now))
            enqueue(tx, now, *messages)
            return DropOffOut(
                return_id=item.id,
                reference=item.reference,
                parcel_id=parcel.id,
                status="awaiting_collection",
                compartment=CompartmentRef(
                    id=claimed.id, label=claimed.label, size=claimed.size_code
                ),
            )
    assert failure is not None
    raise failure


def _receipt(item: _Return, site_id: str, compartment: str, now: datetime) -> Message:
    """The customer's receipt (``recipient.return_receipt``), which the dispatcher sends by
    email and SMS like a parcel's messages (docs/notifications.md)."""
    return Message(
        "recipient.return_receipt",
        {
            "return_id": item.id,
            "reference": item.reference,
            "site_id": site_id,
            "compartment": compartment,
            "dropped_off_at": now.isoformat(),
            "recipient": item.customer,
        },
        parcel_id=item.parcel_id,
    )


def _check_code(ctx: Context, tx: Tx, normalized: str | None, now: datetime) -> _Return:
    """The return whose code this is, locked; refuses unknown, used and expired codes."""
    row = None
    if normalized is not None:
        row = tx.one(
            f"SELECT {_COLUMNS} FROM returns WHERE code_digest = :digest" + tx.lock(),
            {"digest": _code_digest(ctx, normalized)},
        )
    if row is None:
        raise Forbidden("This is not a return code.", code="invalid_code")
    item = _return(tx, row)
    if item.status != "issued":
        raise Conflict(
            "This return code has been used already.",
            code="return_code_used",
            extra={"return_id": item.id},
        )
    if now >= item.expires_at:
        raise Forbidden("The return code has expired.", code="code_expired")
    return item


def _manifest_scope(
    tx: Tx, principal: Principal, site_id: str, courier_id: str | None
) -> tuple[str, dict[str, Any]]:
    """Whose parcels a manifest holds: the key's organization's (every one for an operator),
    or with ``courier_id`` and the site's kiosk key, the organization of that courier, who
    signed in at the kiosk (an active courier code valid at this site)."""
    if courier_id is None:
        principal.check_scope("parcels:write")
        if principal.is_admin:
            return "", {}
        return " AND p.carrier_org_id = :org_id", {"org_id": principal.org_id}
    principal.check_kiosk(site_id)
    org_id = tx.scalar(
        "SELECT c.org_id FROM courier_codes c WHERE c.id = :id AND c.active AND (c.all_sites"
        " OR EXISTS (SELECT 1 FROM courier_code_sites s WHERE s.courier_id = c.id"
        " AND s.site_id = :site))",
        {"id": courier_id, "site": site_id},
    )
    if org_id is None:
        raise Forbidden(
            "This courier may not collect at this site (unknown or deactivated).",
            code="invalid_courier",
        )
    return " AND p.carrier_org_id = :org_id", {"org_id": org_id}


def collection_manifest(
    ctx: Context, principal: Principal, site_id: str, *, courier_id: str | None = None
) -> Manifest:
    """What the site holds for the courier's organization (every one, for an operator):
    returns awaiting collection and expired parcels, by compartment label. The site's kiosk
    asks it for the courier signed in there (``courier_id``). Raises ``invalid_courier``."""
    with ctx.db.sql.transaction(write=False) as tx:
        scope, params = _manifest_scope(tx, principal, site_id, courier_id)
        site = access_site_info(ctx, tx, site_id)
        held = parcels.select_parcels(
            tx,
            "p.site_id = :site_id AND p.status IN ('awaiting_collection', 'expired')" + scope,
            {"site_id": site.id, **params},
        )
        references: dict[str, str] = dict(
            tx.all(
                "SELECT r.parcel_id, r.reference FROM returns r JOIN parcels p"
                " ON p.id = r.parcel_id WHERE p.site_id = :site_id"
                " AND p.status = 'awaiting_collection'" + scope,
                {"site_id": site.id, **params},
            )
        )
    items = [
        ManifestItem(
            parcel_id=p.id,
            tracking_number=p.tracking_number,
            status=p.status,
            kind=COLLECTABLE[p.status],
            compartment=parcels.parcel_view(p).compartment,
            reference=references.get(p.id),
        )
        for p in held
    ]
    items.sort(key=lambda i: i.compartment.label if i.compartment else "")
    return Manifest(site_id=site.id, items=items)


def scan_out(
    ctx: Context,
    principal: Principal,
    site_id: str,
    parcel_id: str,
    outcome: str,
    *,
    courier_id: str | None = None,
    door: str = "command",
) -> parcels.ParcelRow:
    """The courier scans a parcel of the manifest out: its door opens, a return is
    ``collected`` and an expired parcel ``returned``, the organization is told. With
    ``missing`` the parcel is not there: a ``collection.discrepancy`` (audit event and
    webhook) for the operator to look into; the parcel stays as it was.

    The site's kiosk scans for the courier signed in there (``courier_id``, audited with
    the event), having opened the door itself (``door`` ``kiosk``: no door command).

    Raises ``parcel_not_found``, ``not_at_site`` (the parcel waits at another site),
    ``invalid_transition`` (not in a manifest's status), ``invalid_courier``.
    """
    by = {"courier_id": courier_id} if courier_id is not None else {}
    with ctx.db.sql.transaction() as tx:
        scope, params = _manifest_scope(tx, principal, site_id, courier_id)
        site = access_site_info(ctx, tx, site_id)
        found = parcels.select_parcels(
            tx, "p.id = :id" + scope, {"id": parcel_id, **params}, lock=True
        )
        if not found:
            raise NotFound(f"No parcel {parcel_id!r}.", code="parcel_not_found")
        parcel = found[0]
        if parcel.site_id != site.id:
            raise Conflict(
                "This parcel is not at this site.",
                code="not_at_site",
                extra={"parcel_site_id": parcel.site_id},
            )
        if parcel.status not in COLLECTABLE:
            raise Conflict(
                f"A parcel that is {parcel.status} is not collected.",
                code="invalid_transition",
                extra={"parcel_status": parcel.status},
            )
        now = ctx.clock()
        if outcome == "missing":
            record(
                tx,
                "collection.discrepancy",
                principal.actor,
                now,
                site_id=site.id,
                parcel_id=parcel.id,
                compartment_id=parcel.compartment_id,
                data={"parcel_status": parcel.status, "found": "empty", **by},
            )
            discrepancy = parcels.webhook(parcel, "collection.discrepancy", now)
            enqueue(tx, now, discrepancy)
            alarms.do_raise_alarm(
                tx,
                principal.actor,
                site.id,
                "collection_discrepancy",
                now,
                compartment_id=parcel.compartment_id,
                detail={"parcel_id": parcel.id, "parcel_status": parcel.status},
            )
            return parcel
        was_return = parcel.status == "awaiting_collection"
        opens = parcels.KIOSK_OPENED if door == "kiosk" else parcels.commanded(ctx)
        parcels.do_retrieve(tx, principal.actor, parcel, now, door=opens, manifest=True, **by)
        if was_return:
            row = tx.one(
                "UPDATE returns SET status = 'collected' WHERE parcel_id = :id"
                f" RETURNING {_COLUMNS}",
                {"id": parcel.id},
            )
            assert row is not None, "a return's parcel has its return"
            enqueue(tx, now, _webhook(_return(tx, row), "return.collected", now))
        return parcel
