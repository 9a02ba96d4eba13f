"""Stops, route plans and what they cost: the arithmetic of the comparison, without a solver.

A plan is a list of stops (one per doorstep parcel, one per locker visit) and the routes a
solver chose over them. Failed doorstep attempts become next-day work, costed as the
cheapest insertion of each retry into the day's routes: tomorrow's routes pass the same
streets, so a retry costs its detour, not a trip of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from openlocker.planning.routes.assignment import AttemptDraws, take_compartment
from openlocker.planning.routes.geo import FloatMatrix, read_road_matrix_m, road_distance_m
from openlocker.planning.routes.scenario import (
    Delivery,
    LockerSite,
    Point,
    Scenario,
    ScenarioError,
)

DEPOT_ID = "depot"


@dataclass(frozen=True)
class Network:
    """Every place of a scenario (depot first, then deliveries, then lockers) and the road
    distances between them."""

    ids: tuple[str, ...]
    points: tuple[Point, ...]
    distance_m: FloatMatrix
    index: Mapping[str, int]


def build_network(scenario: Scenario) -> Network:
    """The scenario's places with distances from its road matrix file, else estimated."""
    ids = (DEPOT_ID, *(d.id for d in scenario.deliveries), *(s.id for s in scenario.lockers))
    points = (
        scenario.depot.point,
        *(d.point for d in scenario.deliveries),
        *(s.point for s in scenario.lockers),
    )
    if scenario.road_matrix is not None:
        distance = read_road_matrix_m(scenario.road_matrix, ids)
    else:
        distance = road_distance_m(points, scenario.circuity)
    return Network(
        ids=ids, points=points, distance_m=distance, index={k: i for i, k in enumerate(ids)}
    )


@dataclass(frozen=True)
class Stop:
    location: int
    """Index into the network."""
    kind: Literal["doorstep", "locker"]
    parcels: tuple[str, ...]
    load: int
    service_s: int
    window_s: tuple[int, int] | None = None


def doorstep_stop(delivery: Delivery, network: Network, scenario: Scenario) -> Stop:
    return Stop(
        location=network.index[delivery.id],
        kind="doorstep",
        parcels=(delivery.id,),
        load=scenario.sizes[delivery.size],
        service_s=scenario.service.doorstep_s,
        window_s=delivery.window_s,
    )


def locker_stops(
    site: LockerSite, parcels: Sequence[Delivery], network: Network, scenario: Scenario
) -> list[Stop]:
    """One stop for the parcels going into ``site``, split into several when they exceed
    the largest van; each stop pays the fixed locker time once."""
    capacity = max(v.capacity for v in scenario.vehicles)
    stops: list[Stop] = []
    batch: list[Delivery] = []
    load = 0
    for parcel in parcels:
        space = scenario.sizes[parcel.size]
        if batch and load + space > capacity:
            stops.append(_locker_stop(site, batch, load, network, scenario))
            batch, load = [], 0
        batch.append(parcel)
        load += space
    if batch:
        stops.append(_locker_stop(site, batch, load, network, scenario))
    return stops


def _locker_stop(
    site: LockerSite, batch: Sequence[Delivery], load: int, network: Network, scenario: Scenario
) -> Stop:
    return Stop(
        location=network.index[site.id],
        kind="locker",
        parcels=tuple(d.id for d in batch),
        load=load,
        service_s=scenario.service.locker_fixed_s
        + scenario.service.locker_per_parcel_s * len(batch),
    )


@dataclass(frozen=True)
class PlannedRoute:
    vehicle_type: int
    """Index into ``Scenario.vehicles``."""
    stops: tuple[int, ...]
    """Indices into ``DayPlan.stops``, in visiting order."""
    distance_m: float
    duration_s: float
    """From leaving the depot to returning: driving, service and any wait for a window."""


@dataclass(frozen=True)
class DayPlan:
    stops: tuple[Stop, ...]
    routes: tuple[PlannedRoute, ...]


