"""Sites and compartments: create them, count what is free, and claim one for a parcel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.errors import Conflict, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.core.sql import Tx
from openlocker.lockers import allocation
from openlocker.lockers.models import Compartment, Site
from openlocker.lockers.schemas import (
    LOCKS_PER_BOARD,
    CompartmentIn,
    CompartmentList,
    CompartmentOut,
    FreeCount,
    SiteIn,
    SiteList,
    SiteOut,
    ZoneIn,
    ZoneList,
    ZoneOut,
)
from openlocker.orgs.service import Principal


def load_sizes(ctx: Context, tx: Tx) -> dict[str, allocation.SizeClass]:
    """The network's size classes (cached for ``ctx.cache.ttl``: they change rarely)."""

    def load() -> dict[str, allocation.SizeClass]:
        rows = tx.all("SELECT code, width_mm, height_mm, depth_mm FROM size_classes")
        return {row[0]: allocation.SizeClass(*row) for row in rows}

    sizes: dict[str, allocation.SizeClass] = ctx.cache.get_or_load("size-classes", load)
    return sizes


def do_create_site(session: Session, ctx: Context, actor: Actor, spec: SiteIn) -> Site:
    """Create a site with its compartments; each compartment's size must exist."""
    sizes = load_sizes(ctx, Tx.of(session))
    labels = [c.label for c in spec.compartments]
    if len(set(labels)) != len(labels):
        raise InvalidInput(
            "Compartment labels must be unique within a site.", code="duplicate_label"
        )
    for c in spec.compartments:
        if c.size not in sizes:
            raise InvalidInput(f"Unknown size class {c.size!r}.", code="unknown_size")
    locks = lock_map(spec.compartments)
    now = ctx.clock()
    site_id = new_id("sit")
    site = Site(
        id=site_id,
        name=spec.name,
        address=spec.address,
        lat=spec.lat,
        lon=spec.lon,
        opening_hours=spec.opening_hours,
        dwell_hours=spec.dwell_hours,
        extension_hours=spec.extension_hours,
        key_version=1,
        public_key=ctx.keyring.site_public_key(site_id, 1),
        created_at=now,
        language=spec.language,
        timezone=spec.timezone,
        reminder_hours=spec.reminder_hours,
        expiry_notice=spec.expiry_notice,
    )
    session.add(site)
    session.flush()
    session.add_all(
        Compartment(
            id=new_id("cmp"),
            site_id=site_id,
            label=c.label,
            size_code=c.size,
            temperature=c.temperature,
            floor_height_mm=c.floor_height_mm,
            state="free",
            door="closed",
            use_count=0,
            board=board,
            lock=lock,
        )
        for c, (board, lock) in zip(spec.compartments, locks, strict=True)
    )
    record(
        Tx.of(session),
        "site.created",
        actor,
        now,
        site_id=site_id,
        data={"name": spec.name, "compartments": len(spec.compartments)},
    )
    return site


def lock_map(compartments: Sequence[CompartmentIn]) -> list[tuple[int, int]]:
    """The (board, lock) of each compartment: its own, else the default for its place n in
    the list (board n // 16, lock n % 16). ``duplicate_lock`` when two share one."""
    locks = [
        (c.board, c.lock)
        if c.board is not None and c.lock is not None
        else (n // LOCKS_PER_BOARD, n % LOCKS_PER_BOARD)
        for n, c in enumerate(compartments)
    ]
    if len(set(locks)) != len(locks):
        raise InvalidInput(
            "Two compartments of a site cannot share a board's lock.", code="duplicate_lock"
        )
    return locks


def access_site(session: Session, site_id: str) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"No site {site_id!r}.", code="site_not_found")
    return site


def _free_counts(session: Session, site_ids: list[str]) -> dict[str, list[FreeCount]]:
    """Free compartments by site, size and temperature."""
    query = (
        select(Compartment.site_id, Compartment.size_code, Compartment.temperature, func.count())
        .where(Compartment.state == "free", Compartment.site_id.in_(site_ids))
        .group_by(Compartment.site_id, Compartment.size_code, Compartment.temperature)
    )
    result: dict[str, list[FreeCount]] = defaultdict(list)
    for site_id, size, temperature, count in session.execute(query):
        result[site_id].append(FreeCount(size=size, temperature=temperature, free=count))
    for counts in result.values():
        counts.sort(key=lambda c: (c.temperature, c.size))
    return result


