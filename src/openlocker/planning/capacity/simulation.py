"""The discrete-event simulation of many locker sites at once, as arrays.

Each site is a loss system per size class: a parcel takes a free compartment of its size
(or, with upsizing, of the smallest larger size that has one) or overflows. A compartment
is represented only by the time it frees again, so one event step is a handful of array
operations over ``[sites, compartments]``: step k admits every site's k-th arrival. Sites
never interact, so each site's arrivals are processed in time order and the result is the
exact event-by-event outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from openlocker.planning.capacity.arrivals import DemandModel, generate_arrivals

#: Days of arrivals generated per batch: long enough that padding streams to the busiest
#: one wastes little, short enough that a batch of a 1,000-site network stays small.
CHUNK_DAYS = 14


@dataclass(frozen=True)
class SimulationResult:
    """Counts per site and day by requested size, and network occupancy by hour."""

    arrivals: NDArray[np.int64]  # [sites, days, sizes]
    overflow: NDArray[np.int64]  # [sites, days, sizes]
    upsized: NDArray[np.int64]  # [sites, sizes] admitted into a larger size than requested
    occupancy: NDArray[np.int64] | None  # [days * 24, sizes] parcels held at each hour, all sites


def simulate(
    layout: NDArray[np.int64],
    parcels_per_day: NDArray[np.float64],
    model: DemandModel,
    *,
    upsizing: bool,
    seed: int,
    stream_of_site: NDArray[np.intp] | None = None,
    track_occupancy: bool = True,
) -> SimulationResult:
    """Simulate ``model.days`` days at every site; all sites start empty on day 0.

    ``layout[site, size]`` is the site's compartment count per size class (smallest first).
    Site ``i`` replays arrival stream ``stream_of_site[i]`` (default: its own), whose mean
    volume is ``parcels_per_day[stream]``; the same ``seed`` gives the same streams.
    """
    sites, sizes = layout.shape
    if stream_of_site is None:
        stream_of_site = np.arange(sites)
    days = model.days
    width = layout.max(axis=0)
    column_size = np.repeat(np.arange(sizes), width)
    rank = np.arange(len(column_size)) - (np.cumsum(width) - width)[column_size]
    requested = np.arange(sizes)[:, None]
    fits = column_size[None, :] >= requested if upsizing else column_size[None, :] == requested
    # A last column that never frees and fits nothing keeps argmax defined at empty sites.
    columns = len(column_size) + 1
    busy_flat = np.full(sites * columns, np.inf)  # owns the data: reshape is always a view
    busy_until = busy_flat.reshape(sites, columns)
    busy_until[:, :-1][rank[None, :] < layout[:, column_size]] = 0.0
    eligible = np.hstack([fits, np.zeros((sizes, 1), dtype=bool)])
    column_size = np.append(column_size, 0)
    row_start = np.arange(sites) * columns
    free_flat = np.empty(sites * columns, dtype=bool)
    free = free_flat.reshape(sites, columns)
    fitting = np.empty((sites, columns), dtype=bool)

    arrivals = np.zeros((sites, days, sizes), dtype=np.int64)
    overflow = np.zeros((sites, days, sizes), dtype=np.int64)
    upsized = np.zeros((sites, sizes), dtype=np.int64)
    hours = days * 24
    occupancy_change = np.zeros((hours + 1) * sizes, dtype=np.int64) if track_occupancy else None
    rng = np.random.default_rng(seed)
    for first in range(0, days, CHUNK_DAYS):
        n_days = min(CHUNK_DAYS, days - first)
        batch = generate_arrivals(model, parcels_per_day, first, n_days, rng)
        time = batch.time[:, stream_of_site]
        size = batch.size[:, stream_of_site]
        departure = batch.departure[:, stream_of_site]
        admitted = np.empty(time.shape, dtype=bool)
        column = np.empty(time.shape, dtype=np.intp)
        for k in range(time.shape[0]):
            np.less_equal(busy_until, time[k][:, None], out=free)
            np.take(eligible, size[k], axis=0, out=fitting)
            free &= fitting
            taken = free.argmax(axis=1)
            ok = free_flat[row_start + taken]
            # Sites that found nothing write +inf into their never-free last column instead.
            busy_flat[row_start + np.where(ok, taken, columns - 1)] = np.where(
                ok, departure[k], np.inf
            )
            admitted[k] = ok
            column[k] = taken

        step, site = np.nonzero(time > -np.inf)
        # A parcel at the very end of a day can round up to the next midnight: keep its day.
        day = np.minimum(time[step, site].astype(np.int64) - first, n_days - 1)
        wanted = size[step, site]
        cell = (site * n_days + day) * sizes + wanted
        cells = sites * n_days * sizes
        shape = (sites, n_days, sizes)
        arrivals[:, first : first + n_days] += np.bincount(cell, minlength=cells).reshape(shape)
        lost = ~admitted[step, site]
        overflow[:, first : first + n_days] += np.bincount(cell[lost], minlength=cells).reshape(
            shape
        )

        kept = ~lost
        got = column_size[column[step[kept], site[kept]]]
        bigger = got > wanted[kept]
        upsized += np.bincount(
            site[kept][bigger] * sizes + wanted[kept][bigger], minlength=sites * sizes
        ).reshape(sites, sizes)
        if occupancy_change is not None:
            start = np.ceil(time[step[kept], site[kept]] * 24).astype(np.int64)
            end = np.minimum(np.ceil(departure[step[kept], site[kept]] * 24), hours).astype(
                np.int64
            )
            occupancy_change += np.bincount(start * sizes + got, minlength=len(occupancy_change))
            occupancy_change -= np.bincount(end * sizes + got, minlength=len(occupancy_change))

    occupancy = None
    if occupancy_change is not None:
        occupancy = np.cumsum(occupancy_change.reshape(hours + 1, sizes), axis=0)[:hours]
    return SimulationResult(
        arrivals=arrivals, overflow=overflow, upsized=upsized, occupancy=occupancy
    )
