"""The smallest compartment mix (by front area or cost) whose peak-day overflow meets the target.

Greedy marginal analysis on simulated mixes: start from Erlang-B sizing of each size class
at its peak offered load; while the peak-day overflow is not surely under target (the upper
end of its 95% interval above it), add the compartment that removes the most overflow per
m² (or per unit cost); then, while some smaller mix is still surely under target, take the
one that saves the most (dropping one compartment, or swapping one for a smaller size).
Every step simulates all its candidates together on the same streams, over only the span
of the peak days (after the warm-up). The result is verified over the whole horizon on
fresh streams; if its peak-day overflow is over target there, the search goes on from it
on new streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openlocker.planning.capacity.erlang import servers_for
from openlocker.planning.capacity.evaluation import (
    Horizon,
    MixEvaluation,
    evaluate_mix,
    evaluate_mixes,
    peak_window,
)
from openlocker.planning.capacity.scenario import Scenario, ScenarioError

#: Verification rounds before giving up and reporting the mix as not meeting the target.
VERIFICATION_ROUNDS = 3
#: Compartments the add phase may add before the target is declared out of reach.
MAX_ADDED = 2000


@dataclass(frozen=True)
class Recommendation:
    """The recommended mix, as evaluated on verification streams it was not searched on."""

    evaluation: MixEvaluation
    weight: float  # total front area in m², or total cost
    meets_target: bool
    mixes_simulated: int
    search_seed: int  # peak-window streams the mix is locally smallest on
    # (verified over the whole horizon on search_seed + 1)


def starting_mix(scenario: Scenario, horizon: Horizon, mean_dwell_days: float) -> tuple[int, ...]:
    """Per size class, the Erlang-B compartment count at the busiest day's offered load."""
    peak_parcels = scenario.demand.parcels_per_day * float(horizon.model.daily_factor.max())
    return tuple(
        servers_for(peak_parcels * share * mean_dwell_days, scenario.target_overflow)
        if share
        else 0
        for share in scenario.mix()
    )


def recommend_mix(scenario: Scenario, horizon: Horizon, mean_dwell_days: float) -> Recommendation:
    """Search the smallest mix meeting ``scenario.target_overflow`` on the peak days."""
    search = _Search(scenario, peak_window(horizon))
    mix = starting_mix(scenario, horizon, mean_dwell_days)
    seed = scenario.seed
    for _ in range(VERIFICATION_ROUNDS):
        current = search.evaluate([mix], seed)[0]
        current = search.add_until_feasible(current, seed)
        current = search.remove_while_feasible(current, seed)
        mix = current.counts
        verified = evaluate_mix(scenario, horizon, mix, seed=seed + 1)
        search.simulated += 1
        if verified.peak_overflow <= scenario.target_overflow:
            break
        seed += 1
    return Recommendation(
        evaluation=verified,
        weight=search.weight(mix),
        meets_target=verified.peak_overflow <= scenario.target_overflow,
        mixes_simulated=search.simulated,
        search_seed=seed,
    )


class _Search:
    def __init__(self, scenario: Scenario, horizon: Horizon) -> None:
        self.scenario = scenario
        self.horizon = horizon
        self.unit_weights = np.asarray(scenario.unit_weights())
        self.target = scenario.target_overflow
        self.simulated = 0

    def surely_meets(self, evaluation: MixEvaluation) -> bool:
        return evaluation.peak_day_overflow_rate.high <= self.target

    def weight(self, mix: tuple[int, ...]) -> float:
        return float(self.unit_weights @ np.asarray(mix))

    def evaluate(self, mixes: list[tuple[int, ...]], seed: int) -> list[MixEvaluation]:
        self.simulated += len(mixes)
        return evaluate_mixes(self.scenario, self.horizon, mixes, seed=seed)

    def add_until_feasible(self, current: MixEvaluation, seed: int) -> MixEvaluation:
        start = sum(current.counts)
        while not self.surely_meets(current):
            if sum(current.counts) - start >= MAX_ADDED:
                raise ScenarioError(
                    f"target out of reach: {MAX_ADDED} more compartments do not meet it"
                )
            candidates = [
                _changed(current.counts, {size: 1}) for size in range(len(current.counts))
            ]
            evaluations = self.evaluate(candidates, seed)
            gains = [
                (current.peak_overflow - e.peak_overflow) / unit
                for e, unit in zip(evaluations, self.unit_weights, strict=True)
            ]
            current = evaluations[int(np.argmax(gains))]
        return current

    def remove_while_feasible(self, current: MixEvaluation, seed: int) -> MixEvaluation:
        while True:
            counts = current.counts
            candidates = []
            for size, count in enumerate(counts):
                if count == 0:
                    continue
                candidates.append(_changed(counts, {size: -1}))
                candidates.extend(
                    _changed(counts, {size: -1, smaller: 1}) for smaller in range(size)
                )
            if not candidates:
                return current
            feasible = [e for e in self.evaluate(candidates, seed) if self.surely_meets(e)]
            if not feasible:
                return current
            current = min(feasible, key=lambda e: (self.weight(e.counts), e.peak_overflow))


def _changed(mix: tuple[int, ...], change: dict[int, int]) -> tuple[int, ...]:
    return tuple(count + change.get(size, 0) for size, count in enumerate(mix))
