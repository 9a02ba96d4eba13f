"""Directory test helpers: a site with a directory key, its kiosk, entries in one line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.core.ids import new_id
from tests.factories import Factory, Org


@dataclass
class Building:
    """A site with its directory key (``directory:<site_id>``) and its kiosk's key."""

    site_id: str
    keeper: Org
    kiosk: Org


def building(factory: Factory, sizes: str = "SSMMLX") -> Building:
    site_id = factory.site(sizes)
    keeper = factory.org("operator", (f"directory:{site_id}",))
    return Building(site_id, keeper, factory.kiosk(site_id))


def add_entry(factory: Factory, where: Building, **fields: Any) -> dict[str, Any]:
    """An entry added through the operator API (a name and an email unless given)."""
    body: dict[str, Any] = {"display_name": "Anna Nowak", "email": f"{new_id('m')}@example.com"}
    body.update(fields)
    answer = factory.client.post(
        f"/v1/sites/{where.site_id}/directory/entries", json=body, headers=where.keeper.headers
    )
    assert answer.status_code == 201, answer.text
    entry: dict[str, Any] = answer.json()
    return entry


def courier(
    factory: Factory, carrier: Org, *, active: bool = True, sites: tuple[str, ...] | None = None
) -> str:
    """A courier code of ``carrier``'s, through its API (valid everywhere, or at ``sites``)."""
    body = {"name": "Courier", "site_ids": list(sites) if sites else None}
    made = factory.client.post("/v1/couriers", json=body, headers=carrier.headers)
    assert made.status_code == 201, made.text
    courier_id: str = made.json()["id"]
    if not active:
        gone = factory.client.delete(f"/v1/couriers/{courier_id}", headers=carrier.headers)
        assert gone.status_code == 200, gone.text
    return courier_id


def events(ctx: Context, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """Audit events whose name starts with ``prefix``: (name, data), oldest first."""
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, data FROM audit_events WHERE name LIKE :p ORDER BY seq"),
            {"p": prefix + "%"},
        ).all()
    return [(name, data if isinstance(data, dict) else orjson.loads(data)) for name, data in rows]
