"""The routes comparison: one day delivered to the door, and the same day through lockers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from openlocker.planning.routes.assignment import (
    LockerAssignment,
    assign_to_lockers,
    draw_attempts,
    draw_locker_choices,
)
from openlocker.planning.routes.plan import (
    DayPlan,
    Network,
    ScenarioKpis,
    Stop,
    build_network,
    check_fleet,
    doorstep_stop,
    locker_stops,
    next_day_work,
    savings_pct,
    scenario_kpis,
)
from openlocker.planning.routes.scenario import Scenario, ScenarioError
from openlocker.planning.routes.solver import Search, solve_day

SCENARIOS = ("doorstep", "lockers")
DEFAULT_SEARCH = Search()

ScenarioProgress = Callable[[str, float], None]
"""Called with a scenario name and the share of its time limit used."""


@dataclass(frozen=True)
class Outcome:
    plan: DayPlan
    kpis: ScenarioKpis


@dataclass(frozen=True)
class Comparison:
    network: Network
    accepting: int
    """Recipients who accept a locker."""
    assignment: LockerAssignment
    doorstep: Outcome
    lockers: Outcome
    savings_pct: dict[str, float | None]


def compare_routes(
    scenario: Scenario,
    *,
    search: Search = DEFAULT_SEARCH,
    progress: ScenarioProgress | None = None,
) -> Comparison:
    """Plan the day both ways with the same recipients at home and the same seed.

    Each scenario's day plan gets its own ``search``. Raises ``ScenarioError``
    when no fleet could carry the day and ``NoFeasiblePlan`` when the solver finds no plan.
    """
    if not scenario.deliveries:
        raise ScenarioError("the scenario has no deliveries to plan")
    network = build_network(scenario)
    rng = np.random.default_rng(search.seed)
    accepting = draw_locker_choices(scenario, rng)
    draws = draw_attempts(scenario.deliveries, rng)
    assignment = assign_to_lockers(
        scenario.deliveries,
        accepting,
        scenario.lockers,
        scenario.sizes,
        scenario.max_walk_m,
        scenario.circuity,
    )

    doorstep_stops = [doorstep_stop(d, network, scenario) for d in scenario.deliveries]
    consolidated: list[Stop] = []
    for site in scenario.lockers:
        parcels = [d for d in scenario.deliveries if assignment.locker_of.get(d.id) == site.id]
        consolidated += locker_stops(site, parcels, network, scenario)
    consolidated += [s for s in doorstep_stops if s.parcels[0] not in assignment.locker_of]
    check_fleet(doorstep_stops, scenario)

    outcomes = {}
    no_lockers: dict[str, str] = {}
    for name, stops, in_lockers, free in (
        ("doorstep", doorstep_stops, no_lockers, {s.id: dict(s.free) for s in scenario.lockers}),
        (
            "lockers",
            consolidated,
            assignment.locker_of,
            {k: dict(v) for k, v in assignment.free_after.items()},
        ),
    ):
        report = None if progress is None else _bind(progress, name)
        plan = solve_day(stops, network, scenario, search=search, progress=report)
        # Only doorstep attempts fail; a parcel in a locker is delivered.
        failed = [
            d
            for d in scenario.deliveries
            if d.id not in in_lockers and draws.fails_first(d.id, scenario.failure_rate)
        ]
        retries = next_day_work(failed, plan, network, scenario, draws, free)
        outcomes[name] = Outcome(plan, scenario_kpis(plan, scenario, len(failed), retries))
    return Comparison(
        network=network,
        accepting=len(accepting),
        assignment=assignment,
        doorstep=outcomes["doorstep"],
        lockers=outcomes["lockers"],
        savings_pct=savings_pct(outcomes["doorstep"].kpis, outcomes["lockers"].kpis),
    )


def _bind(progress: ScenarioProgress, name: str) -> Callable[[float], None]:
    return lambda share: progress(name, share)
