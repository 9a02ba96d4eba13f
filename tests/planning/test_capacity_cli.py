"""`openlocker plan capacity`: the JSON document, the table, the plots and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from openlocker.cli import app

DATA = Path(__file__).resolve().parent / "data"
runner = CliRunner()


def test_json_output_has_overall_and_per_size_overflow_and_the_recommended_mix(
    tmp_path: Path,
) -> None:
    result = runner.invoke(
        app,
        ["plan", "capacity", str(DATA / "capacity_small.json"), "--json", "--out", str(tmp_path)],
    )

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["compartments"] == {"S": 6, "M": 5, "L": 3, "XL": 1}
    assert set(plan["overflow_rate"]["by_size"]) == {"S", "M", "L", "XL"}
    low, high = plan["overflow_rate_ci95"]["overall"]
    assert low <= plan["overflow_rate"]["overall"] <= high
    # Fifteen compartments for a peak of ~27 parcels a day overflow badly.
    assert plan["peak_day"]["overflow_rate"] > plan["target_overflow"]
    # Peak days: the two Fridays of the peak season (2026-12-04 and 2026-12-11).
    assert plan["peak_day"]["dates"] == ["2026-12-04", "2026-12-11"]
    recommended = plan["recommended_mix"]
    assert recommended["meets_target"] is True
    assert recommended["peak_day"]["overflow_rate"] <= plan["target_overflow"]
    assert sum(recommended["compartments"].values()) > 15
    assert len(plan["daily"]["date"]) == len(plan["daily"]["overflow_rate"]) == 28
    for plot in plan["plots"]:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_terminal_output_is_a_table_and_names_the_plots(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["plan", "capacity", str(DATA / "capacity_small.json"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "Recommended mix" in result.stdout
    assert "peak day" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Test-site-occupancy.png",
        "Test-site-overflow.png",
    ]


def test_bad_scenario_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"compartments": {"S": -1}, "demand": {"parcels_per_day": 5}}))
    result = runner.invoke(app, ["plan", "capacity", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "compartments counts must be non-negative" in result.stderr

    nothing = runner.invoke(app, ["plan", "capacity"])
    assert nothing.exit_code == 2
    assert "SCENARIO.json" in nothing.stderr