@dataclass(frozen=True)
class NextDayWork:
    """The retries that failed doorstep attempts cause, as extra work on the next day."""

    retries: int
    """Parcels attempted again at the door."""
    to_locker: int
    """Parcels sent to a locker after a failed attempt (policy ``locker``)."""
    failed_retries: int
    """Retries that failed too; those parcels wait at the depot for collection."""
    stops: int
    km: float
    driver_hours: float
    co2_kg: float
    cost: float


def next_day_work(
    failed: Sequence[Delivery],
    plan: DayPlan,
    network: Network,
    scenario: Scenario,
    draws: AttemptDraws,
    free: dict[str, dict[str, int]],
) -> NextDayWork:
    """Cost the retries of ``failed`` parcels by cheapest insertion into ``plan``'s routes.

    With policy ``locker`` a failed parcel takes a compartment (from ``free``, which this
    updates) in a locker within the recipient's walk when there is one; a locker the plan
    already visits costs only the time per parcel. Otherwise the parcel is retried at the door.
    """
    door_retries: list[Delivery] = []
    to_locker: dict[str, int] = {}
    for parcel in failed:
        site = None
        if scenario.failed_parcels == "locker":
            site = take_compartment(
                parcel,
                scenario.lockers,
                free,
                scenario.sizes,
                scenario.max_walk_m,
                scenario.circuity,
            )
        if site is None:
            door_retries.append(parcel)
        else:
            to_locker[site] = to_locker.get(site, 0) + 1

    # Tomorrow's routes are today's minus the failed parcels: a retry cannot ride on its own visit.
    insertion = _Insertion(plan, network, scenario, skip={network.index[p.id] for p in failed})
    visited = {
        plan.stops[i].location: route.vehicle_type
        for route in plan.routes
        for i in route.stops
        if plan.stops[i].kind == "locker"
    }
    service = scenario.service
    for parcel in door_retries:
        insertion.add(network.index[parcel.id], service.doorstep_s)
    for site_id, count in to_locker.items():
        location = network.index[site_id]
        if location in visited:
            insertion.add_service(service.locker_per_parcel_s * count, visited[location])
        else:
            insertion.add(location, service.locker_fixed_s + service.locker_per_parcel_s * count)
    return NextDayWork(
        retries=len(door_retries),
        to_locker=sum(to_locker.values()),
        failed_retries=sum(draws.fails_retry(p.id, scenario.failure_rate) for p in door_retries),
        stops=insertion.stops,
        km=insertion.distance_m / 1000,
        driver_hours=insertion.duration_s / 3600,
        co2_kg=insertion.co2_kg,
        cost=insertion.cost,
    )


class _Insertion:
    """Accumulates the cost of inserting extra stops, each at its cheapest place in a plan."""

    def __init__(self, plan: DayPlan, network: Network, scenario: Scenario, skip: set[int]) -> None:
        self._distance = network.distance_m
        self._speed_mps = scenario.speed_kmh / 3.6
        self._vehicles = scenario.vehicles
        frm: list[int] = []
        to: list[int] = []
        route_type: list[int] = []
        for route in plan.routes:
            kept = (plan.stops[i].location for i in route.stops)
            path = [0, *(location for location in kept if location not in skip), 0]
            frm += path[:-1]
            to += path[1:]
            route_type += [route.vehicle_type] * (len(path) - 1)
        if not frm:  # no day routes: a retry is a trip from the depot and back
            frm, to, route_type = [0], [0], [0]
        self._frm = np.array(frm)
        self._to = np.array(to)
        self._type = route_type
        self.stops = 0
        self.distance_m = self.duration_s = self.co2_kg = self.cost = 0.0

    def add(self, location: int, service_s: int) -> None:
        d = self._distance
        detour = d[self._frm, location] + d[location, self._to] - d[self._frm, self._to]
        best = int(np.argmin(detour))
        vehicle = self._vehicles[self._type[best]]
        metres = max(float(detour[best]), 0.0)
        seconds = metres / self._speed_mps + service_s
        self.stops += 1
        self.distance_m += metres
        self.duration_s += seconds
        self.co2_kg += metres / 1000 * vehicle.co2_kg_per_km
        self.cost += metres / 1000 * vehicle.cost_per_km + seconds / 3600 * vehicle.cost_per_hour

    def add_service(self, service_s: int, vehicle_type: int) -> None:
        vehicle = self._vehicles[vehicle_type]
        self.duration_s += service_s
        self.cost += service_s / 3600 * vehicle.cost_per_hour


