"""KPI arithmetic and next-day retries on a plan small enough to check by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from openlocker.planning.routes.assignment import AttemptDraws
from openlocker.planning.routes.plan import (
    DayPlan,
    Network,
    NextDayWork,
    PlannedRoute,
    Stop,
    check_fleet,
    locker_stops,
    next_day_work,
    savings_pct,
    scenario_kpis,
)
from openlocker.planning.routes.scenario import (
    Delivery,
    Depot,
    LockerSite,
    Point,
    Scenario,
    ScenarioError,
    ServiceTimes,
    VehicleType,
)

# Depot, parcels A and B 100 m apart, and a locker beside B. Road metres, by hand:
DISTANCE = np.array(
    [
        [0, 1000, 2000, 3000],
        [1000, 0, 1500, 2500],
        [2000, 1500, 0, 1000],
        [3000, 2500, 1000, 0],
    ],
    dtype=np.float64,
)
A = Delivery("A", Point(52.0, 21.0), "S")
B = Delivery("B", Point(52.001, 21.0), "S")
LOCKER = LockerSite("L", Point(52.0015, 21.0), {"S": 1, "M": 0, "L": 0})
NETWORK = Network(
    ids=("depot", "A", "B", "L"),
    points=(Point(51.99, 21.0), A.point, B.point, LOCKER.point),
    distance_m=DISTANCE,
    index={"depot": 0, "A": 1, "B": 2, "L": 3},
)
VAN = VehicleType(
    "van", count=1, capacity=100, cost_per_km=0.5, cost_per_hour=20, co2_kg_per_km=0.2
)
SCENARIO = Scenario(
    depot=Depot(NETWORK.points[0]),
    vehicles=(VAN,),
    deliveries=(A, B),
    lockers=(LOCKER,),
    sizes={"S": 19, "M": 46, "L": 100},
    failure_rate=0.5,
    service=ServiceTimes(doorstep_s=120, locker_fixed_s=300, locker_per_parcel_s=15),
    speed_kmh=36.0,  # 10 m/s
)
PLAN = DayPlan(
    stops=(Stop(1, "doorstep", ("A",), 19, 120), Stop(2, "doorstep", ("B",), 19, 120)),
    routes=(PlannedRoute(vehicle_type=0, stops=(0, 1), distance_m=4500, duration_s=1800),),
)
# B fails both its first attempt and its retry; A is at home.
DRAWS = AttemptDraws(first={"A": 0.9, "B": 0.1}, retry={"A": 0.9, "B": 0.1})
NOTHING_NEXT_DAY = NextDayWork(0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0)


def test_day_plan_kpis_add_up() -> None:
    kpis = scenario_kpis(PLAN, SCENARIO, first_failures=0, retries=NOTHING_NEXT_DAY)
    assert (kpis.parcels, kpis.doorstep_parcels, kpis.locker_parcels) == (2, 2, 0)
    assert (kpis.vehicles, kpis.stops) == (1, 2)
    assert kpis.km == pytest.approx(4.5)
    assert kpis.driver_hours == pytest.approx(0.5)
    assert kpis.co2_kg == pytest.approx(0.9)  # 4.5 km x 0.2 kg
    assert kpis.cost == pytest.approx(12.25)  # 4.5 km x 0.5 + 0.5 h x 20


def test_failed_parcel_is_retried_at_its_cheapest_detour() -> None:
    free = {"L": {"S": 1, "M": 0, "L": 0}}
    work = next_day_work([B], PLAN, NETWORK, SCENARIO, DRAWS, free)
    # Tomorrow's route is depot-A-depot; B fits in at 2000 + 1500 - 1000 = 2500 m either way.
    assert (work.retries, work.to_locker, work.failed_retries, work.stops) == (1, 0, 1, 1)
    assert work.km == pytest.approx(2.5)
    assert work.driver_hours == pytest.approx((250 + 120) / 3600)
    assert work.cost == pytest.approx(2.5 * 0.5 + (370 / 3600) * 20)
    kpis = scenario_kpis(PLAN, SCENARIO, first_failures=1, retries=work)
    assert (kpis.failed_attempts, kpis.redeliveries, kpis.stops) == (2, 1, 3)
    assert kpis.km == pytest.approx(7.0)
    assert free["L"]["S"] == 1


def test_locker_policy_sends_the_failed_parcel_to_a_locker_within_walk() -> None:
    free = {"L": {"S": 1, "M": 0, "L": 0}}
    scenario = replace(SCENARIO, failed_parcels="locker")
    work = next_day_work([B], PLAN, NETWORK, scenario, DRAWS, free)
    # The locker is not on the plan: 3000 + 2500 - 1000 = 4500 m, fixed time plus one parcel.
    assert (work.retries, work.to_locker, work.failed_retries) == (0, 1, 0)
    assert work.km == pytest.approx(4.5)
    assert work.driver_hours == pytest.approx((450 + 300 + 15) / 3600)
    assert free["L"]["S"] == 0


def test_a_locker_already_on_the_plan_costs_only_the_time_per_parcel() -> None:
    plan = DayPlan(
        stops=(*PLAN.stops, Stop(3, "locker", ("x",), 19, 315)),
        routes=(PlannedRoute(0, (0, 1, 2), 6000, 2400),),
    )
    scenario = replace(SCENARIO, failed_parcels="locker")
    work = next_day_work([B], plan, NETWORK, scenario, DRAWS, {"L": {"S": 1, "M": 0, "L": 0}})
    assert work.km == 0
    assert work.stops == 0
    assert work.driver_hours == pytest.approx(15 / 3600)


def test_locker_stops_split_at_van_capacity() -> None:
    parcels = [Delivery(f"p{i}", B.point, "L") for i in range(3)]
    stops = locker_stops(
        LOCKER, parcels, NETWORK, replace(SCENARIO, vehicles=(replace(VAN, capacity=200),))
    )
    assert [s.parcels for s in stops] == [("p0", "p1"), ("p2",)]
    assert [s.load for s in stops] == [200, 100]
    assert [s.service_s for s in stops] == [300 + 2 * 15, 300 + 15]


def test_savings_are_percent_of_doorstep() -> None:
    door = scenario_kpis(PLAN, SCENARIO, 1, NOTHING_NEXT_DAY)
    lockers = replace(door, km=3.6, stops=1, failed_attempts=0)
    saved = savings_pct(door, lockers)
    assert saved["km"] == pytest.approx(20.0)
    assert saved["stops"] == pytest.approx(50.0)
    assert saved["failed_attempts"] == pytest.approx(100.0)
    assert saved["redeliveries"] is None  # nothing to save from zero


def test_a_day_bigger_than_the_fleet_is_refused_before_solving() -> None:
    with pytest.raises(ScenarioError, match="whole fleet has 100"):
        check_fleet([Stop(1, "doorstep", (f"p{i}",), 46, 120) for i in range(3)], SCENARIO)
    with pytest.raises(ScenarioError, match="largest van has 100"):
        check_fleet([Stop(1, "doorstep", ("huge",), 150, 120)], SCENARIO)
