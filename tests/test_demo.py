"""The demo network, and its people using each site's real kiosk on sim boards."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.demo import LockerSimulator, seed_demo
from openlocker.kiosk.boards.bank import Bank
from tests.kiosk.e2e import clock, locker, wait_for  # noqa: F401 (clock: the real one)
from tests.servers import serving


def _statuses(ctx: Context, site_id: str) -> Counter[str]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, COUNT(*) FROM parcels WHERE site_id = :s GROUP BY status"),
            {"s": site_id},
        ).all()
    return Counter({status: count for status, count in rows})


def test_couriers_and_recipients_use_the_real_kiosk(ctx: Context, tmp_path: Path) -> None:
    keys = seed_demo(ctx)
    site_id = next(iter(keys.kiosk_keys))
    bank = Bank(3, 16)  # the first demo site's 48 compartments
    with (
        serving(ctx, workers=1) as base,
        locker(tmp_path, site_id, keys.kiosk_keys[site_id], base, bank) as k,
        httpx.Client(base_url=base, timeout=10) as server,
    ):
        wait_for(lambda: k.synced(), "the kiosk's first sync")
        people = LockerSimulator(server, k.http, keys, site_id, seed=3)
        for _ in range(18):
            people.step()
            time.sleep(0.7)  # the server seals its trail and the kiosk syncs in between
        wait_for(lambda: k.synced(), "the kiosk's events pushed")

    statuses = _statuses(ctx, site_id)
    assert statuses["picked_up"] >= 2, statuses
    assert statuses["deposited"] >= len(people.waiting) > 0, statuses
    assert set(statuses) <= {"announced", "deposited", "picked_up"}
    with ctx.db.engine.connect() as conn:
        names = Counter(
            name
            for (name,) in conn.execute(
                text("SELECT name FROM audit_events WHERE site_id = :s"), {"s": site_id}
            )
        )
    # Every deposit and pickup was decided at the kiosk and reached the server as its event.
    assert names["parcel.picked_up"] == statuses["picked_up"]
    assert names["compartment.door_closed"] >= names["parcel.deposited"]
    assert names["pickup.failed"] == 0 and not any(n.startswith("alarm.") for n in names)
    assert k.open_doors() == 0
