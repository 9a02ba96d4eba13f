"""The PyVRP wrapper: a day's stops to routes, and VRPLIB instances to a cost.

Costs go to the solver as integers in millionths of a currency unit (per metre, per second),
so it minimises what the carrier pays; distances are whole metres and durations whole seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvrp
import vrplib  # type: ignore[import-untyped]
from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria, StoppingCriterion

from openlocker.planning.routes.limits import DEFAULT_TIME_LIMIT_S
from openlocker.planning.routes.plan import DayPlan, Network, PlannedRoute, Stop
from openlocker.planning.routes.scenario import Scenario, ScenarioError

Progress = Callable[[float], None]
"""Called during a solve with the share of the time limit used, 0 to 1."""

_MICRO = 1_000_000
VEHICLE_PENALTY_HOURS = 1.0
"""The solver charges each vehicle it uses this many driver hours, so that among plans of
nearly equal cost it prefers fewer vans; reported costs do not include it."""


class NoFeasiblePlan(Exception):
    """The solver found no plan that respects capacities, shifts and time windows."""


@dataclass(frozen=True)
class Search:
    """How long the solver searches, and its seed.

    ``max_iterations`` stops it earlier after that many iterations, which makes a result
    the same on any machine; a time limit alone depends on the machine's speed.
    """

    time_limit: float = DEFAULT_TIME_LIMIT_S
    max_iterations: int | None = None
    seed: int = 0

    def run(self, data: pyvrp.ProblemData, progress: Progress | None) -> pyvrp.Result:
        stop: StoppingCriterion = MaxRuntime(self.time_limit)
        if self.max_iterations is not None:
            stop = MultipleCriteria([stop, MaxIterations(self.max_iterations)])
        params = pyvrp.SolveParams()
        if progress is not None:
            callbacks = _ReportProgress(progress, self)
            params = pyvrp.SolveParams(ils=pyvrp.IteratedLocalSearchParams(callbacks=callbacks))
        return pyvrp.solve(data, stop, seed=self.seed, display=False, params=params)


class _ReportProgress(pyvrp.IteratedLocalSearchCallbacks):
    def __init__(self, report: Progress, search: Search) -> None:
        self._report = report
        self._search = search
        self._start = time.perf_counter()
        self._last = 0.0
        self._iterations = 0

    def on_start(self, ils: pyvrp.IteratedLocalSearch) -> None:
        self._start = time.perf_counter()

    def on_iteration(self, *_: object) -> None:
        self._iterations += 1
        now = time.perf_counter()
        if now - self._last >= 0.1:  # redrawing a bar every iteration would cost search time
            self._last = now
            share = (now - self._start) / self._search.time_limit
            if self._search.max_iterations:
                share = max(share, self._iterations / self._search.max_iterations)
            self._report(min(share, 1.0))


def solve_day(
    stops: Sequence[Stop],
    network: Network,
    scenario: Scenario,
    *,
    search: Search,
    progress: Progress | None = None,
) -> DayPlan:
    """Route ``stops`` from the depot with the scenario's fleet; raises ``NoFeasiblePlan``."""
    if not stops:
        return DayPlan(stops=(), routes=())
    used = sorted({0, *(s.location for s in stops)})
    local = {location: i for i, location in enumerate(used)}
    distance = np.rint(network.distance_m[np.ix_(used, used)]).astype(np.int64)
    duration = np.rint(distance / (scenario.speed_kmh / 3.6)).astype(np.int64)
    opens = scenario.depot.opens_s
    clients = []
    for stop in stops:
        early, late = 0, np.iinfo(np.int64).max
        if stop.window_s is not None:
            if stop.window_s[1] <= opens:
                raise ScenarioError(
                    f"delivery {stop.parcels[0]}: its window closes before the depot opens"
                )
            early, late = max(stop.window_s[0] - opens, 0), stop.window_s[1] - opens
        clients.append(
            pyvrp.Client(
                location=local[stop.location],
                delivery=[stop.load],
                service_duration=stop.service_s,
                tw_early=early,
                tw_late=late,
                name=stop.parcels[0],
            )
        )
    vehicle_types = [
        pyvrp.VehicleType(
            num_available=v.count,
            capacity=[v.capacity],
            shift_duration=round(v.shift_hours * 3600),
            unit_distance_cost=max(round(v.cost_per_km * _MICRO / 1000), 1),
            unit_duration_cost=round(v.cost_per_hour * _MICRO / 3600),
            fixed_cost=round((v.fixed_cost + VEHICLE_PENALTY_HOURS * v.cost_per_hour) * _MICRO),
            name=v.name,
        )
        for v in scenario.vehicles
    ]
    locations = [pyvrp.Location(x=network.points[i].lon, y=network.points[i].lat) for i in used]
    depots = [pyvrp.Depot(location=0)]
    # PyVRP's stub spells the matrix type ndarray[int], which no real array matches.
    data = pyvrp.ProblemData(locations, clients, depots, vehicle_types, [distance], [duration])  # type: ignore[list-item]
    result = search.run(data, progress)
    if not result.is_feasible():
        raise NoFeasiblePlan(
            f"no plan delivers all {len(stops)} stops with {data.num_vehicles} vehicles within "
            f"their capacity and shift{' and the time windows' if data.has_time_windows() else ''}"
        )
    routes = tuple(
        PlannedRoute(
            vehicle_type=route.vehicle_type(),
            stops=tuple(a.idx for a in route.schedule() if a.is_client()),
            distance_m=float(route.distance()),
            duration_s=float(route.duration()),
        )
        for route in result.best.routes()
    )
    return DayPlan(stops=tuple(stops), routes=routes)


@dataclass(frozen=True)
class VrplibResult:
    instance: str
    cost: float
    routes: int
    best_known: float | None
    """From a VRPLIB ``.sol`` file beside the instance, when there is one."""

    @property
    def gap_pct(self) -> float | None:
        if self.best_known is None or self.best_known == 0:
            return None
        return 100.0 * (self.cost - self.best_known) / self.best_known


def solve_vrplib(
    path: Path,
    *,
    search: Search,
    progress: Progress | None = None,
) -> VrplibResult:
    """Solve a VRPLIB CVRP instance with distances rounded to integers, as CVRPLIB does."""
    try:
        data = pyvrp.read(path, round_func="round")
    except FileNotFoundError:
        raise ScenarioError(f"no such VRPLIB file: {path}") from None
    except (ValueError, KeyError, IndexError) as exc:
        raise ScenarioError(f"{path}: not a VRPLIB instance PyVRP can read: {exc}") from exc
    result = search.run(data, progress)
    if not result.is_feasible():
        raise NoFeasiblePlan(f"{path.name}: no feasible solution found")
    solution_file = path.with_suffix(".sol")
    best_known = None
    if solution_file.exists():
        best_known = float(vrplib.read_solution(str(solution_file))["cost"])
    return VrplibResult(
        instance=path.stem,
        cost=float(result.cost()),
        routes=result.best.num_routes(),
        best_known=best_known,
    )
