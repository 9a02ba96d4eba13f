"""Collection-time distributions: how long after deposit a recipient collects a parcel.

Times are in hours and ignore the dwell deadline; ``arrivals.py`` applies expiry.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from openlocker.planning.capacity.scenario import (
    Dwell,
    ExponentialDwell,
    HistogramDwell,
    LognormalDwell,
)


def sample_collection_hours(dwell: Dwell, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """``n`` independent collection times in hours drawn from ``dwell``."""
    if isinstance(dwell, LognormalDwell):
        mu, sigma = dwell.parameters()
        return rng.lognormal(mu, sigma, n)
    if isinstance(dwell, ExponentialDwell):
        return rng.exponential(dwell.mean_hours, n)
    return _sample_histogram(dwell, rng, n)


def _sample_histogram(
    dwell: HistogramDwell, rng: np.random.Generator, n: int
) -> NDArray[np.float64]:
    # Piecewise-uniform inverse CDF: pick a bin by its count, then a point inside it.
    edges = np.asarray(dwell.edges_hours, dtype=np.float64)
    cumulative = np.cumsum(np.asarray(dwell.counts, dtype=np.float64))
    bins = np.searchsorted(cumulative, rng.random(n) * cumulative[-1], side="right")
    bins = np.minimum(bins, len(cumulative) - 1)
    hours: NDArray[np.float64] = edges[bins] + rng.random(n) * (edges[bins + 1] - edges[bins])
    return hours
