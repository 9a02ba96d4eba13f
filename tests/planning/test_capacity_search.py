"""The recommended mix: meets the target on fresh streams and no single step down still does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openlocker.planning.capacity.arrivals import demand_model, mean_dwell_days
from openlocker.planning.capacity.evaluation import evaluate_mixes
from openlocker.planning.capacity.scenario import load_scenario
from openlocker.planning.capacity.search import recommend_mix, starting_mix

DATA = Path(__file__).resolve().parent / "data"


def test_recommended_mix_meets_the_target_and_is_locally_smallest() -> None:
    scenario = load_scenario(DATA / "capacity_small.json")
    model = demand_model(scenario)
    dwell_days = mean_dwell_days(model, np.random.default_rng(scenario.seed))

    recommendation = recommend_mix(scenario, model, dwell_days)

    mix = recommendation.evaluation.counts
    assert recommendation.meets_target
    assert recommendation.evaluation.peak_overflow <= scenario.target_overflow
    assert recommendation.weight == sum(
        size.front_area_m2 * n for size, n in zip(scenario.size_classes, mix, strict=True)
    )
    # Dropping any one compartment breaks the target on the streams it was searched on.
    smaller = [
        tuple(n - (i == size) for i, n in enumerate(mix)) for size in range(len(mix)) if mix[size]
    ]
    for evaluation in evaluate_mixes(scenario, model, smaller, seed=recommendation.search_seed):
        assert evaluation.peak_overflow > scenario.target_overflow


def test_search_starts_from_erlang_b_sizing_of_each_size_at_peak_load() -> None:
    scenario = load_scenario(DATA / "capacity_small.json")
    model = demand_model(scenario)
    start = starting_mix(scenario, model, mean_dwell_days=1.0)
    # Busiest day: 12 parcels x 1.3 / mean(profile) x 1.5; S gets 45% of them.
    assert len(start) == 4
    assert start[0] > start[3] > 0
