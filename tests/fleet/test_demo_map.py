"""The demo network's lockers are mapped to boards, and its couriers have codes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from openlocker.core.context import Context
from openlocker.demo import seed_demo
from tests.factories import Org
from tests.fleet.helpers import Store, sealed_sync


def test_demo_sites_map_compartment_n_to_board_n_div_16(ctx: Context, client: TestClient) -> None:
    keys = seed_demo(ctx)
    site = next(iter(keys.sites))
    kiosk = Org("", keys.kiosk_keys[site])
    listed = client.get(f"/v1/sites/{site}/compartments", headers=kiosk.headers).json()["items"]
    assert len(listed) == 48
    assert sorted((c["board"], c["lock"]) for c in listed) == [(n // 16, n % 16) for n in range(48)]
    store = sealed_sync(ctx, client, site, kiosk, Store())
    digests = {c["code"] for c in store.couriers.values()}
    assert digests == {store.digest("courier", code) for code in keys.courier_codes.values()}
