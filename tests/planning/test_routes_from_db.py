"""`openlocker plan routes --from-db`: a carrier's announced day from the server's tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from openlocker.cli import app
from openlocker.core.config import get_settings
from openlocker.core.context import Context
from openlocker.core.ids import new_id
from openlocker.parcels.models import Parcel
from tests.factories import Factory

runner = CliRunner()
DAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings_from(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPENLOCKER_DATABASE_URL", ctx.db.url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def add_parcel(
    ctx: Context, carrier: str, site: str, recipient: dict[str, object], when: datetime
) -> None:
    with ctx.db.transaction() as session:
        session.add(
            Parcel(
                id=new_id("par"),
                carrier_org_id=carrier,
                tracking_number=new_id("TN"),
                site_id=site,
                status="announced",
                size_code="S",
                recipient=recipient,
                notify="sender",
                announced_at=when,
            )
        )


def test_from_db_plans_the_carriers_parcels_of_the_day(
    ctx: Context, factory: Factory, settings_from: None
) -> None:
    carrier = factory.org()
    site = factory.site("SSM", lat=52.2297, lon=21.0122)
    for k in range(4):
        add_parcel(ctx, carrier.id, site, {"lat": 52.232 + k / 1000, "lon": 21.015}, DAY)
    add_parcel(ctx, carrier.id, site, {"name": "no position"}, DAY)
    add_parcel(
        ctx, carrier.id, site, {"lat": 52.24, "lon": 21.02}, datetime(2026, 1, 6, 9, tzinfo=UTC)
    )

    result = runner.invoke(
        app,
        [
            "plan",
            "routes",
            "--from-db",
            "--carrier",
            carrier.id,
            "--date",
            "2026-01-05",
            "--time-limit",
            "0.2",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    # Two S compartments and an M one: three of the four routable S parcels go in (one
    # upsized), the fourth goes to the door.
    assert document["doorstep"]["parcels"] == 4
    assert document["lockers"]["locker_parcels"] == 3
    assert document["lockers"]["doorstep_parcels"] == 1
    assert "1 parcel(s) without recipient lat/lon left out" in result.stderr


def test_from_db_without_parcels_exits_2(
    ctx: Context, factory: Factory, settings_from: None
) -> None:
    carrier = factory.org()
    result = runner.invoke(
        app, ["plan", "routes", "--from-db", "--carrier", carrier.id, "--date", "2026-01-05"]
    )
    assert result.exit_code == 2
    assert "announced no parcels on 2026-01-05" in result.stderr
