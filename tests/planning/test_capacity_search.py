"""The recommended mix: meets the target on fresh streams and no single step down still does."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from openlocker.planning.capacity.arrivals import mean_dwell_days
from openlocker.planning.capacity.evaluation import evaluate_mixes, full_horizon, peak_window
from openlocker.planning.capacity.scenario import load_scenario
from openlocker.planning.capacity.search import recommend_mix, starting_mix

DATA = Path(__file__).resolve().parent / "data"


def test_recommended_mix_meets_the_target_and_is_locally_smallest() -> None:
    scenario = load_scenario(DATA / "capacity_small.json")
    horizon = full_horizon(scenario)
    dwell_days = mean_dwell_days(horizon.model, np.random.default_rng(scenario.seed))

    recommendation = recommend_mix(scenario, horizon, dwell_days)

    mix = recommendation.evaluation.counts
    assert recommendation.meets_target
    assert recommendation.evaluation.peak_overflow <= scenario.target_overflow
    assert recommendation.weight == sum(
        size.front_area_m2 * n for size, n in zip(scenario.size_classes, mix, strict=True)
    )
    # Dropping any one compartment leaves the target unsure on the streams it was searched on.
    smaller = [
        tuple(n - (i == size) for i, n in enumerate(mix)) for size in range(len(mix)) if mix[size]
    ]
    window = peak_window(horizon)
    for evaluation in evaluate_mixes(scenario, window, smaller, seed=recommendation.search_seed):
        assert evaluation.peak_day_overflow_rate.high > scenario.target_overflow


def test_search_starts_from_erlang_b_sizing_of_each_size_at_peak_load() -> None:
    scenario = load_scenario(DATA / "capacity_small.json")
    start = starting_mix(scenario, full_horizon(scenario), mean_dwell_days=1.0)
    # Busiest day: 12 parcels x 1.3 / mean(profile) x 1.5; S gets 45% of them.
    assert len(start) == 4
    assert start[0] > start[3] > 0


def test_peak_window_sees_the_same_peak_day_overflow_as_the_whole_horizon() -> None:
    scenario = load_scenario(DATA / "capacity_small.json").model_copy(update={"replications": 200})
    horizon = full_horizon(scenario)
    window = peak_window(horizon)
    assert window.model.days == 5 + 8  # warm-up, then Friday 4 to Friday 11 December
    mix = (9, 7, 4, 2)

    whole = evaluate_mixes(scenario, horizon, [mix], seed=1)[0].peak_day_overflow_rate
    short = evaluate_mixes(scenario, window, [mix], seed=2)[0].peak_day_overflow_rate

    assert 0.02 < whole.value < 0.5
    # Independent estimates of one rate: their difference is within the combined interval.
    combined = math.hypot(whole.high - whole.value, short.high - short.value)
    assert abs(whole.value - short.value) < combined