def site_views(
    session: Session, sites: Sequence[Site], *, with_compartments: bool = False
) -> list[SiteOut]:
    """The sites as clients see them; counts for all of them come from two grouped queries."""
    ids = [site.id for site in sites]
    free = _free_counts(session, ids)
    totals: dict[str, int] = {
        site_id: count
        for site_id, count in session.execute(
            select(Compartment.site_id, func.count())
            .where(Compartment.site_id.in_(ids))
            .group_by(Compartment.site_id)
        )
    }
    return [
        _site_view(session, s, free.get(s.id, []), totals.get(s.id, 0), with_compartments)
        for s in sites
    ]


def _site_view(
    session: Session, site: Site, free: list[FreeCount], total: int, with_compartments: bool
) -> SiteOut:
    compartments = (
        session.scalars(
            select(Compartment).where(Compartment.site_id == site.id).order_by(Compartment.label)
        ).all()
        if with_compartments
        else None
    )
    return SiteOut(
        id=site.id,
        name=site.name,
        address=site.address,
        lat=site.lat,
        lon=site.lon,
        opening_hours=site.opening_hours,
        dwell_hours=site.dwell_hours,
        extension_hours=site.extension_hours,
        public_key=site.public_key,
        key_version=site.key_version,
        compartments_total=total,
        free=free,
        language=site.language,
        timezone=site.timezone,
        reminder_hours=site.reminder_hours,
        expiry_notice=site.expiry_notice,
        compartments=None
        if compartments is None
        else [
            CompartmentOut(
                id=c.id,
                label=c.label,
                size=c.size_code,
                temperature=c.temperature,
                floor_height_mm=c.floor_height_mm,
                state=c.state,
                door=c.door,
                board=c.board,
                lock=c.lock,
            )
            for c in compartments
        ],
    )


def check_fits_network(sizes: dict[str, allocation.SizeClass], need: allocation.ParcelNeed) -> None:
    """Refuse at announce a parcel that fits no size class of the network."""
    if allocation.is_too_large(need, sizes.values()):
        raise InvalidInput(
            "The parcel is larger than every compartment of the network.", code="too_large"
        )


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What the lifecycle needs of a site; cached like size classes (they change rarely)."""

    id: str
    name: str
    address: str
    lat: float
    lon: float
    dwell_hours: int
    key_version: int
    public_key: str
    extension_hours: int
    language: str | None
    #: None: the network's default (``Settings.default_timezone``).
    timezone: str | None


def access_site_info(ctx: Context, tx: Tx, site_id: str) -> SiteInfo:
    """The site, from the cache or one query; ``site_not_found`` when there is none."""

    def load() -> SiteInfo | None:
        row = tx.one(
            "SELECT id, name, address, lat, lon, dwell_hours, key_version, public_key,"
            " extension_hours, language, timezone FROM sites WHERE id = :id",
            {"id": site_id},
        )
        return None if row is None else SiteInfo(*row)

    site: SiteInfo | None = ctx.cache.get_or_load(("site", site_id), load)
    if site is None:
        ctx.cache.discard(("site", site_id))
        raise NotFound(f"No site {site_id!r}.", code="site_not_found")
    return site


#: A zone's (dwell hours, fault hours) when its site sets none; dwell None is the site's.
DEFAULT_ZONES: dict[str, tuple[int | None, int]] = {
    "ambient": (None, 24),
    "chilled": (24, 2),
    "frozen": (12, 1),
}


@dataclass(frozen=True, slots=True)
class Zone:
    """A site's rules for one temperature zone (``ZonePolicy`` or ``DEFAULT_ZONES``)."""

    temperature: str
    dwell_hours: int
    fault_hours: int


