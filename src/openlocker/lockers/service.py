"""Sites and compartments: create them, count what is free, and claim one for a parcel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from openlocker.audit.service import record
from openlocker.core.context import Actor, Context
from openlocker.core.db import is_postgres
from openlocker.core.errors import Conflict, InvalidInput, NotFound
from openlocker.core.ids import new_id
from openlocker.lockers import allocation
from openlocker.lockers.models import Compartment, KioskAttempts, Site, SizeClass
from openlocker.lockers.schemas import CompartmentOut, FreeCount, SiteIn, SiteList, SiteOut


def load_sizes(ctx: Context, session: Session) -> dict[str, allocation.SizeClass]:
    """The network's size classes (cached for ``ctx.cache.ttl``: they change rarely)."""

    def load() -> dict[str, allocation.SizeClass]:
        rows = session.scalars(select(SizeClass)).all()
        return {
            r.code: allocation.SizeClass(r.code, r.width_mm, r.height_mm, r.depth_mm) for r in rows
        }

    sizes: dict[str, allocation.SizeClass] = ctx.cache.get_or_load("size-classes", load)
    return sizes


def do_create_site(session: Session, ctx: Context, actor: Actor, spec: SiteIn) -> Site:
    """Create a site with its compartments; each compartment's size must exist."""
    sizes = load_sizes(ctx, session)
    labels = [c.label for c in spec.compartments]
    if len(set(labels)) != len(labels):
        raise InvalidInput(
            "Compartment labels must be unique within a site.", code="duplicate_label"
        )
    for c in spec.compartments:
        if c.size not in sizes:
            raise InvalidInput(f"Unknown size class {c.size!r}.", code="unknown_size")
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
        key_version=1,
        public_key=ctx.keyring.site_public_key(site_id, 1),
        created_at=now,
    )
    session.add(site)
    session.flush()
    session.add(KioskAttempts(site_id=site_id, consecutive_failures=0))
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
        )
        for c in spec.compartments
    )
    record(
        session,
        "site.created",
        actor,
        now,
        site_id=site_id,
        data={"name": spec.name, "compartments": len(spec.compartments)},
    )
    return site


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
        public_key=site.public_key,
        key_version=site.key_version,
        compartments_total=total,
        free=free,
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


def _free_of_size(site: Site, need: allocation.ParcelNeed, size_code: str) -> Select[Compartment]:
    """Free compartments of one size that suit ``need``, in ``allocation.rank_candidates`` order."""
    query = select(Compartment).where(
        Compartment.site_id == site.id,
        Compartment.state == "free",
        Compartment.size_code == size_code,
        Compartment.temperature == need.temperature,
    )
    if need.accessible:
        query = query.where(Compartment.floor_height_mm <= allocation.ACCESSIBLE_MAX_FLOOR_MM)
    return query.order_by(Compartment.use_count, Compartment.label).limit(1)


def _best_free(
    session: Session,
    sizes: dict[str, allocation.SizeClass],
    site: Site,
    need: allocation.ParcelNeed,
    *,
    lock: bool,
) -> Compartment | None:
    """The best free compartment for ``need``, asked one fitting size at a time."""
    for size in allocation.fitting_sizes(need, sizes.values()):
        query = _free_of_size(site, need, size.code)
        if lock and is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        compartment = session.scalars(query).first()
        if compartment is not None:
            return compartment
    return None


def check_room(
    session: Session,
    sizes: dict[str, allocation.SizeClass],
    site: Site,
    need: allocation.ParcelNeed,
) -> None:
    """Raise ``site_full`` unless some free compartment of ``site`` can take ``need``."""
    if _best_free(session, sizes, site, need, lock=False) is None:
        raise site_full(session, sizes, site, need)


def do_claim_compartment(
    session: Session,
    sizes: dict[str, allocation.SizeClass],
    site: Site,
    need: allocation.ParcelNeed,
) -> Compartment:
    """Lock the best free compartment of ``site`` for ``need``, or raise ``site_full``.

    Best is ``allocation.rank_candidates``'s order: the smallest size that fits, then the
    least used door, then the label. It is asked of the database one size at a time, so a
    claim costs one query however large the site. The caller changes the compartment's
    state in the same transaction. Racing claims never get the same compartment: SKIP
    LOCKED on PostgreSQL (a locked row is passed over for the next best), BEGIN IMMEDIATE
    on SQLite, and a unique index on live parcels' compartments underneath.
    """
    compartment = _best_free(session, sizes, site, need, lock=True)
    if compartment is None:
        raise site_full(session, sizes, site, need)
    return compartment


def site_full(
    session: Session,
    sizes: dict[str, allocation.SizeClass],
    site: Site,
    need: allocation.ParcelNeed,
) -> Conflict:
    """The ``site_full`` error, naming the nearest sites that have room for this parcel."""
    groups = session.execute(
        select(
            Compartment.site_id,
            Compartment.size_code,
            Compartment.temperature,
            func.min(Compartment.floor_height_mm),
        )
        .where(Compartment.state == "free", Compartment.site_id != site.id)
        .group_by(Compartment.site_id, Compartment.size_code, Compartment.temperature)
    ).all()
    with_room = set()
    for site_id, size_code, temperature, lowest_floor in groups:
        probe = allocation.Candidate("", "", sizes[size_code], temperature, lowest_floor, 0)
        if allocation.rank_candidates(need, [probe], sizes=sizes):
            with_room.add(site_id)
    others = session.execute(
        select(Site.id, Site.name, Site.lat, Site.lon).where(Site.id != site.id)
    ).all()
    nearest = allocation.nearest_with_room(
        site.lat,
        site.lon,
        [allocation.SiteRoom(o.id, o.name, o.lat, o.lon, o.id in with_room) for o in others],
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
