"""Collection-time distributions: how long after deposit a recipient collects a parcel.

Times are in hours and ignore the dwell deadline; ``arrivals.py`` applies expiry.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from openlocker.planning.capacity.scenario import (
    Dwell,
    ExponentialDwell,
    HistogramDwell,
    LognormalDwell,
)


def lognormal_parameters(within_24h: float, mean_hours: float) -> tuple[float, float]:
    """The lognormal (mu, sigma) of log-hours with P(T <= 24 h) = ``within_24h`` and E[T] = mean.

    From ln 24 = mu + z sigma (z the normal quantile of ``within_24h``) and
    ln mean = mu + sigma²/2: sigma = z + sqrt(z² + 2 ln(mean / 24)). Raises ``ValueError``
    when no lognormal has both figures.
    """
    z = NormalDist().inv_cdf(within_24h)
    discriminant = z * z + 2.0 * math.log(mean_hours / 24.0)
    if discriminant < 0 or z + math.sqrt(discriminant) <= 0:
        raise ValueError(
            f"no lognormal has {within_24h:.0%} within 24 h and a mean of {mean_hours} h"
        )
    sigma = z + math.sqrt(discriminant)
    return math.log(mean_hours) - sigma * sigma / 2.0, sigma


def sample_collection_hours(dwell: Dwell, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
    """``n`` independent collection times in hours drawn from ``dwell``."""
    if isinstance(dwell, LognormalDwell):
        mu, sigma = lognormal_parameters(dwell.within_24h, dwell.mean_hours)
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
