"""Parcel arrivals for the simulation: Poisson days, courier windows, sizes and departures.

Time is in days from the first simulated day (warm-up included). Each arrival stream is
one independent site history; the simulation may replay a stream at several sites (common
random numbers) to compare compartment mixes on identical demand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openlocker.planning.capacity.dwell import sample_collection_hours
from openlocker.planning.capacity.scenario import Dwell, Scenario


@dataclass(frozen=True)
class DemandModel:
    """What every stream shares: the day-by-day demand shape, size mix, windows, dwell, expiry."""

    daily_factor: NDArray[np.float64]  # per simulated day: weekday factor x peak multiplier
    size_mix: NDArray[np.float64]  # per size class, sums to 1
    window_start_hours: NDArray[np.float64]
    window_end_hours: NDArray[np.float64]
    window_share: NDArray[np.float64]  # sums to 1
    dwell: Dwell
    deadline_hours: float | None
    clearance_delay_hours: float | None  # None: the next courier window start

    @property
    def days(self) -> int:
        return len(self.daily_factor)


@dataclass(frozen=True)
class ArrivalBatch:
    """Arrivals of consecutive days, step-major: row k holds each stream's k-th arrival.

    Streams with fewer arrivals are padded with ``time = -inf`` (never admitted, not counted).
    """

    time: NDArray[np.float64]  # [steps, streams] arrival time in days
    size: NDArray[np.intp]  # [steps, streams] requested size class index
    departure: NDArray[np.float64]  # [steps, streams] when the compartment would free again


def demand_model(scenario: Scenario) -> DemandModel:
    """The demand shape of ``scenario`` over its calendar (warm-up days first)."""
    demand = scenario.demand
    weekly = np.asarray(demand.weekly_profile, dtype=np.float64)
    weekly = weekly / weekly.mean()
    factors = []
    for day in scenario.calendar():
        factor = float(weekly[day.weekday()])
        for peak in demand.peaks:
            if peak.start <= day <= peak.end:
                factor *= peak.multiplier
        factors.append(factor)
    windows = demand.arrival_windows
    shares = np.asarray([w.share for w in windows], dtype=np.float64)
    return DemandModel(
        daily_factor=np.asarray(factors, dtype=np.float64),
        size_mix=np.asarray(scenario.mix(), dtype=np.float64),
        window_start_hours=np.asarray([w.start_hour for w in windows], dtype=np.float64),
        window_end_hours=np.asarray([w.end_hour for w in windows], dtype=np.float64),
        window_share=shares / shares.sum(),
        dwell=scenario.dwell,
        deadline_hours=scenario.expiry.deadline_hours,
        clearance_delay_hours=scenario.expiry.clearance_delay_hours,
    )


def generate_arrivals(
    model: DemandModel,
    parcels_per_day: NDArray[np.float64],
    first_day: int,
    n_days: int,
    rng: np.random.Generator,
) -> ArrivalBatch:
    """Arrivals on days ``first_day .. first_day + n_days - 1`` for each stream, time-ordered.

    Day counts are Poisson with mean ``parcels_per_day[stream] x daily_factor[day]``; a parcel
    arrives uniformly inside a courier window picked by share.
    """
    streams = len(parcels_per_day)
    rates = parcels_per_day[:, None] * model.daily_factor[None, first_day : first_day + n_days]
    counts = rng.poisson(rates)
    per_stream = counts.sum(axis=1)
    n = int(per_stream.sum())
    # Group g = stream * n_days + day keeps parcels stream-major, then day by day.
    group = np.repeat(np.arange(streams * n_days), counts.ravel())
    # Sorting group + fraction of day orders each stream's parcels in time (groups stay put).
    moment = np.sort(group + _arrival_hours(model, rng, n) / 24.0)
    stream = group // n_days
    time = (first_day + group % n_days) + (moment - group)

    size = np.searchsorted(np.cumsum(model.size_mix), rng.random(n), side="right")
    size = np.minimum(size, len(model.size_mix) - 1)
    departure = _departures(model, time, sample_collection_hours(model.dwell, rng, n))

    position = np.arange(n) - np.repeat(np.cumsum(per_stream) - per_stream, per_stream)
    steps = int(per_stream.max()) if n else 0
    batch = ArrivalBatch(
        time=np.full((steps, streams), -np.inf),
        size=np.zeros((steps, streams), dtype=np.intp),
        departure=np.zeros((steps, streams)),
    )
    batch.time[position, stream] = time
    batch.size[position, stream] = size
    batch.departure[position, stream] = departure
    return batch


def _arrival_hours(model: DemandModel, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """Hours of day: a courier window picked by share, then uniform inside it."""
    window = np.searchsorted(np.cumsum(model.window_share), rng.random(n), side="right")
    window = np.minimum(window, len(model.window_share) - 1)
    start = model.window_start_hours[window]
    return start + rng.random(n) * (model.window_end_hours[window] - start)


def _departures(
    model: DemandModel, time: NDArray[np.float64], collection_hours: NDArray[np.float64]
) -> NDArray[np.float64]:
    """When each compartment frees: at collection, or once a courier clears the expired parcel."""
    departure = time + collection_hours / 24.0
    if model.deadline_hours is None:
        return departure
    expired = collection_hours > model.deadline_hours
    deadline = time[expired] + model.deadline_hours / 24.0
    if model.clearance_delay_hours is not None:
        departure[expired] = deadline + model.clearance_delay_hours / 24.0
        return departure
    # The next courier window start at or after the deadline (the first one tomorrow if none today).
    starts = np.unique(model.window_start_hours)
    starts = np.append(starts, starts[0] + 24.0)
    day = np.floor(deadline)
    next_start = starts[np.searchsorted(starts, (deadline - day) * 24.0, side="left")]
    departure[expired] = day + next_start / 24.0
    return departure


def mean_dwell_days(model: DemandModel, rng: np.random.Generator, n: int = 200_000) -> float:
    """Monte Carlo mean compartment holding time in days (collection or expiry plus clearance)."""
    time = _arrival_hours(model, rng, n) / 24.0
    return float(
        np.mean(_departures(model, time, sample_collection_hours(model.dwell, rng, n)) - time)
    )
