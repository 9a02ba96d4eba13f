"""The simulation against the Erlang-B loss formula (Poisson arrivals, one size, no upsizing)."""

from __future__ import annotations

import math

import pytest

from openlocker.planning.capacity.erlang import erlang_b, servers_for
from openlocker.planning.capacity.evaluation import evaluate_mix, full_horizon
from openlocker.planning.capacity.scenario import Scenario, parse_scenario


def test_erlang_b_matches_closed_form() -> None:
    for servers, load in [(1, 1.0), (2, 1.0), (5, 3.0), (10, 7.5)]:
        closed = (load**servers / math.factorial(servers)) / sum(
            load**k / math.factorial(k) for k in range(servers + 1)
        )
        assert erlang_b(servers, load) == pytest.approx(closed, rel=1e-12)


def test_erlang_b_recursion_is_stable_for_large_sites() -> None:
    blocking = erlang_b(2000, 1900.0)
    assert 0.0 < blocking < 0.1
    assert erlang_b(0, 5.0) == 1.0


def test_servers_for_is_the_smallest_count_meeting_the_target() -> None:
    servers = servers_for(40.0, 0.01)
    assert erlang_b(servers, 40.0) <= 0.01 < erlang_b(servers - 1, 40.0)


def _stationary(compartments: int, parcels_per_day: float, mean_hours: float) -> Scenario:
    """One size, Poisson arrivals round the clock, exponential dwell, nothing expires."""
    return parse_scenario(
        {
            "start_date": "2026-03-02",
            "days": 60,
            "warmup_days": 10,
            "replications": 30,
            "seed": 7,
            "size_classes": [{"code": "M", "inner_mm": [430, 190, 580], "front_area_m2": 0.09}],
            "compartments": {"M": compartments},
            "demand": {
                "parcels_per_day": parcels_per_day,
                "size_mix": {"M": 1},
                "arrival_windows": [{"start_hour": 0, "end_hour": 24, "share": 1}],
            },
            "dwell": {"kind": "exponential", "mean_hours": mean_hours},
            "expiry": {"deadline_hours": None},
            "upsizing": False,
        }
    )


@pytest.mark.parametrize(
    ("compartments", "parcels_per_day", "mean_hours"),
    [(40, 40.0, 24.0), (60, 45.0, 30.0), (10, 6.0, 36.0)],
)
def test_simulated_overflow_matches_erlang_b(
    compartments: int, parcels_per_day: float, mean_hours: float
) -> None:
    scenario = _stationary(compartments, parcels_per_day, mean_hours)
    load = parcels_per_day * mean_hours / 24.0
    expected = erlang_b(compartments, load)

    evaluation = evaluate_mix(scenario, full_horizon(scenario), (compartments,), seed=scenario.seed)
    rate = evaluation.overflow_rate

    assert rate.low <= expected <= rate.high
    # The interval is tight enough to tell a 15% error in offered load apart.
    assert not rate.low <= erlang_b(compartments, load * 1.15) <= rate.high
    assert not rate.low <= erlang_b(compartments, load * 0.85) <= rate.high
