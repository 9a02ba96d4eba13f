"""A scenario measured from a site's own history: arrivals, size mix, dwell times, compartments.

``measure_scenario`` is a pure function over plain records; ``scenario_from_db`` reads the
records of one site from the server's database and calls it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from openlocker.core.clock import as_utc
from openlocker.planning.capacity.scenario import Scenario, ScenarioError, parse_scenario


@dataclass(frozen=True)
class ParcelRecord:
    """What the measurement needs of one parcel: its size and when it came and went."""

    size_code: str | None
    deposited_at: datetime | None
    picked_up_at: datetime | None
    expired_at: datetime | None


@dataclass(frozen=True)
class SizeRecord:
    code: str
    width_mm: int
    height_mm: int
    depth_mm: int


def measure_scenario(
    parcels: Sequence[ParcelRecord],
    compartments: Mapping[str, int],
    sizes: Sequence[SizeRecord],
    *,
    name: str,
    deadline_hours: float,
    base: Mapping[str, Any] | None = None,
) -> Scenario:
    """The scenario ``base`` (a decoded scenario JSON, may be empty) with measured fields.

    Measured and replacing ``base``: ``compartments``, ``size_classes`` (front area = inner
    width x height), ``demand.parcels_per_day`` (deposits per calendar day over the span of
    the history), ``demand.size_mix``, ``demand.weekly_profile`` (once the history spans a
    week), ``demand.arrival_windows`` (one window per hour of day that saw deposits),
    ``dwell`` (an hourly histogram of deposit-to-pickup times; expired parcels count at
    their expiry time, which is at or past the deadline, so the simulation expires them
    too) and ``expiry.deadline_hours``. Everything else (peaks, target, horizon…) comes
    from ``base`` or the defaults. Raises ``ScenarioError`` when there is nothing to measure.
    """
    deposited = [p for p in parcels if p.deposited_at is not None]
    if not deposited:
        raise ScenarioError(f"{name}: no deposited parcels in the history to measure demand from")
    times = sorted(as_utc(p.deposited_at) for p in deposited if p.deposited_at is not None)
    span_days = (times[-1].date() - times[0].date()).days + 1

    document = dict(base or {})
    document["name"] = document.get("name", name)
    document["compartments"] = dict(compartments)
    document["size_classes"] = [
        {
            "code": size.code,
            "inner_mm": [size.width_mm, size.height_mm, size.depth_mm],
            "front_area_m2": size.width_mm * size.height_mm / 1e6,
        }
        for size in sorted(sizes, key=lambda s: (s.height_mm, s.width_mm, s.depth_mm, s.code))
    ]
    demand = dict(document.get("demand", {}))
    demand["parcels_per_day"] = len(deposited) / span_days
    sized = Counter(p.size_code for p in deposited if p.size_code is not None)
    if sized:
        demand["size_mix"] = {code: count / sized.total() for code, count in sized.items()}
    if span_days >= 7:
        demand["weekly_profile"] = _weekly_profile(times)
    hours = Counter(t.hour for t in times)
    demand["arrival_windows"] = [
        {"start_hour": hour, "end_hour": hour + 1, "share": count / len(times)}
        for hour, count in sorted(hours.items())
    ]
    document["demand"] = demand
    dwell = _dwell_histogram(deposited)
    if dwell is not None:
        document["dwell"] = dwell
    document["expiry"] = {**document.get("expiry", {}), "deadline_hours": deadline_hours}
    return parse_scenario(document)


def _weekly_profile(times: list[datetime]) -> list[float]:
    """Mean deposits per weekday (Monday first), over the weekdays the history spans."""
    first = times[0].date()
    days = [first + timedelta(days=d) for d in range((times[-1].date() - first).days + 1)]
    occurrences = Counter(day.weekday() for day in days)
    deposits = Counter(t.weekday() for t in times)
    return [deposits[w] / occurrences[w] for w in range(7)]


def _dwell_histogram(parcels: list[ParcelRecord]) -> dict[str, Any] | None:
    """Hourly bins of hours from deposit to pickup (or to expiry for expired parcels)."""
    hours = []
    for parcel in parcels:
        left = parcel.picked_up_at or parcel.expired_at
        if left is not None and parcel.deposited_at is not None:
            held = (as_utc(left) - as_utc(parcel.deposited_at)).total_seconds() / 3600.0
            hours.append(max(held, 0.0))
    if not hours:
        return None
    bins = Counter(int(h) for h in hours)
    top = max(bins) + 1
    return {
        "kind": "histogram",
        "edges_hours": list(range(top + 1)),
        "counts": [bins.get(b, 0) for b in range(top)],
    }


def scenario_from_db(
    database_url: str, site_id: str, base: Mapping[str, Any] | None = None
) -> Scenario:
    """Measure ``site_id``'s scenario from the server database at ``database_url``."""
    # The server's tables are needed only with --from-db; plain scenarios never import them.
    from openlocker.core.db import Database
    from openlocker.lockers.models import Compartment, Site, SizeClass
    from openlocker.parcels.models import Parcel

    database = Database(database_url)
    try:
        with database.read() as session:
            site = session.get(Site, site_id)
            if site is None:
                raise ScenarioError(f"no site {site_id!r} in the database")
            compartments = Counter(
                session.scalars(select(Compartment.size_code).where(Compartment.site_id == site_id))
            )
            rows = session.execute(
                select(
                    Parcel.size_code, Parcel.deposited_at, Parcel.picked_up_at, Parcel.expired_at
                ).where(Parcel.site_id == site_id, Parcel.deposited_at.is_not(None))
            ).all()
            parcels = [ParcelRecord(*row) for row in rows]
            codes = set(compartments) | {p.size_code for p in parcels if p.size_code is not None}
            sizes = [
                SizeRecord(s.code, s.width_mm, s.height_mm, s.depth_mm)
                for s in session.scalars(select(SizeClass).where(SizeClass.code.in_(codes)))
            ]
            name, deadline = site.name, float(site.dwell_hours)
    finally:
        database.dispose()
    return measure_scenario(
        parcels, compartments, sizes, name=name, deadline_hours=deadline, base=base
    )
