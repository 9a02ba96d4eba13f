"""Reading route scenarios: JSON with CSV deliveries, and clear refusals of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from openlocker.planning.routes.scenario import (
    DEFAULT_FAILURE_RATE,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

DATA = Path(__file__).parent / "data"


def minimal(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "depot": {"lat": 52.0, "lon": 21.0},
        "vehicles": {"count": 1, "capacity": 100},
        "deliveries": [{"id": "p1", "lat": 52.01, "lon": 21.01, "size": "S"}],
    }
    document.update(changes)
    return document


def test_small_scenario_reads_json_and_csv() -> None:
    scenario = load_scenario(DATA / "routes_small.json")
    assert [d.id for d in scenario.deliveries] == ["a1", "a2", "a3", "a4", "a5"]
    a4 = scenario.deliveries[3]
    assert a4.size == "L"
    assert a4.window_s == (9 * 3600, 12 * 3600)
    assert a4.accepts_locker is None
    assert [d.accepts_locker for d in scenario.deliveries[:3]] == [True, True, False]
    assert scenario.lockers[0].free == {"S": 2, "M": 1, "L": 0}
    assert scenario.vehicles[0].cost_per_hour == 15
    assert scenario.failed_parcels == "locker"
    assert scenario.service.locker_fixed_s == 300


def test_defaults_apply_to_omitted_fields() -> None:
    scenario = parse_scenario(minimal())
    assert scenario.failure_rate == DEFAULT_FAILURE_RATE
    assert scenario.lockers == ()
    assert scenario.depot.opens_s == 8 * 3600


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({k: v for k, v in minimal().items() if k != "depot"}, "missing field 'depot'"),
        (minimal(vehicles={"count": -1}), "vehicles[0].count must not be negative"),
        (minimal(vehicles={"capacity": 10}), "missing field 'count'"),
        (minimal(deliveries=[{"id": "p1", "lat": 52.0}]), "deliveries[0]: missing field 'lon'"),
        (
            minimal(deliveries=[{"id": "p1", "lat": 52.0, "lon": 21.0, "size": "XL"}]),
            "unknown size 'XL'",
        ),
        (minimal(failure_rate=1.5), "share between 0 and 1"),
        (minimal(circuity=0.8), "at least 1"),
        (
            minimal(lockers=[{"id": "L1", "lat": 52.0, "lon": 21.0, "free": {"S": -2}}]),
            "must not be negative",
        ),
        (
            minimal(
                deliveries=[{"id": "p", "lat": 52, "lon": 21}, {"id": "p", "lat": 52, "lon": 21}]
            ),
            "duplicate delivery id 'p'",
        ),
        (minimal(failed_parcels="shrug"), "'failed_parcels' must be one of"),
    ],
)
def test_bad_scenarios_are_refused_with_the_field_named(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError, match=re.escape(message)):
        parse_scenario(document)


def test_malformed_csv_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,lat,lon,size\np1,52.0,21.0,S\np2,north,21.0,S\n")
    (tmp_path / "s.json").write_text(json.dumps(minimal(deliveries="d.csv")))
    with pytest.raises(ScenarioError, match=r"d\.csv line 3: lat must be a number"):
        load_scenario(tmp_path / "s.json")


def test_csv_without_required_columns_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,lat,size\np1,52.0,S\n")
    (tmp_path / "s.json").write_text(json.dumps(minimal()))
    with pytest.raises(ScenarioError, match="missing column"):
        load_scenario(tmp_path / "s.json", tmp_path / "d.csv")


def test_csv_row_with_extra_fields_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,lat,lon,size\np1,52.0,21.0,S,extra\n")
    (tmp_path / "s.json").write_text(json.dumps(minimal()))
    with pytest.raises(ScenarioError, match="line 2: wrong number of fields"):
        load_scenario(tmp_path / "s.json", tmp_path / "d.csv")