@dataclass(frozen=True)
class ScenarioKpis:
    """What one way of delivering the day costs, day plan and next-day retries together."""

    parcels: int
    doorstep_parcels: int
    locker_parcels: int
    vehicles: int
    stops: int
    km: float
    driver_hours: float
    co2_kg: float
    cost: float
    failed_attempts: int
    redeliveries: int
    """Parcels that needed a second delivery (at the door, or to a locker by policy)."""


def scenario_kpis(
    plan: DayPlan, scenario: Scenario, first_failures: int, retries: NextDayWork
) -> ScenarioKpis:
    """Add up a day plan and its next-day work."""
    km = hours = co2 = cost = 0.0
    for route in plan.routes:
        vehicle = scenario.vehicles[route.vehicle_type]
        route_km = route.distance_m / 1000
        route_hours = route.duration_s / 3600
        km += route_km
        hours += route_hours
        co2 += route_km * vehicle.co2_kg_per_km
        cost += (
            route_km * vehicle.cost_per_km
            + route_hours * vehicle.cost_per_hour
            + vehicle.fixed_cost
        )
    locker_parcels = sum(len(s.parcels) for s in plan.stops if s.kind == "locker")
    doorstep_parcels = sum(len(s.parcels) for s in plan.stops if s.kind == "doorstep")
    return ScenarioKpis(
        parcels=locker_parcels + doorstep_parcels,
        doorstep_parcels=doorstep_parcels,
        locker_parcels=locker_parcels,
        vehicles=sum(1 for r in plan.routes if r.stops),
        stops=len(plan.stops) + retries.stops,
        km=km + retries.km,
        driver_hours=hours + retries.driver_hours,
        co2_kg=co2 + retries.co2_kg,
        cost=cost + retries.cost,
        failed_attempts=first_failures + retries.failed_retries,
        redeliveries=retries.retries + retries.to_locker,
    )


COMPARED = (
    "vehicles",
    "stops",
    "km",
    "driver_hours",
    "co2_kg",
    "cost",
    "failed_attempts",
    "redeliveries",
)


def savings_pct(doorstep: ScenarioKpis, lockers: ScenarioKpis) -> dict[str, float | None]:
    """Per KPI, how much lower the locker plan is, in percent of doorstep (None when 0)."""
    result: dict[str, float | None] = {}
    for name in COMPARED:
        base = float(getattr(doorstep, name))
        result[name] = None if base == 0 else 100.0 * (base - float(getattr(lockers, name))) / base
    return result


def check_fleet(stops: Sequence[Stop], scenario: Scenario) -> None:
    """Refuse a plan no fleet could carry, before spending solver time on it."""
    biggest = max(v.capacity for v in scenario.vehicles)
    for stop in stops:
        if stop.load > biggest:
            raise ScenarioError(
                f"parcel {stop.parcels[0]} needs {stop.load} of van space; "
                f"the largest van has {biggest}"
            )
    load = sum(s.load for s in stops)
    fleet = sum(v.count * v.capacity for v in scenario.vehicles)
    if load > fleet:
        raise ScenarioError(
            f"the day's parcels need {load} of van space; the whole fleet has {fleet}"
        )
