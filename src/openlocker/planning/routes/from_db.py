"""A carrier's announced parcels of one day, read from the server's database as a scenario.

Each parcel was announced for a locker site, so its recipient chose that locker; the
doorstep plan delivers it to the recipient's address instead (``recipient.lat``/``lon``).
Parcels without an address position cannot be routed to the door and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from openlocker.core.config import get_settings
from openlocker.core.db import Database
from openlocker.lockers.models import Compartment, Site, SizeClass
from openlocker.parcels.models import Parcel
from openlocker.planning.routes.scenario import (
    Delivery,
    Depot,
    LockerSite,
    Point,
    Scenario,
    ScenarioError,
    VehicleType,
    default_vans,
    parse_scenario,
    read_json_object,
)

#: A compartment in one of these states can take a parcel of the day.
FREE_STATES = ("free",)


@dataclass(frozen=True)
class DbDay:
    scenario: Scenario
    left_out: int
    """Parcels of the day without an address position."""


def scenario_from_db(carrier_id: str, day: date, fleet: Path | None) -> DbDay:
    """The carrier's parcels announced on ``day`` (UTC), not cancelled, with the sites they
    were announced for; depot and vehicles from ``fleet`` (JSON with ``depot`` and
    ``vehicles``), else a depot at the sites' centroid and enough default vans."""
    database = Database(get_settings().database_url)
    try:
        with database.read() as session:
            return _read_day(session, carrier_id, day, fleet)
    except DBAPIError as exc:
        raise ScenarioError(f"cannot read the day from the database: {exc.orig}") from exc
    finally:
        database.dispose()


def _read_day(session: Session, carrier_id: str, day: date, fleet: Path | None) -> DbDay:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    parcels = session.scalars(
        select(Parcel)
        .where(
            Parcel.carrier_org_id == carrier_id,
            Parcel.announced_at >= start,
            Parcel.announced_at < start + timedelta(days=1),
            Parcel.status != "cancelled",
        )
        .order_by(Parcel.announced_at, Parcel.id)
    ).all()
    if not parcels:
        raise ScenarioError(f"carrier {carrier_id} announced no parcels on {day.isoformat()}")
    classes = sorted(
        session.scalars(select(SizeClass)).all(),
        key=lambda c: (c.width_mm * c.height_mm * c.depth_mm, c.code),
    )
    if not classes:
        raise ScenarioError("the database has no size classes")
    sizes = {c.code: max(round(c.width_mm * c.height_mm * c.depth_mm / 1e6), 1) for c in classes}

    deliveries = []
    for parcel in parcels:
        recipient = parcel.recipient or {}
        lat, lon = recipient.get("lat"), recipient.get("lon")
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            continue
        deliveries.append(
            Delivery(
                id=parcel.tracking_number,
                point=Point(float(lat), float(lon)),
                size=_size_of(parcel, classes),
                accepts_locker=True,
                locker=parcel.site_id,
            )
        )
    if not deliveries:
        raise ScenarioError(
            f"none of the {len(parcels)} parcels has recipient lat/lon to deliver to the door"
        )

    site_ids = sorted({p.site_id for p in parcels})
    own_ids = {p.id for p in parcels}
    lockers = []
    for site in session.scalars(select(Site).where(Site.id.in_(site_ids)).order_by(Site.id)):
        held = select(Parcel.compartment_id).where(
            Parcel.id.in_(own_ids), Parcel.compartment_id.is_not(None)
        )
        # The day's own parcels may already hold their compartments; those count as room.
        compartments = session.scalars(
            select(Compartment).where(
                Compartment.site_id == site.id,
                Compartment.state.in_(FREE_STATES) | Compartment.id.in_(held),
            )
        ).all()
        free = {code: 0 for code in sizes}
        for compartment in compartments:
            free[compartment.size_code] = free.get(compartment.size_code, 0) + 1
        lockers.append(LockerSite(id=site.id, point=Point(site.lat, site.lon), free=free))

    depot, vehicles = _fleet(fleet, lockers, len(deliveries))
    scenario = Scenario(
        depot=depot,
        vehicles=vehicles,
        deliveries=tuple(deliveries),
        lockers=tuple(lockers),
        sizes=sizes,
    )
    return DbDay(scenario=scenario, left_out=len(parcels) - len(deliveries))


def _size_of(parcel: Parcel, classes: list[SizeClass]) -> str:
    """The parcel's size code, else the smallest class its dimensions fit, else the largest."""
    if parcel.size_code is not None and any(c.code == parcel.size_code for c in classes):
        return parcel.size_code
    dims = (parcel.length_mm, parcel.width_mm, parcel.height_mm)
    if all(d is not None for d in dims):
        want = sorted(d for d in dims if d is not None)
        for c in classes:
            if all(
                w <= h
                for w, h in zip(want, sorted((c.width_mm, c.height_mm, c.depth_mm)), strict=True)
            ):
                return c.code
    return classes[-1].code


def _fleet(
    fleet: Path | None, lockers: list[LockerSite], parcels: int
) -> tuple[Depot, tuple[VehicleType, ...]]:
    if fleet is None:
        lat = sum(s.point.lat for s in lockers) / len(lockers)
        lon = sum(s.point.lon for s in lockers) / len(lockers)
        return Depot(Point(lat, lon)), (default_vans(parcels),)
    document = read_json_object(fleet, "fleet")
    parsed = parse_scenario({**document, "deliveries": []})
    return parsed.depot, parsed.vehicles
