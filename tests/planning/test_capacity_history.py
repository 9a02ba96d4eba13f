"""A scenario measured from a site's history: the pure measurement and the database read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openlocker.cli import app
from openlocker.core.config import get_settings
from openlocker.core.context import Context
from openlocker.parcels.models import Parcel
from openlocker.planning.capacity.history import (
    ParcelRecord,
    SizeRecord,
    measure_scenario,
    scenario_from_db,
)
from openlocker.planning.capacity.scenario import HistogramDwell, ScenarioError
from tests.factories import Factory

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
SIZES = [SizeRecord("L", 380, 410, 640), SizeRecord("S", 380, 80, 640)]


def _history() -> list[ParcelRecord]:
    """Two weeks: 3 parcels every weekday at 09:xx, 1 on Saturdays, none on Sundays."""
    parcels = []
    for day in range(14):
        date = MONDAY + timedelta(days=day)
        count = {5: 1, 6: 0}.get(date.weekday(), 3)
        for n in range(count):
            deposited = date + timedelta(hours=9, minutes=10 * n)
            size = "L" if n == 2 else "S"
            if day % 7 == 4 and n == 0:
                parcels.append(ParcelRecord(size, deposited, None, deposited + timedelta(hours=72)))
            else:
                parcels.append(ParcelRecord(size, deposited, deposited + timedelta(hours=5), None))
    parcels.append(ParcelRecord("S", None, None, None))  # announced, never deposited
    return parcels


def test_measures_volume_mix_weekdays_windows_and_dwell() -> None:
    scenario = measure_scenario(
        _history(), {"S": 4, "L": 2}, SIZES, name="Depot", deadline_hours=72.0
    )
    demand = scenario.demand
    assert scenario.name == "Depot"
    assert scenario.codes == ["S", "L"]  # smallest first, whatever the order read
    assert scenario.counts() == [4, 2]
    assert scenario.size_classes[0].front_area_m2 == pytest.approx(0.0304)
    # 32 deposits over 13 calendar days (Mon 2 Mar .. Sat 14 Mar).
    assert demand.parcels_per_day == pytest.approx(32 / 13)
    assert demand.size_mix == {"S": pytest.approx(22 / 32), "L": pytest.approx(10 / 32)}
    assert demand.weekly_profile == (3, 3, 3, 3, 3, 1, 0)
    assert [(w.start_hour, w.end_hour, w.share) for w in demand.arrival_windows] == [(9, 10, 1.0)]
    assert isinstance(scenario.dwell, HistogramDwell)
    assert scenario.dwell.counts[5] == 30 and scenario.dwell.counts[72] == 2
    assert scenario.expiry.deadline_hours == 72.0


def test_the_base_scenario_keeps_its_own_settings() -> None:
    base = {
        "name": "Depot (peak plan)",
        "target_overflow": 0.05,
        "demand": {
            "parcels_per_day": 999,
            "peaks": [{"start": "2026-12-01", "end": "2026-12-24", "multiplier": 2}],
        },
    }
    scenario = measure_scenario(
        _history(), {"S": 4}, SIZES, name="Depot", deadline_hours=48, base=base
    )
    assert scenario.name == "Depot (peak plan)"
    assert scenario.target_overflow == 0.05
    assert scenario.demand.parcels_per_day == pytest.approx(32 / 13)
    assert scenario.demand.peaks[0].multiplier == 2
    assert scenario.expiry.deadline_hours == 48


def test_nothing_deposited_is_refused() -> None:
    with pytest.raises(ScenarioError, match="no deposited parcels"):
        measure_scenario(
            [ParcelRecord("S", None, None, None)], {"S": 1}, SIZES, name="Empty", deadline_hours=72
        )


def _site_with_history(ctx: Context, factory: Factory) -> str:
    site_id = factory.site("SSSMML", dwell_hours=48, name="Harbour")
    carrier = factory.org()
    with ctx.db.transaction() as session:
        for n, record in enumerate(_history()):
            session.add(
                Parcel(
                    id=f"prc_history{n:03d}",
                    carrier_org_id=carrier.id,
                    tracking_number=f"HIST{n:04d}",
                    site_id=site_id,
                    status="picked_up" if record.picked_up_at else "expired",
                    size_code=record.size_code,
                    recipient={},
                    notify="openlocker",
                    announced_at=MONDAY - timedelta(days=1),
                    deposited_at=record.deposited_at,
                    picked_up_at=record.picked_up_at,
                    expired_at=record.expired_at,
                )
            )
    return site_id


def test_reads_a_site_history_from_the_database(ctx: Context, factory: Factory) -> None:
    site_id = _site_with_history(ctx, factory)

    scenario = scenario_from_db(ctx.settings.database_url, site_id)

    assert scenario.name == "Harbour"
    assert scenario.compartments == {"S": 3, "M": 2, "L": 1}
    assert scenario.codes == ["S", "M", "L"]
    assert scenario.demand.parcels_per_day == pytest.approx(32 / 13)
    assert scenario.expiry.deadline_hours == 48


def test_unknown_site_is_refused(ctx: Context) -> None:
    with pytest.raises(ScenarioError, match="no site 'nowhere'"):
        scenario_from_db(ctx.settings.database_url, "nowhere")


@pytest.fixture
def server_database(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the command's settings at the test database."""
    monkeypatch.setenv("OPENLOCKER_DATABASE_URL", ctx.db.url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("server_database")
def test_command_plans_from_the_database_with_the_file_settings(
    ctx: Context, factory: Factory, tmp_path: Path
) -> None:
    site_id = _site_with_history(ctx, factory)
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"start_date": "2026-06-01", "days": 21, "replications": 5}))

    result = CliRunner().invoke(
        app,
        ["plan", "capacity", str(settings), "--from-db", site_id, "--json", "--out", str(tmp_path)],
    )

    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["scenario"] == "Harbour"
    assert plan["days"] == 21
    assert plan["compartments"] == {"S": 3, "M": 2, "L": 1}
    assert set(plan["recommended_mix"]["compartments"]) == {"S", "M", "L"}


@pytest.mark.usefixtures("server_database")
def test_command_refuses_an_unknown_site_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["plan", "capacity", "--from-db", "nowhere", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no site 'nowhere'" in result.stderr
