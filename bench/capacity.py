"""Benchmark `openlocker plan capacity`'s simulation core on a whole network.

Runs 1,000 sites x 100 compartments through a year at a realistic load (about 20 million
parcels), then a scaling table over sites and days. Prints parcels simulated, wall time,
parcels per second and the process's peak resident memory.

    .venv/bin/python bench/capacity.py [--sites 1000] [--days 365] [--repeat 3] [--no-scaling]

The machine's load average is printed before and after: other processes on a shared
2-core machine slow every figure down.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np

from openlocker.planning.capacity.arrivals import demand_model
from openlocker.planning.capacity.scenario import parse_scenario
from openlocker.planning.capacity.simulation import simulate

#: Each site: S 40, M 30, L 20, XL 10 compartments.
LAYOUT = (40, 30, 20, 10)
#: Sites range from 40 to 70 parcels a day on an ordinary week (mean 55).
VOLUME_RANGE = (40.0, 70.0)


def run(sites: int, days: int, seed: int = 1) -> tuple[int, float]:
    """Simulate ``sites`` sites for ``days`` days; return (parcels simulated, wall seconds)."""
    scenario = parse_scenario(
        {
            "start_date": "2026-01-05",
            # Warm-up days (1 to 4 January) are simulated and counted like the rest.
            "days": days - 4,
            "warmup_days": 4,
            "compartments": dict(zip(("S", "M", "L", "XL"), LAYOUT, strict=True)),
            "demand": {
                "parcels_per_day": 55,
                "weekly_profile": [1.2, 1.1, 1.0, 1.0, 1.3, 0.8, 0.6],
                "peaks": [{"start": "2026-11-23", "end": "2026-12-24", "multiplier": 1.6}],
            },
        }
    )
    model = demand_model(scenario)
    volumes = np.random.default_rng(seed).uniform(*VOLUME_RANGE, sites)
    layout = np.tile(np.asarray(LAYOUT, dtype=np.int64), (sites, 1))
    started = time.perf_counter()
    result = simulate(layout, volumes, model, upsizing=True, seed=seed)
    elapsed = time.perf_counter() - started
    return int(result.arrivals.sum()), elapsed


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    run(10, 14)  # warm imports and caches outside the measurement
    runs = [run(args.sites, args.days) for _ in range(args.repeat)]
    parcels = runs[0][0]
    times = [elapsed for _, elapsed in runs]
    best, median = min(times), statistics.median(times)
    print(f"network: {args.sites} sites x {sum(LAYOUT)} compartments x {args.days} days")
    print(f"  parcels simulated  {parcels:,}")
    print(f"  wall time          {', '.join(f'{t:.1f}' for t in times)} s")
    print(f"                     best {best:.1f} s, median {median:.1f} s")
    print(f"  parcels per second {parcels / best:,.0f} (best), {parcels / median:,.0f} (median)")
    print(f"  peak memory (RSS)  {peak_rss_mib():.0f} MiB")
    if not args.no_scaling:
        scaling()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def scaling() -> None:
    """Wall time as the network grows in sites (one year) and in days (1,000 sites)."""
    print("\nscaling (wall seconds; parcels per second)")
    print(f"{'sites':>6} {'days':>5} {'parcels':>12} {'seconds':>8} {'parcels/s':>11}")
    for sites, days in [
        (100, 365),
        (250, 365),
        (500, 365),
        (2000, 365),
        (1000, 30),
        (1000, 91),
        (1000, 182),
        (1000, 730),
    ]:
        parcels, elapsed = run(sites, days)
        print(f"{sites:>6} {days:>5} {parcels:>12,} {elapsed:>8.2f} {parcels / elapsed:>11,.0f}")


if __name__ == "__main__":
    main()
