"""The demo network and its simulated lockers, driven through the public API."""

from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient

from openlocker.core.context import Context
from openlocker.demo import LockerSimulator, seed_demo


def test_simulated_lockers_drop_and_collect_parcels(ctx: Context, client: TestClient) -> None:
    keys = seed_demo(ctx)
    site_id = next(iter(keys.kiosk_keys))
    locker = LockerSimulator(client, keys, site_id, seed=3)
    for _ in range(40):
        locker.step()

    carrier = {"Authorization": f"Bearer {keys.carrier_key}"}
    statuses: Counter[str] = Counter()
    cursor = None
    while True:
        page = client.get(
            "/v1/parcels",
            params={"limit": 200, **({"cursor": cursor} if cursor else {})},
            headers=carrier,
        ).json()
        statuses.update(p["status"] for p in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert statuses["picked_up"] > 5
    assert statuses["deposited"] == len(locker.waiting) > 0
    assert set(statuses) <= {"picked_up", "deposited"}  # every drop deposited, every pickup opened
    site = client.get(f"/v1/sites/{site_id}", headers=carrier).json()
    assert sum(f["free"] for f in site["free"]) == site["compartments_total"] - len(locker.waiting)