def access_zone(ctx: Context, tx: Tx, site: SiteInfo, temperature: str) -> Zone:
    """The site's rules for ``temperature``; dwell is never longer than the site's own.

    Cached like the site (policies change rarely): a change is seen everywhere within the
    cache's ttl.
    """

    def load() -> dict[str, tuple[int, int]]:
        rows = tx.all(
            "SELECT temperature, dwell_hours, fault_hours FROM zone_policies WHERE site_id = :id",
            {"id": site.id},
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    policies: dict[str, tuple[int, int]] = ctx.cache.get_or_load(("zones", site.id), load)
    default_dwell, default_fault = DEFAULT_ZONES[temperature]
    dwell, fault = policies.get(temperature, (default_dwell or site.dwell_hours, default_fault))
    return Zone(temperature, min(dwell, site.dwell_hours), fault)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A compartment a parcel just got."""

    id: str
    label: str
    size_code: str


def suitable_free(
    sizes: dict[str, allocation.SizeClass], site_id: str, need: allocation.ParcelNeed
) -> tuple[str, str, dict[str, Any]]:
    """SQL for the site's free compartments that suit ``need``: (WHERE, ORDER BY, params).

    The order is ``allocation.rank_candidates``'s: the smallest size that fits, then the
    least used door, then the label.
    """
    fitting = [size.code for size in allocation.fitting_sizes(need, sizes.values())]
    params: dict[str, Any] = {f"size_{i}": code for i, code in enumerate(fitting)}
    params.update(free_site=site_id, free_temperature=need.temperature)
    listed = ", ".join(f":size_{i}" for i in range(len(fitting))) or "NULL"
    where = (
        "site_id = :free_site AND state = 'free' AND temperature = :free_temperature"
        f" AND size_code IN ({listed})"
    )
    if need.accessible:
        where += " AND floor_height_mm <= :max_floor"
        params["max_floor"] = allocation.ACCESSIBLE_MAX_FLOOR_MM
    rank = " ".join(f"WHEN :size_{i} THEN {i}" for i in range(len(fitting)))
    order = f"CASE size_code {rank} END, use_count, label" if fitting else "label"
    return where, order, params


def do_claim_compartment(
    ctx: Context,
    tx: Tx,
    site: SiteInfo,
    need: allocation.ParcelNeed,
    *,
    state: str,
) -> Claimed:
    """Claim the best free compartment for ``need`` into ``state``, or raise ``site_full``.

    Best is ``allocation.rank_candidates``'s order, asked of the database in the same
    statement that changes the compartment, so a claim costs one statement however large
    the site. An occupied door counts one more use. Racing claims never get the same
    compartment: SKIP LOCKED on PostgreSQL (a locked row is passed over for the next best),
    BEGIN IMMEDIATE on SQLite, and a unique index on live parcels' compartments underneath.
    """
    sizes = load_sizes(ctx, tx)
    where, order, params = suitable_free(sizes, site.id, need)
    row = tx.one(
        "UPDATE compartments SET state = :new_state, use_count = use_count + :uses"
        f" WHERE id = (SELECT id FROM compartments WHERE {where} ORDER BY {order} LIMIT 1"
        f"{tx.lock(skip_locked=True)}) RETURNING id, label, size_code",
        {**params, "new_state": state, "uses": 1 if state == "occupied" else 0},
    )
    if row is None:
        raise site_full(tx, sizes, site, need)
    return Claimed(*row)


def site_full(
    tx: Tx,
    sizes: dict[str, allocation.SizeClass],
    site: SiteInfo,
    need: allocation.ParcelNeed,
) -> Conflict:
    """The ``site_full`` error, naming the nearest sites that have room for this parcel."""
    groups = tx.all(
        "SELECT site_id, size_code, temperature, MIN(floor_height_mm) FROM compartments"
        " WHERE state = 'free' AND site_id <> :site_id GROUP BY site_id, size_code, temperature",
        {"site_id": site.id},
    )
    with_room = set()
    for site_id, size_code, temperature, lowest_floor in groups:
        probe = allocation.Candidate("", "", sizes[size_code], temperature, lowest_floor, 0)
        if allocation.rank_candidates(need, [probe], sizes=sizes):
            with_room.add(site_id)
    others = tx.all(
        "SELECT id, name, lat, lon FROM sites WHERE id <> :site_id", {"site_id": site.id}
    )
    nearest = allocation.nearest_with_room(
        site.lat,
        site.lon,
        [allocation.SiteRoom(i, name, lat, lon, i in with_room) for i, name, lat, lon in others],
    )
    return Conflict(
        f"Site {site.name!r} has no free compartment for this parcel.",
        code="site_full",
        extra={
            "alternatives": [
                {"site_id": room.site_id, "name": room.name, "distance_m": metres}
                for room, metres in nearest
            ]
        },
    )


def list_sites(ctx: Context) -> SiteList:
    with ctx.db.read() as session:
        sites = session.scalars(select(Site).order_by(Site.name)).all()
        return SiteList(items=site_views(session, sites))


def get_site(ctx: Context, site_id: str, *, with_compartments: bool = False) -> SiteOut:
    with ctx.db.read() as session:
        site = access_site(session, site_id)
        return site_views(session, [site], with_compartments=with_compartments)[0]


def create_site(ctx: Context, actor: Actor, spec: SiteIn) -> SiteOut:
    with ctx.db.transaction() as session:
        site = do_create_site(session, ctx, actor, spec)
        session.flush()
        return site_views(session, [site])[0]


def list_compartments(ctx: Context, principal: Principal, site_id: str) -> CompartmentList:
    """The site's compartments with the board and lock of each door, by label: for
    operators and for the site's own kiosk (``not_site_kiosk`` for anyone else)."""
    if not principal.is_admin:
        principal.check_kiosk(site_id)
    with ctx.db.sql.transaction(write=False) as tx:
        site = access_site_info(ctx, tx, site_id)
        rows = tx.all(
            "SELECT id, label, size_code, temperature, floor_height_mm, state, door, board, lock"
            " FROM compartments WHERE site_id = :id ORDER BY label",
            {"id": site.id},
        )
    fields = ("id", "label", "size", "temperature", "floor_height_mm", "state", "door")
    return CompartmentList(
        items=[
            CompartmentOut(**dict(zip(fields, row[:7], strict=True)), board=row[7], lock=row[8])
            for row in rows
        ]
    )


def list_zones(ctx: Context, site_id: str) -> ZoneList:
    """The rules of every temperature zone the site has, its own or the defaults."""
    with ctx.db.sql.transaction(write=False) as tx:
        site = access_site_info(ctx, tx, site_id)
        temperatures = [
            row[0]
            for row in tx.all(
                "SELECT DISTINCT temperature FROM compartments WHERE site_id = :id ORDER BY 1",
                {"id": site.id},
            )
        ]
        zones = [access_zone(ctx, tx, site, t) for t in temperatures]
    return ZoneList(items=[ZoneOut.model_validate(zone, from_attributes=True) for zone in zones])


def set_zone(ctx: Context, actor: Actor, site_id: str, temperature: str, spec: ZoneIn) -> ZoneOut:
    """Set a zone's dwell and fault hours at a site (audited); every process sees it within
    the cache's ttl, this one at once. Later deposits get the new dwell time."""
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        tx.execute(
            "INSERT INTO zone_policies (site_id, temperature, dwell_hours, fault_hours)"
            " VALUES (:site_id, :temperature, :dwell, :fault) ON CONFLICT (site_id, temperature)"
            " DO UPDATE SET dwell_hours = :dwell, fault_hours = :fault",
            {
                "site_id": site.id,
                "temperature": temperature,
                "dwell": spec.dwell_hours,
                "fault": spec.fault_hours,
            },
        )
        record(
            tx,
            "site.zone_policy_set",
            actor,
            ctx.clock(),
            site_id=site.id,
            data={"temperature": temperature, **spec.model_dump()},
        )
    ctx.cache.discard(("zones", site.id))
    with ctx.db.sql.transaction(write=False) as tx:
        zone = access_zone(ctx, tx, site, temperature)
    return ZoneOut.model_validate(zone, from_attributes=True)
