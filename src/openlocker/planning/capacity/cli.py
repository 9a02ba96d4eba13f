"""`openlocker plan capacity`: compartments per size that keep peak-day overflow under target."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from openlocker.core.config import get_settings
from openlocker.planning.capacity.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    read_document,
)

if TYPE_CHECKING:
    from openlocker.planning.capacity.evaluation import Estimate
    from openlocker.planning.capacity.plan import CapacityPlan

# SciPy, matplotlib and the simulation load inside the command: every other `openlocker`
# command (serve, seed, audit …) starts without them.


def capacity_command(
    scenario_path: Annotated[
        Path | None,
        typer.Argument(
            metavar="SCENARIO.json",
            help="The scenario (format in docs/planning.md). With --from-db, its settings "
            "(peaks, target, horizon…) apply and the measured demand replaces its own.",
            show_default=False,
        ),
    ] = None,
    from_db: Annotated[
        str | None,
        typer.Option(
            "--from-db",
            metavar="SITE",
            help="Measure arrivals, size mix, dwell times and compartments from this site's "
            "history in the database (OPENLOCKER_DATABASE_URL).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the occupancy and overflow PNG plots.")
    ] = Path("var/plans"),
) -> None:
    """Simulate a site's compartments through the season and recommend the smallest mix
    (by front area or cost) whose peak-day overflow stays under the target."""
    from openlocker.planning.capacity.plan import plan_as_json, plan_capacity
    from openlocker.planning.capacity.plots import write_plots

    try:
        scenario = _scenario(scenario_path, from_db)
        plan = plan_capacity(scenario)
    except ScenarioError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    plots = write_plots(plan, out)
    if json_output:
        document = plan_as_json(plan)
        document["plots"] = [str(path) for path in plots]
        typer.echo(json.dumps(document))
        return
    _print_plan(plan, plots)


def _scenario(path: Path | None, site_id: str | None) -> Scenario:
    if site_id is None:
        if path is None:
            raise ScenarioError("give a SCENARIO.json file, or --from-db SITE")
        return load_scenario(path)
    base = read_document(path) if path is not None else {}
    if not isinstance(base, dict):
        raise ScenarioError(f"{path} must hold a JSON object")
    from openlocker.planning.capacity.history import scenario_from_db

    return scenario_from_db(get_settings().database_url, site_id, base)


def _print_plan(plan: CapacityPlan, plots: list[Path]) -> None:
    scenario = plan.scenario
    current = plan.current
    recommended = plan.recommendation.evaluation
    console = Console()
    table = Table(
        title=f"{scenario.name}: {scenario.days} days from {scenario.start_date}, "
        f"{scenario.replications} replications, target {_percent(scenario.target_overflow)}",
    )
    table.add_column("size")
    table.add_column("compartments", justify="right")
    table.add_column("overflow (95% CI)", justify="right")
    table.add_column("recommended", justify="right")
    table.add_column("overflow (95% CI)", justify="right")
    rows = zip(
        scenario.codes,
        current.counts,
        current.overflow_rate_by_size,
        recommended.counts,
        recommended.overflow_rate_by_size,
        strict=True,
    )
    for code, count, rate, advised, advised_rate in rows:
        table.add_row(code, str(count), _interval(rate), str(advised), _interval(advised_rate))
    table.add_section()
    table.add_row(
        "all",
        str(sum(current.counts)),
        _interval(current.overflow_rate),
        str(sum(recommended.counts)),
        _interval(recommended.overflow_rate),
    )
    peak_days = f"{len(plan.peak_days)} days"
    table.add_row(
        "peak days",
        peak_days,
        _interval(current.peak_day_overflow_rate),
        peak_days,
        _interval(recommended.peak_day_overflow_rate),
    )
    table.add_row(
        "worst day",
        plan.dates[current.worst_day].isoformat(),
        _interval(current.worst_day_overflow_rate),
        plan.dates[recommended.worst_day].isoformat(),
        _interval(recommended.worst_day_overflow_rate),
    )
    console.print(table)
    first, last = plan.dates[plan.peak_days[0]], plan.dates[plan.peak_days[-1]]
    console.print(
        f"Peak days: the {len(plan.peak_days)} days of highest demand, {first} to {last}."
    )
    weights = scenario.unit_weights()
    unit = "m² front area" if scenario.objective == "area" else "cost"
    current_weight = sum(w * n for w, n in zip(weights, current.counts, strict=True))
    console.print(
        f"Recommended mix: {plan.recommendation.weight:.2f} {unit} "
        f"(site now: {current_weight:.2f}); peak-day overflow "
        f"{'meets' if plan.recommendation.meets_target else 'does NOT meet'} the target on "
        f"fresh replications; {plan.recommendation.mixes_simulated} mixes simulated."
    )
    console.print(f"Mean compartment holding time: {plan.mean_dwell_hours:.1f} h")
    for path in plots:
        console.print(f"Plot: {path}")


def _percent(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def _interval(estimate: Estimate) -> str:
    return f"{_percent(estimate.value)} ({estimate.low * 100:.2f}-{estimate.high * 100:.2f})"
