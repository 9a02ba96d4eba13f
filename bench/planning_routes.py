"""Route planner benchmark: the 2,000-parcel comparison's wall time, and the gap to the best
known cost on four CVRPLIB X instances, all at the CLI's default time limit.

Run from the repository root: ``.venv/bin/python bench/planning_routes.py``. The X instances
are read from ``shared/data/vrp/`` beside the repository.
"""

from __future__ import annotations

import time
from pathlib import Path

from openlocker.planning.routes.service import compare_routes
from openlocker.planning.routes.solver import DEFAULT_TIME_LIMIT_S, Search, solve_vrplib
from openlocker.planning.routes.synthetic import synthetic_scenario

VRP_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/vrp"
INSTANCES = ("X-n101-k25", "X-n106-k14", "X-n110-k13", "X-n120-k6")
PARCELS, LOCKERS, SEED = 2000, 20, 0
BUDGET_S = 60.0


def main() -> None:
    print(f"default time limit: {DEFAULT_TIME_LIMIT_S:g} s per route plan")
    started = time.perf_counter()
    scenario = synthetic_scenario(PARCELS, LOCKERS, SEED)
    comparison = compare_routes(scenario, search=Search(seed=SEED))
    wall = time.perf_counter() - started
    verdict = "ok" if wall < BUDGET_S else "OVER BUDGET"
    print(f"\n{PARCELS} parcels, {LOCKERS} lockers (seed {SEED}): {wall:.1f} s wall [{verdict}]")
    door, lockers = comparison.doorstep.kpis, comparison.lockers.kpis
    print(f"  {'':16}{'doorstep':>10}{'lockers':>10}{'saving':>9}")
    for name in ("vehicles", "stops", "km", "driver_hours", "co2_kg", "cost", "failed_attempts"):
        saving = comparison.savings_pct[name]
        shown = "-" if saving is None else f"{saving:.1f}%"
        print(f"  {name:16}{getattr(door, name):>10.1f}{getattr(lockers, name):>10.1f}{shown:>9}")
    print(f"  parcels in lockers: {lockers.locker_parcels} of {lockers.parcels}")

    print(f"\nCVRPLIB X instances from {VRP_DIR.name}/ (seed {SEED}):")
    worst = 0.0
    for name in INSTANCES:
        started = time.perf_counter()
        result = solve_vrplib(VRP_DIR / f"{name}.vrp", search=Search(seed=SEED))
        seconds = time.perf_counter() - started
        gap = result.gap_pct
        assert gap is not None, f"{name}: no .sol with the best known cost"
        worst = max(worst, gap)
        print(
            f"  {name}: cost {result.cost:g}, best known {result.best_known:g}, "
            f"gap {gap:.2f}% ({seconds:.1f} s)"
        )
    print(f"  worst gap {worst:.2f}% [{'ok' if worst <= 1.0 else 'OVER 1%'}]")


if __name__ == "__main__":
    main()
