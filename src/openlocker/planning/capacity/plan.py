"""A capacity plan: how the site's compartments fare, and the smallest mix that meets the target."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from openlocker.planning.capacity.arrivals import mean_dwell_days
from openlocker.planning.capacity.evaluation import (
    Estimate,
    Horizon,
    MixEvaluation,
    evaluate_mix,
    full_horizon,
)
from openlocker.planning.capacity.scenario import MAX_REPLICATIONS, Scenario
from openlocker.planning.capacity.search import Recommendation, recommend_mix


@dataclass(frozen=True)
class CapacityPlan:
    """The simulated site and the recommendation; ``scenario`` holds the replications run."""

    scenario: Scenario
    mean_dwell_hours: float  # compartment holding time: collection, or expiry plus clearance
    current: MixEvaluation
    peak_days: list[int]  # indices into ``dates``: the days of highest expected demand
    recommendation: Recommendation

    @property
    def dates(self) -> list[date]:
        return [self.scenario.start_date + timedelta(days=d) for d in range(self.scenario.days)]


#: Overflow events expected on the peak days at the target rate, over all replications, that
#: a plan simulates at least; fewer make the peak-day interval too wide to decide on.
PEAK_EVENTS = 100


def replications_needed(scenario: Scenario, horizon: Horizon) -> int:
    """``scenario.replications``, raised (to at most 1000) so the peak days see ``PEAK_EVENTS``."""
    factors = horizon.model.daily_factor[horizon.warmup_days + horizon.peak_days]
    peak_parcels = scenario.demand.parcels_per_day * float(factors.sum())
    needed = math.ceil(PEAK_EVENTS / (scenario.target_overflow * peak_parcels))
    return min(max(scenario.replications, needed), MAX_REPLICATIONS)


def plan_capacity(scenario: Scenario) -> CapacityPlan:
    """Simulate the site's compartments and search the recommended mix.

    Runs at least ``scenario.replications`` replications, more when the peak days are too
    few or too quiet (see ``replications_needed``); the plan's scenario says how many.
    """
    horizon = full_horizon(scenario)
    scenario = scenario.model_copy(update={"replications": replications_needed(scenario, horizon)})
    dwell_days = mean_dwell_days(horizon.model, np.random.default_rng(scenario.seed))
    current = evaluate_mix(scenario, horizon, tuple(scenario.counts()), seed=scenario.seed)
    return CapacityPlan(
        scenario=scenario,
        mean_dwell_hours=dwell_days * 24.0,
        current=current,
        peak_days=horizon.peak_days.tolist(),
        recommendation=recommend_mix(scenario, horizon, dwell_days),
    )


def plan_as_json(plan: CapacityPlan) -> dict[str, Any]:
    """The plan as one JSON document (the ``--json`` output, documented in docs/planning.md)."""
    scenario = plan.scenario
    return {
        "scenario": scenario.name,
        "start_date": scenario.start_date.isoformat(),
        "days": scenario.days,
        "replications": scenario.replications,
        "seed": scenario.seed,
        "target_overflow": scenario.target_overflow,
        "objective": scenario.objective,
        "upsizing": scenario.upsizing,
        "mean_dwell_hours": round(plan.mean_dwell_hours, 3),
        **_mix_json(plan, plan.current),
        "recommended_mix": {
            **_mix_json(plan, plan.recommendation.evaluation),
            "meets_target": plan.recommendation.meets_target,
            "mixes_simulated": plan.recommendation.mixes_simulated,
        },
        "daily": {
            "date": [day.isoformat() for day in plan.dates],
            "parcels": _rounded(plan.current.daily_parcels),
            "overflow": _rounded(plan.current.daily_overflow.sum(axis=1)),
            "overflow_rate": _rounded(plan.current.daily_overflow_rate),
        },
    }


def _mix_json(plan: CapacityPlan, evaluation: MixEvaluation) -> dict[str, Any]:
    codes = plan.scenario.codes
    by_size = dict(zip(codes, evaluation.overflow_rate_by_size, strict=True))
    area = sum(
        size.front_area_m2 * count
        for size, count in zip(plan.scenario.size_classes, evaluation.counts, strict=True)
    )
    costs = [size.cost for size in plan.scenario.size_classes]
    return {
        "compartments": dict(zip(codes, evaluation.counts, strict=True)),
        "front_area_m2": round(area, 4),
        "cost": None
        if any(cost is None for cost in costs)
        else round(sum((c or 0.0) * n for c, n in zip(costs, evaluation.counts, strict=True)), 4),
        "overflow_rate": {
            "overall": evaluation.overflow_rate.value,
            "by_size": {code: e.value for code, e in by_size.items()},
        },
        "overflow_rate_ci95": {
            "overall": _interval(evaluation.overflow_rate),
            "by_size": {code: _interval(e) for code, e in by_size.items()},
        },
        "peak_day": {
            "dates": [plan.dates[day].isoformat() for day in plan.peak_days],
            "parcels": round(float(evaluation.daily_parcels[plan.peak_days].mean()), 3),
            "overflow_rate": evaluation.peak_day_overflow_rate.value,
            "overflow_rate_ci95": _interval(evaluation.peak_day_overflow_rate),
        },
        "worst_day": {
            "date": plan.dates[evaluation.worst_day].isoformat(),
            "parcels": round(float(evaluation.daily_parcels[evaluation.worst_day]), 3),
            "overflow_rate": evaluation.worst_day_overflow_rate.value,
            "overflow_rate_ci95": _interval(evaluation.worst_day_overflow_rate),
        },
        "upsized_share": evaluation.upsized_share,
    }


def _interval(estimate: Estimate) -> list[float]:
    return [estimate.low, estimate.high]


def _rounded(values: np.ndarray[Any, Any]) -> list[float]:
    return [round(float(v), 4) for v in values]
