"""Courier codes: a carrier gives each courier one to sign in at kiosks (courier mode).

A code is 10 digits, unique among active codes, shown once. The server keeps an HMAC of it
for lookups and a sealed copy (``Keyring.sealer("courier-code")``, bound to the row) from
which each site's kiosk gets its own digest (``fleet.sync``): a kiosk's store opens
nothing at another site.
"""

from __future__ import annotations

import secrets
from typing import Any

from openlocker.access.credentials import kiosk_digest
from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.core.keys import Sealer
from openlocker.core.pages import encode_cursor, newest_first
from openlocker.core.sql import Row, Tx
from openlocker.fleet.schemas import CourierCreated, CourierIn, CourierList, CourierOut
from openlocker.orgs.service import Principal

CODE_DIGITS = 10
_CODE_RETRIES = 20


def generate_courier_code() -> str:
    """A uniformly random code of ``CODE_DIGITS`` digits; leading zeros are kept."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(ctx: Context, code: str) -> str:
    """What the server stores to find a courier code (never the code)."""
    return ctx.keyring.digest("courier-code", code)


def sealer(ctx: Context) -> Sealer:
    return ctx.keyring.sealer("courier-code")


def courier_kiosk_digest(ctx: Context, courier_id: str, sealed: str, site_id: str) -> str:
    """The courier code's digest as ``site_id``'s kiosk looks it up."""
    code = sealer(ctx).unseal(sealed, courier_id)
    return kiosk_digest(ctx.keyring.kiosk_digest_key(site_id), "courier", code)


_SELECT = (
    "SELECT c.id, c.org_id, c.name, c.all_sites, c.active, c.created_at, c.deactivated_at"
    " FROM courier_codes c"
)


def _views(tx: Tx, rows: list[Row]) -> list[CourierOut]:
    limited = [row[0] for row in rows if not row[3]]
    sites: dict[str, list[str]] = {courier_id: [] for courier_id in limited}
    if limited:
        names = {f"c{i}": courier_id for i, courier_id in enumerate(limited)}
        for courier_id, site_id in tx.all(
            "SELECT courier_id, site_id FROM courier_code_sites"
            f" WHERE courier_id IN ({', '.join(':' + n for n in names)}) ORDER BY site_id",
            names,
        ):
            sites[courier_id].append(site_id)
    return [
        CourierOut(
            id=row[0],
            org_id=row[1],
            name=row[2],
            site_ids=None if row[3] else sites[row[0]],
            active=bool(row[4]),
            created_at=tx.time(row[5]),
            deactivated_at=tx.time(row[6]),
        )
        for row in rows
    ]


def do_create_courier(
    ctx: Context,
    tx: Tx,
    actor: Actor,
    org_id: str,
    name: str,
    site_ids: list[str] | None,
) -> CourierCreated:
    """Create a courier code of ``org_id`` (at ``site_ids``, or every site), audited; the
    answer holds the code, shown this once. Raises ``unknown_site``."""
    wanted = sorted(set(site_ids)) if site_ids is not None else None
    if wanted:
        names = {f"s{i}": site_id for i, site_id in enumerate(wanted)}
        found = {
            row[0]
            for row in tx.all(
                f"SELECT id FROM sites WHERE id IN ({', '.join(':' + n for n in names)})", names
            )
        }
        missing = [site_id for site_id in wanted if site_id not in found]
        if missing:
            raise InvalidInput(
                f"No site {missing[0]!r}.", code="unknown_site", extra={"site_id": missing[0]}
            )
    now = ctx.clock()
    courier_id = new_id("cou")
    for _ in range(_CODE_RETRIES):
        code = generate_courier_code()
        inserted = tx.one(
            "INSERT INTO courier_codes (id, org_id, name, code_digest, code_sealed, all_sites,"
            " active, created_at) VALUES (:id, :org, :name, :digest, :sealed, :all, TRUE, :now)"
            " ON CONFLICT (code_digest) WHERE active DO NOTHING RETURNING id",
            {
                "id": courier_id,
                "org": org_id,
                "name": name,
                "digest": code_digest(ctx, code),
                "sealed": sealer(ctx).seal(code, courier_id),
                "all": wanted is None,
                "now": now,
            },
        )
        if inserted:
            break
    else:  # pragma: no cover - needs ~10^9 active codes
        raise Conflict("No free courier code; try again.", code="courier_code_space_exhausted")
    for site_id in wanted or ():
        tx.execute(
            "INSERT INTO courier_code_sites (courier_id, site_id) VALUES (:c, :s)",
            {"c": courier_id, "s": site_id},
        )
    record(
        tx,
        "courier.created",
        actor,
        now,
        data={"courier_id": courier_id, "org_id": org_id, "name": name, "site_ids": wanted},
    )
    return CourierCreated(
        id=courier_id,
        org_id=org_id,
        name=name,
        site_ids=wanted,
        active=True,
        created_at=now,
        code=code,
    )


def create_courier(ctx: Context, principal: Principal, request: CourierIn) -> CourierCreated:
    """A courier code for the caller's organization (``parcels:write``)."""
    principal.check_scope("parcels:write")
    with ctx.db.sql.transaction() as tx:
        return do_create_courier(
            ctx, tx, principal.actor, principal.org_id, request.name, request.site_ids
        )


def list_couriers(
    ctx: Context,
    principal: Principal,
    *,
    active: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> CourierList:
    """The organization's courier codes (every organization's, for operators), newest first;
    never the codes."""
    principal.check_scope("parcels:write")
    filters: dict[str, Any] = {
        "c.org_id": None if principal.is_admin else principal.org_id,
        "c.active": active,
    }
    sql, params = newest_first(_SELECT, "c.id", filters, cursor, limit)
    with ctx.db.sql.transaction(write=False) as tx:
        items = _views(tx, tx.all(sql, params))
    more = len(items) > limit
    return CourierList(
        items=items[:limit], next_cursor=encode_cursor(items[limit - 1].id) if more else None
    )


def _access(tx: Tx, principal: Principal, courier_id: str, *, lock: bool = False) -> CourierOut:
    sql, params = _SELECT + " WHERE c.id = :id", {"id": courier_id}
    if not principal.is_admin:
        sql += " AND c.org_id = :org"
        params["org"] = principal.org_id
    row = tx.one(sql + (tx.lock("c") if lock else ""), params)
    if row is None:
        raise NotFound(f"No courier code {courier_id!r}.", code="courier_not_found")
    return _views(tx, [row])[0]


def deactivate_courier(ctx: Context, principal: Principal, courier_id: str) -> CourierOut:
    """Make a courier code unusable at every kiosk (once they have synced), audited; again on
    an inactive one answers it unchanged."""
    principal.check_scope("parcels:write")
    with ctx.db.sql.transaction() as tx:
        courier = _access(tx, principal, courier_id, lock=True)
        if not courier.active:
            return courier
        now = ctx.clock()
        tx.execute(
            "UPDATE courier_codes SET active = FALSE, deactivated_at = :now WHERE id = :id",
            {"now": now, "id": courier.id},
        )
        record(
            tx,
            "courier.deactivated",
            principal.actor,
            now,
            data={"courier_id": courier.id, "org_id": courier.org_id},
        )
        return courier.model_copy(update={"active": False, "deactivated_at": now})
