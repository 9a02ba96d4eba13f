"""Synthetic cities, locker choices, locker assignment and attempt draws, without a solver."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from openlocker.planning.routes.assignment import (
    assign_to_lockers,
    draw_attempts,
    draw_locker_choices,
    walk_m,
)
from openlocker.planning.routes.scenario import Delivery, LockerSite, Point, load_scenario
from openlocker.planning.routes.synthetic import synthetic_scenario

DATA = Path(__file__).parent / "data"
SIZES = {"S": 19, "M": 46, "L": 100}
LOCKER = Point(52.0, 21.0)


def north_of_locker(identifier: str, metres: float, size: str = "S") -> Delivery:
    """A delivery ``metres`` due north of the test locker (1 degree of latitude ~ 111.2 km)."""
    return Delivery(identifier, Point(LOCKER.lat + metres / 111_195, LOCKER.lon), size)


def test_same_seed_same_city_other_seed_other_city() -> None:
    first = synthetic_scenario(200, 5, seed=7)
    again = synthetic_scenario(200, 5, seed=7)
    other = synthetic_scenario(200, 5, seed=8)
    assert first == again
    assert first.deliveries != other.deliveries
    assert len(first.deliveries) == 200 and len(first.lockers) == 5
    assert {d.size for d in first.deliveries} <= set(first.sizes)


def test_synthetic_demand_clusters_around_lockers() -> None:
    city = synthetic_scenario(1000, 10, seed=1)
    nearest = walk_m(city.deliveries, city.lockers, 1.0).min(axis=1)
    # Uniform over a 6 km disc, about 4% would be within 400 m of one of 10 points.
    assert float(np.mean(nearest < 400)) > 0.3


def test_known_choices_are_kept_and_unknown_ones_drawn_at_the_share() -> None:
    scenario = load_scenario(DATA / "routes_small.json")
    accepting = draw_locker_choices(scenario, np.random.default_rng(0))
    assert {"a1", "a2", "a5"} <= accepting
    assert "a3" not in accepting
    city = synthetic_scenario(2000, 5, seed=0)
    share = len(draw_locker_choices(city, np.random.default_rng(0))) / 2000
    assert abs(share - city.locker_acceptance) < 0.04


def test_walk_limit_keeps_far_recipients_at_the_door() -> None:
    near, far = north_of_locker("near", 200), north_of_locker("far", 450)
    site = LockerSite("L1", LOCKER, {"S": 5, "M": 0, "L": 0})
    result = assign_to_lockers([near, far], frozenset({"near", "far"}), [site], SIZES, 300, 1.2)
    assert result.locker_of == {"near": "L1"}
    assert result.out_of_reach == 1
    assert result.free_after["L1"]["S"] == 4


def test_compartments_run_out_closest_recipients_first_and_parcels_upsize() -> None:
    deliveries = [
        north_of_locker("d3", 150),
        north_of_locker("d1", 50),
        north_of_locker("d2", 100),
        north_of_locker("big", 60, size="L"),
    ]
    site = LockerSite("L1", LOCKER, {"S": 1, "M": 1, "L": 0})
    result = assign_to_lockers(
        deliveries, frozenset(d.id for d in deliveries), [site], SIZES, 300, 1.0
    )
    # d1 takes the S, d2 the M (a small parcel may use a larger door), d3 finds no room;
    # the L parcel fits no compartment at all.
    assert result.locker_of == {"d1": "L1", "d2": "L1"}
    assert result.compartment_of == {"d1": "S", "d2": "M"}
    assert result.no_room == 2
    assert result.free_after["L1"] == {"S": 0, "M": 0, "L": 0}


def test_a_full_locker_sends_recipients_to_the_next_one_within_walk() -> None:
    near_site = LockerSite("near", LOCKER, {"S": 1, "M": 0, "L": 0})
    next_site = LockerSite(
        "next", Point(LOCKER.lat + 250 / 111_195, LOCKER.lon), {"S": 1, "M": 0, "L": 0}
    )
    deliveries = [north_of_locker("d1", 10), north_of_locker("d2", 20)]
    result = assign_to_lockers(
        deliveries, frozenset({"d1", "d2"}), [near_site, next_site], SIZES, 300, 1.0
    )
    assert result.locker_of == {"d1": "near", "d2": "next"}


def test_attempt_draws_are_reproducible() -> None:
    deliveries = synthetic_scenario(100, 2, seed=3).deliveries
    first = draw_attempts(deliveries, np.random.default_rng(5))
    again = draw_attempts(deliveries, np.random.default_rng(5))
    assert first == again
    failures = sum(first.fails_first(d.id, 0.5) for d in deliveries)
    assert 30 < failures < 70


def test_a_chosen_locker_is_used_however_far_and_before_nearer_ones() -> None:
    far_site = LockerSite(
        "far", Point(LOCKER.lat + 2000 / 111_195, LOCKER.lon), {"S": 1, "M": 0, "L": 0}
    )
    near_site = LockerSite("near", LOCKER, {"S": 1, "M": 0, "L": 0})
    chooser = replace(north_of_locker("chooser", 10), locker="far")
    result = assign_to_lockers(
        [north_of_locker("d1", 5), chooser],
        frozenset({"d1", "chooser"}),
        [near_site, far_site],
        SIZES,
        300,
        1.0,
    )
    assert result.locker_of == {"chooser": "far", "d1": "near"}
