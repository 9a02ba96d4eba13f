"""`openlocker plan routes`: doorstep delivery against locker consolidation, or a VRPLIB check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from openlocker.planning.routes.limits import DEFAULT_TIME_LIMIT_S
from openlocker.planning.routes.scenario import Scenario, ScenarioError, load_scenario

if TYPE_CHECKING:
    from openlocker.planning.routes.service import ScenarioProgress
    from openlocker.planning.routes.solver import Search, VrplibResult

# The solver, NumPy and matplotlib load inside the commands: every other `openlocker`
# command (serve, seed, audit …) starts without them.

BAD_INPUT = 2


def routes_command(
    scenario_file: Annotated[
        Path | None, typer.Argument(help="Scenario JSON (depot, vehicles, deliveries, lockers).")
    ] = None,
    deliveries: Annotated[
        Path | None,
        typer.Option(
            help="Deliveries CSV (id,lat,lon,size[,window_start,window_end,accepts_locker])."
        ),
    ] = None,
    synthetic: Annotated[
        bool, typer.Option(help="Plan a generated city instead of a file.")
    ] = False,
    parcels: Annotated[int, typer.Option(help="Parcels in the synthetic city.")] = 500,
    lockers: Annotated[int, typer.Option(help="Locker sites in the synthetic city.")] = 10,
    from_db: Annotated[
        bool, typer.Option(help="Plan a carrier's announced parcels of one day.")
    ] = False,
    carrier: Annotated[
        str | None, typer.Option(help="Carrier organization id (with --from-db).")
    ] = None,
    day: Annotated[
        str | None, typer.Option("--date", help="Announcement day YYYY-MM-DD (with --from-db).")
    ] = None,
    fleet: Annotated[
        Path | None, typer.Option(help="JSON with depot and vehicles (with --from-db).")
    ] = None,
    road_matrix: Annotated[
        Path | None,
        typer.Option(help="CSV of road km between ids, instead of estimated distances."),
    ] = None,
    vrplib_file: Annotated[
        Path | None,
        typer.Option("--vrplib", help="Solve a VRPLIB CVRP instance and print its cost."),
    ] = None,
    time_limit: Annotated[
        float, typer.Option(help="Seconds of solver search per route plan.", min=0.1)
    ] = DEFAULT_TIME_LIMIT_S,
    max_iterations: Annotated[
        int | None,
        typer.Option(
            help="Also stop each search after this many iterations (reproducible).", min=1
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for generated data, choices and the solver.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    figure: Annotated[
        Path | None, typer.Option(help="Write a PNG map of both route plans.")
    ] = None,
) -> None:
    """Compare doorstep delivery with locker-consolidated delivery for one day's parcels."""
    from openlocker.planning.routes.report import comparison_document, kpi_table, write_figure
    from openlocker.planning.routes.service import SCENARIOS, compare_routes
    from openlocker.planning.routes.solver import NoFeasiblePlan, Search, solve_vrplib

    console = Console()
    errors = Console(stderr=True)
    search = Search(time_limit=time_limit, max_iterations=max_iterations, seed=seed)
    try:
        if vrplib_file is not None:
            with _progress(errors, ("solve",), enabled=not as_json) as report:
                result = solve_vrplib(
                    vrplib_file, search=search, progress=lambda share: report("solve", share)
                )
            _print_vrplib(result, search, console, as_json=as_json)
            return
        scenario = _scenario(
            scenario_file,
            deliveries,
            synthetic,
            parcels,
            lockers,
            seed,
            from_db,
            carrier,
            day,
            fleet,
        )
        if road_matrix is not None:
            scenario = replace(scenario, road_matrix=road_matrix)
        with _progress(errors, SCENARIOS, enabled=not as_json) as report:
            comparison = compare_routes(scenario, search=search, progress=report)
    except ScenarioError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(BAD_INPUT) from None
    except NoFeasiblePlan as exc:
        errors.print(f"[red]no plan:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if figure is not None:
        try:
            write_figure(comparison, figure)
        except OSError as exc:
            errors.print(
                f"[red]error:[/red] cannot write {figure}: {exc.strerror}", highlight=False
            )
            raise typer.Exit(BAD_INPUT) from None
    if as_json:
        typer.echo(json.dumps(comparison_document(comparison, search)))
        return
    console.print(kpi_table(comparison))
    if figure is not None:
        console.print(f"Map of both plans: {figure}")


def _print_vrplib(result: VrplibResult, search: Search, console: Console, *, as_json: bool) -> None:
    from openlocker.planning.routes.report import search_settings

    if as_json:
        document = {
            "instance": result.instance,
            "cost": result.cost,
            "routes": result.routes,
            "best_known": result.best_known,
            "gap_pct": None if result.gap_pct is None else round(result.gap_pct, 3),
            **search_settings(search),
        }
        typer.echo(json.dumps(document))
        return
    known = ""
    if result.gap_pct is not None:
        known = f" (best known {result.best_known:g}, gap {result.gap_pct:.2f}%)"
    console.print(f"{result.instance}: cost {result.cost:g} with {result.routes} routes{known}")


def _scenario(
    scenario_file: Path | None,
    deliveries: Path | None,
    synthetic: bool,
    parcels: int,
    lockers: int,
    seed: int,
    from_db: bool,
    carrier: str | None,
    day: str | None,
    fleet: Path | None,
) -> Scenario:
    sources = sum([scenario_file is not None, synthetic, from_db])
    if sources != 1:
        raise ScenarioError(
            "give exactly one of: a scenario file, --synthetic, --from-db (or --vrplib)"
        )
    if synthetic:
        from openlocker.planning.routes.synthetic import synthetic_scenario

        return synthetic_scenario(parcels, lockers, seed)
    if from_db:
        if carrier is None or day is None:
            raise ScenarioError("--from-db needs --carrier ORG_ID and --date YYYY-MM-DD")
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise ScenarioError(f"--date must be YYYY-MM-DD, got {day!r}") from None
        # The server's tables load only when a plan needs them.
        from openlocker.planning.routes.from_db import scenario_from_db

        db_day = scenario_from_db(carrier, when, fleet)
        if db_day.left_out:
            Console(stderr=True).print(
                f"note: {db_day.left_out} parcel(s) without recipient lat/lon left out"
            )
        return db_day.scenario
    assert scenario_file is not None
    return load_scenario(scenario_file, deliveries)


@contextmanager
def _progress(
    console: Console, names: tuple[str, ...], *, enabled: bool
) -> Iterator[ScenarioProgress]:
    """Progress bars on stderr while solving, when it is a terminal."""
    if not enabled or not console.is_terminal:
        yield lambda _name, _share: None
        return
    with Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bars:
        tasks = {name: bars.add_task(name, total=1.0, start=False) for name in names}

        def report(name: str, share: float) -> None:
            bars.start_task(tasks[name])
            bars.update(tasks[name], completed=share)

        yield report
