"""Scenario validation and the dwell-time distributions."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from openlocker.planning.capacity.dwell import sample_collection_hours
from openlocker.planning.capacity.scenario import (
    HistogramDwell,
    LognormalDwell,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

DATA = Path(__file__).resolve().parent / "data"


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "compartments": {"S": 10, "M": 5},
        "demand": {"parcels_per_day": 12},
    }
    document.update(changes)
    return document


def test_documented_example_loads_with_defaults_filled_in() -> None:
    scenario = load_scenario(DATA / "capacity_example.json")
    assert scenario.codes == ["S", "M", "L", "XL"]
    assert scenario.expiry.deadline_hours == 72
    assert sum(scenario.mix()) == pytest.approx(1.0)


def test_minimal_scenario_gets_the_published_dwell_default_and_72_hour_expiry() -> None:
    scenario = parse_scenario(_document())
    assert scenario.dwell == LognormalDwell(within_24h=0.63, mean_hours=35.0)
    assert scenario.expiry.deadline_hours == 72.0
    assert scenario.counts() == [10, 5, 0, 0]
    assert scenario.target_overflow == 0.01


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"compartments": {"Q": 3}}, "unknown size classes ['Q']"),
        ({"demand": {"parcels_per_day": 0}}, "demand.parcels_per_day"),
        ({"demand": {"parcels_per_day": 5, "size_mix": {"S": 0}}}, "size_mix"),
        (
            {
                "objective": "cost",
                "compartments": {"S": 1},
                "demand": {"parcels_per_day": 5, "size_mix": {"S": 1}},
                "size_classes": [{"code": "S", "inner_mm": [1, 1, 1], "front_area_m2": 1}],
            },
            'objective "cost" needs a cost',
        ),
        (
            {
                "demand": {
                    "parcels_per_day": 5,
                    "peaks": [{"start": "2026-12-24", "end": "2026-12-01", "multiplier": 2}],
                }
            },
            "before it starts",
        ),
        ({"dwell": {"kind": "histogram", "edges_hours": [0, 1], "counts": [1, 2]}}, "edges_hours"),
        ({"dwell": {"kind": "gamma"}}, "dwell"),
        ({"surprise": 1}, "surprise"),
        ({"expiry": {"deadline_hours": 168}}, "warmup_days must cover the longest holding time"),
        (
            {"size_classes": [{"code": "S", "inner_mm": [1, 1, 1], "front_area_m2": 1}]},
            "size_mix is required",
        ),
    ],
)
def test_bad_scenarios_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match="invalid scenario") as error:
        parse_scenario(_document(**changes))
    assert message in str(error.value)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ScenarioError, match="is not JSON"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.json")


def test_lognormal_fit_reproduces_both_published_figures() -> None:
    mu, sigma = LognormalDwell(within_24h=0.63, mean_hours=35.0).parameters()
    assert NormalDist(mu, sigma).cdf(math.log(24.0)) == pytest.approx(0.63, abs=1e-9)
    assert math.exp(mu + sigma**2 / 2) == pytest.approx(35.0, rel=1e-9)

    hours = sample_collection_hours(LognormalDwell(), np.random.default_rng(3), 400_000)
    assert np.mean(hours <= 24) == pytest.approx(0.63, abs=0.005)


def test_lognormal_fit_refuses_impossible_figures() -> None:
    with pytest.raises(ScenarioError, match=r"dwell\.lognormal: no lognormal has 90% within 24 h"):
        parse_scenario(_document(dwell={"kind": "lognormal", "within_24h": 0.9, "mean_hours": 5}))


def test_histogram_dwell_samples_inside_the_bins_in_proportion() -> None:
    dwell = HistogramDwell(kind="histogram", edges_hours=(0, 10, 20, 100), counts=(3, 0, 1))
    hours = sample_collection_hours(dwell, np.random.default_rng(5), 100_000)
    assert not np.any((hours >= 10) & (hours < 20))
    assert np.mean(hours < 10) == pytest.approx(0.75, abs=0.01)
    assert hours.max() < 100
