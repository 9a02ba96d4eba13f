"""Migration 0011 both ways: the directory's tables go, parcels deposited for entries stay."""

from __future__ import annotations

from sqlalchemy import inspect, text

from openlocker.core.context import Context
from tests.directory.helpers import add_entry, building
from tests.factories import Factory
from tests.test_migrations import _migrate


def test_0011_down_and_up(factory: Factory, ctx: Context) -> None:
    here = building(factory)
    entry = add_entry(factory, here)
    deposit = factory.client.post(
        f"/v1/sites/{here.site_id}/open-deposits",
        json={"entry_id": entry["id"], "size": "S"},
        headers=here.kiosk.headers,
    )
    assert deposit.status_code == 201

    _migrate(ctx, "0010", down=True)
    tables = set(inspect(ctx.db.engine).get_table_names())
    assert "directory_entries" not in tables and "directory_searches" not in tables
    with ctx.db.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM parcels WHERE id = :id"), {"id": deposit.json()["parcel_id"]}
        ).scalar_one()
    assert status == "deposited"

    _migrate(ctx, "head")
    ctx.cache.clear()
    again = add_entry(factory, here, email=entry["email"])
    assert again["id"] != entry["id"]
