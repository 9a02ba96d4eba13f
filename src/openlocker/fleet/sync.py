"""What a site's kiosk pulls: a full snapshot once, then the changes since its cursor.

The cursor follows the site's sealed audit trail. Every change a kiosk cares about writes
an audit event of its site in its transaction (courier codes: one of no site, which every
kiosk reads), and the sealer gives committed events their ``chain_index`` in batches, each
batch in one transaction after the one before: once index ``n`` is visible, so is every
index below it. A sync reads the chain head first and only events up to it, so a change
that commits late gets a later index and is never skipped.

A change is sent as the current state of what it touched (a credential set, a courier code,
an expected parcel), never as a delta: sending one again, or an older cursor, is harmless.

Cursors (opaque to the kiosk): ``s.<head>.<phase>.<after>`` while paging the snapshot taken
at chain index ``head`` (``phase`` ``c`` credentials, ``k`` couriers, ``e`` expected, each
by id after ``after``); ``i.<index>`` once incremental, the last chain index delivered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag

from openlocker.audit.models import COURIER_EVENTS, PENDING_COMMANDS
from openlocker.core.context import Context
from openlocker.core.errors import Conflict, InvalidInput, NotFound
from openlocker.core.keys import b64url
from openlocker.core.sql import Row, Tx
from openlocker.fleet.schemas import (
    CompartmentRef,
    PublicKey,
    SyncCommand,
    SyncCourier,
    SyncCredential,
    SyncExpected,
    SyncOut,
    SyncSite,
    SyncSize,
)
from openlocker.fleet.service import courier_kiosk_digest
from openlocker.lockers.schemas import CompartmentOut
from openlocker.lockers.service import load_sizes
from openlocker.orgs.service import Principal

#: Snapshot phases in order, by cursor letter.
PHASES = ("c", "k", "e")
#: Pending commands sent at most per answer (the oldest first).
MAX_COMMANDS = 200
#: Ids per ``IN (...)`` list (SQLite's limit on parameters is far above).
_CHUNK = 500
_CURSOR = re.compile(r"i\.(\d{1,18})|s\.(\d{1,18})\.([cke])\.([A-Za-z0-9_]{0,40})")


@dataclass
class Cursor:
    """Where a kiosk is: in the snapshot at ``head`` (``phase``, after id ``after``) or, with
    ``phase`` None, past chain index ``head``."""

    head: int
    phase: str | None = None
    after: str = ""

    def encode(self) -> str:
        if self.phase is None:
            return f"i.{self.head}"
        return f"s.{self.head}.{self.phase}.{self.after}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        match = _CURSOR.fullmatch(text)
        if match is None:
            raise InvalidInput("The cursor is not valid.", code="invalid_cursor")
        if match.group(1) is not None:
            return cls(int(match.group(1)))
        return cls(int(match.group(2)), match.group(3), match.group(4))


@dataclass
class _Page:
    credentials: list[SyncCredential] = field(default_factory=list)
    couriers: list[SyncCourier] = field(default_factory=list)
    expected: list[SyncExpected] = field(default_factory=list)


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), _CHUNK):
        yield ordered[start : start + _CHUNK]


def _in(ids: Sequence[str], prefix: str) -> tuple[str, dict[str, str]]:
    names = {f"{prefix}{i}": value for i, value in enumerate(ids)}
    return ", ".join(":" + name for name in names), names


# --- what each kind of thing looks like to the kiosk ---------------------------------------

_CREDENTIALS = (
    "SELECT c.id, c.parcel_id, c.order_id, c.kiosk_pin, c.kiosk_qr, c.kiosk_phone,"
    " c.expires_at, c.active, c.used_at, o.age_restricted FROM credential_sets c"
    " LEFT JOIN orders o ON o.id = c.order_id"
)
_COURIERS = (
    "SELECT c.id, c.org_id, c.name, c.code_sealed, c.active AND (c.all_sites OR EXISTS"
    " (SELECT 1 FROM courier_code_sites s WHERE s.courier_id = c.id AND s.site_id = :site))"
    " FROM courier_codes c"
)
_EXPECTED = (
    "SELECT p.id, p.tracking_number, p.carrier_org_id, p.size_code, p.temperature,"
    " p.compartment_id, p.order_id, p.status, p.length_mm, p.width_mm, p.height_mm,"
    " p.accessible FROM parcels p"
)


def _credentials(tx: Tx, site_id: str, rows: list[Row]) -> list[SyncCredential]:
    """The sets of ``rows`` with the doors each opens now."""
    parcel_ids = [row[1] for row in rows if row[2] is None]
    order_ids = [row[2] for row in rows if row[2] is not None]
    doors: dict[str, list[CompartmentRef]] = {}
    for ids, column in ((parcel_ids, "p.id"), (order_ids, "p.order_id")):
        for chunk in _chunks(ids):
            listed, params = _in(chunk, "x")
            for parcel_id, order_id, compartment_id, label in tx.all(
                "SELECT p.id, p.order_id, m.id, m.label FROM parcels p"
                " JOIN compartments m ON m.id = p.compartment_id"
                f" WHERE {column} IN ({listed}) AND p.status = 'deposited'"
                " AND p.site_id = :site ORDER BY m.label",
                {**params, "site": site_id},
            ):
                owner = order_id if column == "p.order_id" else parcel_id
                doors.setdefault(owner, []).append(CompartmentRef(id=compartment_id, label=label))
    return [
        SyncCredential(
            id=row[0],
            parcel_id=row[1],
            order_id=row[2],
            pin=row[3],
            qr=row[4],
            phone=row[5],
            expires_at=tx.time(row[6]),
            active=bool(row[7]),
            used=row[8] is not None,
            compartments=doors.get(row[2] or row[1], []),
            age_restricted=bool(row[9]),
        )
        for row in rows
    ]


def _couriers(ctx: Context, site_id: str, rows: list[Row]) -> list[SyncCourier]:
    couriers = []
    for courier_id, org_id, name, sealed, active_here in rows:
        code = None
        if active_here:
            try:
                code = courier_kiosk_digest(ctx, courier_id, sealed, site_id)
            except InvalidTag:  # a sealed code moved to another row: it opens nothing
                active_here = False
        couriers.append(
            SyncCourier(
                id=courier_id, org_id=org_id, name=name, code=code, active=bool(active_here)
            )
        )
    return couriers


def _expected(rows: list[Row]) -> list[SyncExpected]:
    return [
        SyncExpected(
            parcel_id=row[0],
            tracking_number=row[1],
            org_id=row[2],
            size=row[3],
            dimensions_mm=(
                {"length": row[8], "width": row[9], "height": row[10]}
                if row[8] and row[9] and row[10]
                else None
            ),
            temperature=row[4],
            accessible=bool(row[11]),
            compartment_id=row[5],
            order_id=row[6],
            active=row[7] == "announced",
        )
        for row in rows
    ]


# --- the snapshot ----------------------------------------------------------------------------


def _snapshot_phase(
    ctx: Context, tx: Tx, site_id: str, phase: str, after: str, limit: int, page: _Page
) -> str | None:
    """Add up to ``limit`` rows of ``phase`` after id ``after`` to ``page``; the last id when
    the phase has more, else None."""
    params: dict[str, Any] = {"site": site_id, "after": after, "limit": limit + 1}
    if phase == "c":
        rows = tx.all(
            _CREDENTIALS + " WHERE c.site_id = :site AND c.active AND c.id > :after"
            " AND (c.kiosk_pin IS NOT NULL OR c.kiosk_qr IS NOT NULL)"
            " ORDER BY c.id LIMIT :limit",
            params,
        )
        page.credentials += _credentials(tx, site_id, rows[:limit])
    elif phase == "k":
        rows = tx.all(
            _COURIERS + " WHERE c.active AND c.id > :after AND (c.all_sites OR EXISTS"
            " (SELECT 1 FROM courier_code_sites s WHERE s.courier_id = c.id"
            " AND s.site_id = :site)) ORDER BY c.id LIMIT :limit",
            params,
        )
        page.couriers += _couriers(ctx, site_id, rows[:limit])
    else:
        rows = tx.all(
            _EXPECTED + " WHERE p.site_id = :site AND p.status = 'announced' AND p.id > :after"
            " ORDER BY p.id LIMIT :limit",
            params,
        )
        page.expected += _expected(rows[:limit])
    return str(rows[limit - 1][0]) if len(rows) > limit else None


# --- the changes -----------------------------------------------------------------------------


@dataclass
class _Touched:
    """What a run of audit events touched."""

    parcels: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    couriers: set[str] = field(default_factory=set)


def _changes(tx: Tx, site_id: str, after: int, head: int, limit: int) -> tuple[list[Row], bool]:
    """The site's sealed events (and the couriers') in ``(after, head]``, oldest first, at
    most ``limit``; and whether more are left."""
    params = {"site": site_id, "after": after, "head": head, "limit": limit + 1}
    columns = "SELECT chain_index, parcel_id, data FROM audit_events"
    window = "chain_index > :after AND chain_index <= :head"
    mine = tx.all(
        f"{columns} WHERE site_id = :site AND {window} ORDER BY chain_index LIMIT :limit", params
    )
    couriers = tx.all(
        f"{columns} WHERE {COURIER_EVENTS} AND {window} ORDER BY chain_index LIMIT :limit",
        params,
    )
    events = sorted({row[0]: row for row in mine + couriers}.values(), key=lambda row: row[0])
    # Past the first row a full list left out, the other list's rows may have gaps.
    bounds = [rows[limit][0] for rows in (mine, couriers) if len(rows) > limit]
    if bounds:
        events = [row for row in events if row[0] < min(bounds)]
    return events[:limit], bool(bounds) or len(events) > limit


def _touched(tx: Tx, events: list[Row]) -> _Touched:
    touched = _Touched()
    for _, parcel_id, data in events:
        if parcel_id is not None:
            touched.parcels.add(parcel_id)
        data = tx.json(data) or {}
        if isinstance(data.get("order_id"), str):
            touched.orders.add(data["order_id"])
        if isinstance(data.get("courier_id"), str):
            touched.couriers.add(data["courier_id"])
    return touched


def _load_touched(ctx: Context, tx: Tx, site_id: str, touched: _Touched, page: _Page) -> None:
    """The current state of everything ``touched``: the parcels (an order's items too) as
    expected rows, the credential sets of the parcels and orders (an item's order's too),
    courier codes."""
    orders = set(touched.orders)
    parcels: dict[str, Row] = {}
    for ids, column in ((touched.parcels, "p.id"), (touched.orders, "p.order_id")):
        for chunk in _chunks(ids):
            listed, params = _in(chunk, "p")
            for row in tx.all(
                f"{_EXPECTED} WHERE {column} IN ({listed}) AND p.site_id = :site",
                {**params, "site": site_id},
            ):
                parcels[row[0]] = row
    page.expected += _expected([parcels[key] for key in sorted(parcels)])
    orders.update(row[6] for row in parcels.values() if row[6] is not None)
    sets: dict[str, Row] = {}
    for ids, column in ((touched.parcels, "c.parcel_id"), (orders, "c.order_id")):
        for chunk in _chunks(ids):
            listed, params = _in(chunk, "x")
            for row in tx.all(
                f"{_CREDENTIALS} WHERE {column} IN ({listed}) AND c.site_id = :site",
                {**params, "site": site_id},
            ):
                sets[row[0]] = row
    page.credentials += _credentials(tx, site_id, [sets[key] for key in sorted(sets)])
    for chunk in _chunks(touched.couriers):
        listed, params = _in(chunk, "k")
        rows = tx.all(
            f"{_COURIERS} WHERE c.id IN ({listed}) ORDER BY c.id", {**params, "site": site_id}
        )
        page.couriers += _couriers(ctx, site_id, rows)


# --- always whole ----------------------------------------------------------------------------


def _site(tx: Tx, site_id: str) -> tuple[SyncSite, int]:
    row = tx.one(
        "SELECT id, name, address, language, timezone, opening_hours, key_version FROM sites"
        " WHERE id = :id",
        {"id": site_id},
    )
    if row is None:
        raise NotFound(f"No site {site_id!r}.", code="site_not_found")
    site = SyncSite(
        id=row[0],
        name=row[1],
        address=row[2],
        language=row[3],
        timezone=row[4],
        opening_hours=tx.json(row[5]),
    )
    return site, int(row[6])


def _compartments(tx: Tx, site_id: str) -> list[CompartmentOut]:
    fields = ("id", "label", "size", "temperature", "floor_height_mm", "state", "door")
    return [
        CompartmentOut(**dict(zip(fields, row[:7], strict=True)), board=row[7], lock=row[8])
        for row in tx.all(
            "SELECT id, label, size_code, temperature, floor_height_mm, state, door, board, lock"
            " FROM compartments WHERE site_id = :site ORDER BY label",
            {"site": site_id},
        )
    ]


def pending_commands(tx: Tx, site_id: str, *, limit: int = MAX_COMMANDS) -> list[SyncCommand]:
    """The site's door commands no kiosk has answered yet, oldest first (expired ones too:
    the kiosk answers those ``expired``, which closes them)."""
    commands = []
    for command_id, payload, created_at in tx.all(
        "SELECT id, payload, created_at FROM outbox"
        f" WHERE site_id = :site AND {PENDING_COMMANDS} ORDER BY seq LIMIT :limit",
        {"site": site_id, "limit": limit},
    ):
        body = tx.json(payload)
        created = tx.time(created_at)
        commands.append(
            SyncCommand(
                id=command_id,
                compartment_id=body["compartment_id"],
                label=body.get("label", ""),
                parcel_id=body.get("parcel_id"),
                reason=body.get("reason", "open"),
                expires_at=body.get("expires_at") or created,
                created_at=created,
            )
        )
    return commands


# --- the use case ----------------------------------------------------------------------------


def sync(
    ctx: Context, principal: Principal, site_id: str, cursor: str | None = None, limit: int = 1000
) -> SyncOut:
    """What the site's kiosk needs since ``cursor`` (None: everything), at most ``limit``
    rows of the snapshot or events of the trail; ``more`` when it should call again at once.

    The site, its digest key, public keys, size classes and pending commands come whole in
    every answer,
    the compartments in every answer that ends a run (``more`` false; None before).
    Raises ``not_site_kiosk``, ``site_not_found``, ``invalid_cursor``, ``cursor_ahead``.
    """
    principal.check_kiosk(site_id)
    position = Cursor.decode(cursor) if cursor is not None else None
    page = _Page()
    with ctx.db.sql.transaction(write=False) as tx:
        site, key_version = _site(tx, site_id)
        # Every event up to the head is committed and visible to the statements after this one.
        head = int(tx.scalar("SELECT count FROM audit_head WHERE id = 1") or 0)
        if position is None:
            position = Cursor(head, PHASES[0])
        elif position.head > head:
            raise Conflict(
                "The cursor is ahead of this server's audit trail (restored from a backup?):"
                " sync again from the start, with an empty store.",
                code="cursor_ahead",
            )
        budget = limit
        while position.phase is not None and budget > 0:
            before = _counted(page)
            last = _snapshot_phase(ctx, tx, site.id, position.phase, position.after, budget, page)
            budget -= _counted(page) - before
            if last is not None:
                position.after = last
                break
            following = PHASES.index(position.phase) + 1
            position.phase = PHASES[following] if following < len(PHASES) else None
            position.after = ""
        # The snapshot first, whole; then what changed since it was taken.
        more = position.phase is not None or budget == 0
        if not more:
            events, more = _changes(tx, site.id, position.head, head, budget)
            _load_touched(ctx, tx, site.id, _touched(tx, events), page)
            if not more:
                position.head = head
            elif events:
                position.head = events[-1][0]
        # Whole at the end of a run: pages in between would repeat them for nothing.
        compartments = None if more else _compartments(tx, site.id)
        commands = pending_commands(tx, site.id)
        sizes = [
            SyncSize.model_validate(size, from_attributes=True)
            for size in sorted(load_sizes(ctx, tx).values(), key=lambda size: size.code)
        ]
    return SyncOut(
        site=site,
        digest_key=b64url(ctx.keyring.kiosk_digest_key(site.id)),
        public_keys=[
            PublicKey(version=version, public_key=ctx.keyring.site_public_key(site.id, version))
            for version in range(1, key_version + 1)
        ],
        sizes=sizes,
        compartments=compartments,
        credentials=page.credentials,
        couriers=page.couriers,
        expected=page.expected,
        commands=commands,
        cursor=position.encode(),
        more=more,
    )


def _counted(page: _Page) -> int:
    return len(page.credentials) + len(page.couriers) + len(page.expected)
