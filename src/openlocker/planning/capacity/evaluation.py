"""Evaluate compartment mixes by simulation: overflow rates with 95% confidence intervals.

Each mix is simulated on the same ``replications`` independent arrival streams (common
random numbers), so differences between mixes are differences of the mixes, not of luck.
A rate is the pooled ratio (overflowed / arrived) over replications; its interval is the
ratio estimator's delta-method standard error with a Student t quantile.

The peak days are the days of highest expected demand (weekday factor x peak multiplier at
its maximum), fixed by the scenario before any simulation, so the peak-day overflow is not
the luckiest or unluckiest of many noisy days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.stats import t as student_t  # type: ignore[import-untyped]

from openlocker.planning.capacity.arrivals import DemandModel, demand_model
from openlocker.planning.capacity.scenario import Scenario
from openlocker.planning.capacity.simulation import simulate


@dataclass(frozen=True)
class Estimate:
    """A rate and its 95% confidence interval."""

    value: float
    low: float
    high: float


def ratio_estimate(overflow: NDArray[np.int64], arrivals: NDArray[np.int64]) -> Estimate:
    """Pooled overflow / arrivals over replications (1-D arrays, one entry per replication)."""
    total = float(arrivals.sum())
    if total == 0:
        return Estimate(0.0, 0.0, 0.0)
    rate = float(overflow.sum()) / total
    n = len(arrivals)
    residual = overflow - rate * arrivals
    mean_arrivals = total / n
    standard_error = math.sqrt(float(residual @ residual) / (n - 1) / n) / mean_arrivals
    half = float(student_t.ppf(0.975, n - 1)) * standard_error
    return Estimate(rate, max(0.0, rate - half), min(1.0, rate + half))


@dataclass(frozen=True)
class Horizon:
    """The days to simulate: ``warmup_days`` lead days, then the counted days."""

    model: DemandModel  # its daily_factor covers every simulated day
    warmup_days: int
    peak_days: NDArray[np.intp]  # counted-day indices of the peak days


def full_horizon(scenario: Scenario) -> Horizon:
    """The scenario's whole calendar; peak days are those at the highest demand factor."""
    model = demand_model(scenario)
    counted = model.daily_factor[scenario.warmup_days :]
    peak_days = np.flatnonzero(counted >= counted.max() * (1 - 1e-9))
    return Horizon(model, scenario.warmup_days, peak_days)


def peak_window(horizon: Horizon) -> Horizon:
    """Only the span from the first to the last peak day, after the same warm-up.

    Peak-day overflow on this shorter horizon has the same distribution as on the full one
    as long as the warm-up outlasts the longest compartment holding time.
    """
    first = horizon.warmup_days + int(horizon.peak_days[0])
    last = horizon.warmup_days + int(horizon.peak_days[-1])
    start = max(0, first - horizon.warmup_days)
    model = replace(horizon.model, daily_factor=horizon.model.daily_factor[start : last + 1])
    return Horizon(model, first - start, horizon.peak_days - horizon.peak_days[0])


@dataclass(frozen=True)
class MixEvaluation:
    """How one compartment mix fares over a horizon's counted days."""

    counts: tuple[int, ...]
    overflow_rate: Estimate
    overflow_rate_by_size: tuple[Estimate, ...]
    peak_day_overflow_rate: Estimate  # pooled over the horizon's peak days
    worst_day: int  # counted-day index of the highest pooled daily overflow rate
    worst_day_overflow_rate: Estimate
    upsized_share: float  # of admitted parcels, those that took a larger compartment
    daily_parcels: NDArray[np.float64]  # [days] mean per replication
    daily_overflow: NDArray[np.float64]  # [days, sizes] mean per replication, by requested size
    occupancy: NDArray[np.float64] | None  # [hours, sizes] mean parcels held, by compartment size

    @property
    def peak_overflow(self) -> float:
        return self.peak_day_overflow_rate.value

    @property
    def daily_overflow_rate(self) -> NDArray[np.float64]:
        """Per day, overflowed over arrived parcels pooled across replications."""
        rate: NDArray[np.float64] = self.daily_overflow.sum(axis=1) / np.maximum(
            self.daily_parcels, 1e-12
        )
        return rate


def evaluate_mix(
    scenario: Scenario, horizon: Horizon, mix: tuple[int, ...], *, seed: int
) -> MixEvaluation:
    """One mix on ``scenario.replications`` streams from ``seed``, with hourly occupancy."""
    return _evaluate(scenario, horizon, [mix], seed=seed, track_occupancy=True)[0]


def evaluate_mixes(
    scenario: Scenario, horizon: Horizon, mixes: list[tuple[int, ...]], *, seed: int
) -> list[MixEvaluation]:
    """Simulate every mix on the same ``scenario.replications`` streams drawn from ``seed``."""
    return _evaluate(scenario, horizon, mixes, seed=seed, track_occupancy=False)


def _evaluate(
    scenario: Scenario,
    horizon: Horizon,
    mixes: list[tuple[int, ...]],
    *,
    seed: int,
    track_occupancy: bool,
) -> list[MixEvaluation]:
    replications = scenario.replications
    layout = np.repeat(np.asarray(mixes, dtype=np.int64), replications, axis=0)
    result = simulate(
        layout,
        np.full(replications, scenario.demand.parcels_per_day),
        horizon.model,
        upsizing=scenario.upsizing,
        seed=seed,
        stream_of_site=np.tile(np.arange(replications), len(mixes)),
        track_occupancy=track_occupancy,
    )
    warmup = horizon.warmup_days
    occupancy = None
    if result.occupancy is not None:
        occupancy = result.occupancy[warmup * 24 :] / len(layout)
    evaluations = []
    for index, mix in enumerate(mixes):
        replicas = slice(index * replications, (index + 1) * replications)
        evaluations.append(
            _summarise(
                mix,
                result.arrivals[replicas, warmup:],
                result.overflow[replicas, warmup:],
                result.upsized[replicas],
                horizon.peak_days,
                occupancy,
            )
        )
    return evaluations


def _summarise(
    mix: tuple[int, ...],
    arrivals: NDArray[np.int64],
    overflow: NDArray[np.int64],
    upsized: NDArray[np.int64],
    peak_days: NDArray[np.intp],
    occupancy: NDArray[np.float64] | None,
) -> MixEvaluation:
    """Rates from ``[replications, days, sizes]`` counts."""
    day_arrivals = arrivals.sum(axis=2)
    day_overflow = overflow.sum(axis=2)
    pooled_day = day_overflow.sum(axis=0) / np.maximum(day_arrivals.sum(axis=0), 1)
    worst = int(pooled_day.argmax())
    admitted = int(arrivals.sum() - overflow.sum())
    return MixEvaluation(
        counts=tuple(mix),
        overflow_rate=ratio_estimate(day_overflow.sum(axis=1), day_arrivals.sum(axis=1)),
        overflow_rate_by_size=tuple(
            ratio_estimate(overflow[:, :, s].sum(axis=1), arrivals[:, :, s].sum(axis=1))
            for s in range(arrivals.shape[2])
        ),
        peak_day_overflow_rate=ratio_estimate(
            day_overflow[:, peak_days].sum(axis=1), day_arrivals[:, peak_days].sum(axis=1)
        ),
        worst_day=worst,
        worst_day_overflow_rate=ratio_estimate(day_overflow[:, worst], day_arrivals[:, worst]),
        upsized_share=float(upsized.sum()) / admitted if admitted else 0.0,
        daily_parcels=day_arrivals.mean(axis=0),
        daily_overflow=overflow.mean(axis=0),
        occupancy=occupancy,
    )
