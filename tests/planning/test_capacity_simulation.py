"""The array simulation: upsizing, expiry and clearance, occupancy, common random numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from openlocker.planning.capacity.arrivals import demand_model, generate_arrivals, mean_dwell_days
from openlocker.planning.capacity.scenario import Scenario, parse_scenario
from openlocker.planning.capacity.simulation import simulate


def _scenario(**changes: Any) -> Scenario:
    document: dict[str, Any] = {
        # Simulated days start on Monday 2026-06-01: 4 warm-up days, then 24 counted.
        "start_date": "2026-06-05",
        "days": 24,
        "warmup_days": 4,
        "compartments": {"S": 10},
        "demand": {"parcels_per_day": 8},
    }
    document.update(changes)
    return parse_scenario(document)


def _layout(*rows: list[int]) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.asarray(rows, dtype=np.int64)


def test_a_parcel_takes_a_larger_compartment_only_when_upsizing_is_allowed() -> None:
    scenario = _scenario(demand={"parcels_per_day": 8, "size_mix": {"S": 1}})
    model = demand_model(scenario)
    only_large = _layout([0, 0, 30, 0])

    upsized = simulate(only_large, np.array([8.0]), model, upsizing=True, seed=1)
    strict = simulate(only_large, np.array([8.0]), model, upsizing=False, seed=1)

    assert upsized.overflow.sum() == 0
    assert upsized.upsized.sum() == upsized.arrivals.sum() > 150
    assert strict.overflow.sum() == strict.arrivals.sum() == upsized.arrivals.sum()


def test_a_site_without_compartments_overflows_everything() -> None:
    model = demand_model(_scenario())
    result = simulate(_layout([0, 0, 0, 0]), np.array([8.0]), model, upsizing=True, seed=2)
    assert result.overflow.sum() == result.arrivals.sum() > 0


def test_occupancy_never_exceeds_the_compartments_and_counts_are_consistent() -> None:
    model = demand_model(_scenario())
    layout = _layout([4, 3, 2, 1], [8, 6, 4, 2])
    result = simulate(layout, np.array([30.0, 30.0]), model, upsizing=True, seed=3)
    assert result.occupancy is not None
    assert np.all(result.occupancy >= 0)
    assert np.all(result.occupancy.max(axis=0) <= layout.sum(axis=0))
    # The smaller site loses more on the same demand level.
    lost = result.overflow.sum(axis=(1, 2)) / result.arrivals.sum(axis=(1, 2))
    assert lost[0] > lost[1] > 0
    # Poisson volume: 28 days x 30 parcels per site, within 4 standard deviations.
    assert abs(result.arrivals.sum(axis=(1, 2)) - 840).max() < 4 * 840**0.5


def test_same_seed_same_streams_whatever_the_layout() -> None:
    model = demand_model(_scenario())
    first = simulate(_layout([2, 2, 2, 2]), np.array([10.0]), model, upsizing=True, seed=9)
    second = simulate(_layout([9, 9, 9, 9]), np.array([10.0]), model, upsizing=True, seed=9)
    np.testing.assert_array_equal(first.arrivals, second.arrivals)
    assert first.overflow.sum() > second.overflow.sum()


def test_replayed_streams_give_identical_sites() -> None:
    model = demand_model(_scenario())
    result = simulate(
        _layout([3, 3, 3, 3], [3, 3, 3, 3]),
        np.array([12.0]),
        model,
        upsizing=False,
        seed=4,
        stream_of_site=np.array([0, 0]),
    )
    np.testing.assert_array_equal(result.overflow[0], result.overflow[1])


def test_expired_parcels_wait_for_the_next_courier_window() -> None:
    scenario = _scenario(
        demand={
            "parcels_per_day": 50,
            "arrival_windows": [{"start_hour": 9, "end_hour": 10, "share": 1}],
        },
        dwell={"kind": "exponential", "mean_hours": 1000},
        expiry={"deadline_hours": 30},
    )
    batch = generate_arrivals(
        demand_model(scenario), np.array([50.0]), 0, 3, np.random.default_rng(1)
    )
    real = batch.time > -np.inf
    held_hours = (batch.departure - batch.time)[real] * 24
    # Deposited 09:00-10:00, expired 30 h later (15:00-16:00), cleared at 09:00 the next day.
    departure_hour = np.round((batch.departure[real] % 1) * 24, 6)
    expired = held_hours > 30
    assert expired.mean() > 0.9
    assert np.all(departure_hour[expired] == 9.0)
    assert np.all((held_hours[expired] > 41) & (held_hours[expired] <= 48))


def test_fixed_clearance_delay_and_no_expiry() -> None:
    fixed = _scenario(
        dwell={"kind": "exponential", "mean_hours": 1e7},
        expiry={"deadline_hours": 48, "clearance_delay_hours": 6},
    )
    assert mean_dwell_days(demand_model(fixed), np.random.default_rng(0)) == pytest.approx(
        54 / 24, rel=0.01
    )
    never = _scenario(
        dwell={"kind": "exponential", "mean_hours": 20}, expiry={"deadline_hours": None}
    )
    assert mean_dwell_days(demand_model(never), np.random.default_rng(0)) == pytest.approx(
        20 / 24, rel=0.02
    )


def test_weekly_profile_and_peaks_shape_the_daily_volume() -> None:
    scenario = _scenario(
        days=10,
        demand={
            "parcels_per_day": 10,
            "weekly_profile": [2, 1, 1, 1, 1, 1, 0],
            "peaks": [{"start": "2026-06-08", "end": "2026-06-14", "multiplier": 3}],
        },
    )
    factor = demand_model(scenario).daily_factor
    # 2026-06-01 is a Monday; the profile is rescaled to a mean of 1 (sum 7 -> unchanged).
    assert factor[:7].tolist() == [2, 1, 1, 1, 1, 1, 0]
    assert factor[7:].tolist() == [6, 3, 3, 3, 3, 3, 0]
