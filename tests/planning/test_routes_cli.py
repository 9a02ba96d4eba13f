"""`openlocker plan routes` end to end, with short solver time limits."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from openlocker.cli import app

DATA = Path(__file__).parent / "data"
KPIS = {"km", "vehicles", "stops", "driver_hours", "co2_kg", "failed_attempts", "cost"}
runner = CliRunner()


def test_synthetic_comparison_prints_one_json_document() -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            "routes",
            "--synthetic",
            "--parcels",
            "80",
            "--lockers",
            "4",
            "--seed",
            "2",
            "--time-limit",
            "0.5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    for scenario in ("doorstep", "lockers"):
        assert document[scenario].keys() >= KPIS
        assert document[scenario]["parcels"] == 80
        assert document[scenario]["vehicles"] >= 1
    assert document["lockers"]["locker_parcels"] == document["lockers_assignment"]["placed"] > 0
    assert document["lockers"]["stops"] < document["doorstep"]["stops"]


def test_scenario_file_gives_table_and_figure(tmp_path: Path) -> None:
    figure = tmp_path / "plan.png"
    result = runner.invoke(
        app,
        [
            "plan",
            "routes",
            str(DATA / "routes_small.json"),
            "--time-limit",
            "0.2",
            "--figure",
            str(figure),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Kilometres" in result.stdout and "Saving" in result.stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_small_scenario_consolidates_the_two_parcels_within_walk() -> None:
    result = runner.invoke(
        app, ["plan", "routes", str(DATA / "routes_small.json"), "--time-limit", "0.2", "--json"]
    )
    document = json.loads(result.stdout)
    # a1 and a2 accept and live beside L1; a3 declines; a5 accepts but lives 880 m away.
    assert document["lockers"]["locker_parcels"] == 2
    assert document["lockers"]["stops"] == document["doorstep"]["stops"] - 1


def test_vrplib_instance_within_one_percent_of_best_known() -> None:
    result = runner.invoke(
        app,
        [
            "plan",
            "routes",
            "--vrplib",
            str(DATA / "X-n101-k25.vrp"),
            "--time-limit",
            "60",
            "--max-iterations",
            "5000",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["best_known"] == 27591
    assert document["cost"] >= document["best_known"]
    assert (document["cost"] - 27591) / 27591 < 0.01


def test_bad_input_exits_2_with_a_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"depot": {"lat": 52.0, "lon": 21.0}, "vehicles": {"count": -3}, "deliveries": []}'
    )
    result = runner.invoke(app, ["plan", "routes", str(broken)])
    assert result.exit_code == 2
    assert "vehicles[0].count must not be negative" in result.stderr
    assert "Traceback" not in result.output

    result = runner.invoke(app, ["plan", "routes", "--synthetic", "--parcels", "0"])
    assert result.exit_code == 2
    assert "--parcels must be at least 1" in result.stderr

    broken.write_text(
        '{"depot": {"lat": 52.0, "lon": 21.0}, "vehicles": {"count": 1}, "deliveries": []}'
    )
    result = runner.invoke(app, ["plan", "routes", str(broken)])
    assert result.exit_code == 2
    assert "no deliveries to plan" in result.stderr

    result = runner.invoke(app, ["plan", "routes", str(tmp_path / "missing.json")])
    assert result.exit_code == 2
    assert "cannot read scenario" in result.stderr


def test_road_matrix_file_replaces_estimated_distances(tmp_path: Path) -> None:
    ids = ["depot", "a1", "a2", "a3", "a4", "a5", "L1"]
    rows = [",".join(["", *ids])]
    for i, frm in enumerate(ids):
        rows.append(",".join([frm, *("0" if i == j else "5" for j in range(len(ids)))]))
    matrix = tmp_path / "roads.csv"
    matrix.write_text("\n".join(rows) + "\n")
    args = ["plan", "routes", str(DATA / "routes_small.json"), "--time-limit", "0.2", "--json"]
    document = json.loads(runner.invoke(app, [*args, "--road-matrix", str(matrix)]).stdout)
    # Every leg is 5 km: five doorstep stops need six legs on one van.
    assert document["doorstep"]["km"] == 30.0

    matrix.write_text("\n".join(rows[:-1]) + "\n")
    result = runner.invoke(app, [*args, "--road-matrix", str(matrix)])
    assert result.exit_code == 2
    assert "no distances for 1 id(s): L1" in result.stderr
