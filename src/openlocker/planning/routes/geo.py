"""Distances between points: great-circle times a circuity factor, or a user's road matrix."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from openlocker.lockers.allocation import EARTH_RADIUS_M
from openlocker.planning.routes.scenario import Point, ScenarioError

__all__ = ["EARTH_RADIUS_M", "great_circle_m", "read_road_matrix_m", "road_distance_m"]

FloatMatrix = npt.NDArray[np.float64]


def great_circle_m(origins: Sequence[Point], targets: Sequence[Point]) -> FloatMatrix:
    """Haversine distances in metres, ``len(origins)`` rows by ``len(targets)`` columns."""
    lat1 = np.radians([p.lat for p in origins])[:, None]
    lon1 = np.radians([p.lon for p in origins])[:, None]
    lat2 = np.radians([p.lat for p in targets])[None, :]
    lon2 = np.radians([p.lon for p in targets])[None, :]
    half_chord = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    result: FloatMatrix = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(half_chord, 0.0, 1.0)))
    return result


def road_distance_m(points: Sequence[Point], circuity: float) -> FloatMatrix:
    """Estimated road distances in metres between every pair of ``points``."""
    return great_circle_m(points, points) * circuity


def read_road_matrix_m(path: Path, ids: Sequence[str]) -> FloatMatrix:
    """Road distances in metres between ``ids`` from a CSV of kilometres.

    The file's header row is an empty cell then the column ids; each further row is a row id
    then kilometres. It may hold more ids than needed, in any order, but must cover ``ids``.
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise ScenarioError(f"cannot read road matrix {path}: {exc.strerror}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: malformed CSV: {exc}") from exc
    if not rows:
        raise ScenarioError(f"{path}: empty road matrix")
    column_of = {name: i for i, name in enumerate(rows[0][1:])}
    row_of: dict[str, list[float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise ScenarioError(f"{path.name} line {line}: expected {len(rows[0])} fields")
        try:
            values = [float(v) for v in row[1:]]
        except ValueError:
            raise ScenarioError(f"{path.name} line {line}: distances must be numbers") from None
        if any(v < 0 for v in values):
            raise ScenarioError(f"{path.name} line {line}: distances must not be negative")
        row_of[row[0]] = values
    missing = [i for i in ids if i not in column_of or i not in row_of]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise ScenarioError(f"{path}: no distances for {len(missing)} id(s): {shown}")
    columns = [column_of[i] for i in ids]
    km = np.array([[row_of[i][c] for c in columns] for i in ids], dtype=np.float64)
    np.fill_diagonal(km, 0.0)
    result: FloatMatrix = km * 1000.0
    return result
