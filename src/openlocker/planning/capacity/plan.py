"""A capacity plan: how the site's compartments fare, and the smallest mix that meets the target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from openlocker.planning.capacity.arrivals import DemandModel, demand_model, mean_dwell_days
from openlocker.planning.capacity.evaluation import MixEvaluation, evaluate_mix
from openlocker.planning.capacity.scenario import Scenario
from openlocker.planning.capacity.search import Recommendation, recommend_mix


@dataclass(frozen=True)
class CapacityPlan:
    scenario: Scenario
    mean_dwell_hours: float  # compartment holding time: collection, or expiry plus clearance
    current: MixEvaluation
    recommendation: Recommendation

    @property
    def dates(self) -> list[date]:
        return [self.scenario.start_date + timedelta(days=d) for d in range(self.scenario.days)]


def plan_capacity(scenario: Scenario) -> CapacityPlan:
    """Simulate the site's compartments and search the recommended mix."""
    model: DemandModel = demand_model(scenario)
    dwell_days = mean_dwell_days(model, np.random.default_rng(scenario.seed))
    current = evaluate_mix(scenario, model, tuple(scenario.counts()), seed=scenario.seed)
    return CapacityPlan(
        scenario=scenario,
        mean_dwell_hours=dwell_days * 24.0,
        current=current,
        recommendation=recommend_mix(scenario, model, dwell_days),
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
            "overall": [evaluation.overflow_rate.low, evaluation.overflow_rate.high],
            "by_size": {code: [e.low, e.high] for code, e in by_size.items()},
        },
        "peak_day": {
            "date": plan.dates[evaluation.peak_day].isoformat(),
            "parcels": round(float(evaluation.daily_parcels[evaluation.peak_day]), 3),
            "overflow_rate": evaluation.peak_day_overflow_rate.value,
            "overflow_rate_ci95": [
                evaluation.peak_day_overflow_rate.low,
                evaluation.peak_day_overflow_rate.high,
            ],
        },
        "upsized_share": evaluation.upsized_share,
    }


def _rounded(values: np.ndarray[Any, Any]) -> list[float]:
    return [round(float(v), 4) for v in values]
