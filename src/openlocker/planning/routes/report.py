"""How a comparison is shown: a JSON document, a terminal table, and a map of both plans."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from openlocker.planning.routes.plan import COMPARED, DayPlan, Network
from openlocker.planning.routes.service import Comparison
from openlocker.planning.routes.solver import Search

LABELS = {
    "vehicles": "Vehicles",
    "stops": "Stops",
    "km": "Kilometres",
    "driver_hours": "Driver hours",
    "co2_kg": "CO2 (kg)",
    "cost": "Cost",
    "failed_attempts": "Failed attempts",
    "redeliveries": "Re-deliveries",
}


def search_settings(search: Search) -> dict[str, Any]:
    """The solver settings a result was found with, to print beside it."""
    return {
        "time_limit_s": search.time_limit,
        "max_iterations": search.max_iterations,
        "seed": search.seed,
    }


def comparison_document(comparison: Comparison, search: Search) -> dict[str, Any]:
    """The machine-readable comparison: one object per scenario, savings in percent."""
    assignment = comparison.assignment
    return {
        "doorstep": _rounded(asdict(comparison.doorstep.kpis)),
        "lockers": _rounded(asdict(comparison.lockers.kpis)),
        "savings_pct": {
            k: None if v is None else round(v, 1) for k, v in comparison.savings_pct.items()
        },
        "lockers_assignment": {
            "accepting": comparison.accepting,
            "placed": len(assignment.locker_of),
            "out_of_reach": assignment.out_of_reach,
            "no_room": assignment.no_room,
        },
        **search_settings(search),
    }


def _rounded(kpis: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in kpis.items()}


def kpi_table(comparison: Comparison) -> Table:
    """Doorstep against lockers, side by side, with the saving of each."""
    table = Table(title="Doorstep delivery against locker consolidation")
    table.add_column("")
    table.add_column("Doorstep", justify="right")
    table.add_column("Lockers", justify="right")
    table.add_column("Saving", justify="right")
    door, lockers = comparison.doorstep.kpis, comparison.lockers.kpis
    table.add_row(
        "Parcels (to door / to locker)",
        f"{door.parcels}",
        f"{lockers.doorstep_parcels} / {lockers.locker_parcels}",
        "",
    )
    for name in COMPARED:
        saving = comparison.savings_pct[name]
        table.add_row(
            LABELS[name],
            _number(getattr(door, name)),
            _number(getattr(lockers, name)),
            "-" if saving is None else f"{saving:.1f}%",
        )
    return table


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def write_figure(comparison: Comparison, path: Path) -> None:
    """A PNG of both day plans on one scale: routes as lines, lockers as squares."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(14, 7), sharex=True, sharey=True)
    # A degree of longitude is shorter than one of latitude away from the equator.
    aspect = 1 / math.cos(math.radians(comparison.network.points[0].lat))
    colours = matplotlib.colormaps["tab20"]
    for ax, (title, outcome) in zip(
        axes, (("Doorstep", comparison.doorstep), ("Lockers", comparison.lockers)), strict=True
    ):
        _draw_plan(ax, outcome.plan, comparison.network, colours)
        kpis = outcome.kpis
        ax.set_title(f"{title}: {kpis.vehicles} vehicles, {kpis.km:,.0f} km, {kpis.stops:,} stops")
        ax.set_xlabel("longitude")
        ax.set_aspect(aspect, adjustable="box")
    axes[0].set_ylabel("latitude")
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _draw_plan(ax: Any, plan: DayPlan, network: Network, colours: Any) -> None:
    depot = network.points[0]
    for k, route in enumerate(plan.routes):
        path = [depot, *(network.points[plan.stops[i].location] for i in route.stops), depot]
        ax.plot([p.lon for p in path], [p.lat for p in path], lw=0.7, color=colours(k % 20))
    doors = [network.points[s.location] for s in plan.stops if s.kind == "doorstep"]
    lockers = [network.points[s.location] for s in plan.stops if s.kind == "locker"]
    ax.scatter([p.lon for p in doors], [p.lat for p in doors], s=3, c="grey", label="doorstep")
    if lockers:
        ax.scatter(
            [p.lon for p in lockers],
            [p.lat for p in lockers],
            s=40,
            marker="s",
            c="tab:red",
            label="locker",
        )
    ax.scatter([depot.lon], [depot.lat], s=120, marker="*", c="black", label="depot")
    ax.legend(loc="upper right", fontsize="small")
