"""PNG plots of a capacity plan: occupancy through the season by size, and overflow per day."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from openlocker.planning.capacity.evaluation import MixEvaluation
from openlocker.planning.capacity.plan import CapacityPlan


def write_plots(plan: CapacityPlan, out: Path) -> list[Path]:
    """Write ``<name>-occupancy.png`` and ``<name>-overflow.png`` into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in plan.scenario.name)
    occupancy_path = out / f"{stem}-occupancy.png"
    overflow_path = out / f"{stem}-overflow.png"
    _occupancy_plot(plan, occupancy_path)
    _overflow_plot(plan, overflow_path)
    return [occupancy_path, overflow_path]


def _occupancy_plot(plan: CapacityPlan, path: Path) -> None:
    mixes = [("current", plan.current), ("recommended", plan.recommendation.evaluation)]
    figure, axes = plt.subplots(len(mixes), 1, figsize=(11, 7), sharex=True, sharey=True)
    for axis, (label, evaluation) in zip(axes, mixes, strict=True):
        _occupancy_panel(plan, axis, label, evaluation)
    axes[-1].set_xlabel("date")
    figure.suptitle(f"{plan.scenario.name}: occupied share of compartments by size")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _occupancy_panel(plan: CapacityPlan, axis: Axes, label: str, evaluation: MixEvaluation) -> None:
    assert evaluation.occupancy is not None, "plots need an evaluation with occupancy"
    dates = np.asarray(plan.dates, dtype="datetime64[D]")
    hourly = evaluation.occupancy.reshape(len(dates), 24, -1)
    for size, (code, count) in enumerate(zip(plan.scenario.codes, evaluation.counts, strict=True)):
        if count == 0:
            continue
        mean = hourly[:, :, size].mean(axis=1) / count
        peak = hourly[:, :, size].max(axis=1) / count
        (line,) = axis.plot(dates, mean, label=f"{code} ({count})", linewidth=1.2)
        axis.fill_between(dates, mean, peak, color=line.get_color(), alpha=0.15, linewidth=0)
    axis.set_ylim(0, 1.02)
    axis.set_ylabel("occupied share")
    axis.set_title(f"{label} mix: daily mean, shaded up to the daily maximum", fontsize=9)
    axis.legend(loc="upper left", fontsize=8, ncols=4)
    axis.grid(alpha=0.3)


def _overflow_plot(plan: CapacityPlan, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(11, 4.5))
    dates = np.asarray(plan.dates, dtype="datetime64[D]")
    for label, evaluation in (
        ("current", plan.current),
        ("recommended", plan.recommendation.evaluation),
    ):
        mix = " ".join(
            f"{c}{n}" for c, n in zip(plan.scenario.codes, evaluation.counts, strict=True)
        )
        axis.plot(dates, evaluation.daily_overflow_rate * 100, label=f"{label}: {mix}", linewidth=1)
    target = plan.scenario.target_overflow * 100
    axis.axhline(target, color="black", linestyle="--", linewidth=1, label="target")
    axis.set_ylabel("overflow, % of the day's parcels")
    axis.set_xlabel("date")
    replications = plan.scenario.replications
    axis.set_title(
        f"{plan.scenario.name}: overflow per day, pooled over {replications} replications"
    )
    axis.legend(loc="upper left", fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
