"""A kiosk against a real ``openlocker serve`` (two workers): sync, a batch of offline pickups
and deposits pushed twice at once, each applied exactly once, and the sync after it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from openlocker.access.credentials import kiosk_digest
from openlocker.core.context import Context
from openlocker.core.keys import unb64url
from tests.factories import Factory
from tests.fleet.helpers import Store, event, one
from tests.servers import serving


def _sync(api: httpx.Client, site: str, store: Store) -> Store:
    while True:
        params = {"cursor": store.cursor} if store.cursor else {}
        answer = api.get(f"/v1/sites/{site}/kiosk/sync", params=params)
        assert answer.status_code == 200, answer.text
        store.apply(answer.json())
        if not answer.json()["more"]:
            return store


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Wait for the server's sealer to make changes visible to a sync."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_kiosk_syncs_pushes_an_offline_day_twice_and_everything_counts_once(
    factory: Factory, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S" * 24)
    kiosk = factory.kiosk(site)
    with (
        serving(ctx, workers=2) as base,
        httpx.Client(base_url=base, headers=carrier.headers, timeout=30) as api,
        httpx.Client(base_url=base, headers=kiosk.headers, timeout=30) as locker,
    ):
        courier = api.post("/v1/couriers", json={"name": "Jan"}).json()
        waiting = []
        for n in range(8):
            body = {"tracking_number": f"E2E-{n}", "site_id": site, "size": "S", "notify": "sender"}
            parcel = api.post("/v1/parcels", json=body).json()
            waiting.append(api.post(f"/v1/parcels/{parcel['id']}/deposit").json())
        announced = [
            api.post(
                "/v1/parcels",
                json={"tracking_number": f"E2E-A{n}", "site_id": site, "size": "S"}
                | {"notify": "sender"},
            ).json()
            for n in range(8)
        ]
        store = Store()
        _until(
            lambda: (
                len(_sync(locker, site, store).credentials) == 8
                and len(store.expected) == 8
                and len(store.couriers) == 1
            ),
            "the first sync",
        )
        key = unb64url(store.last["digest_key"])
        assert kiosk_digest(key, "courier", courier["code"]) in {
            c["code"] for c in store.couriers.values()
        }

        # A day offline: the kiosk hands out every waiting parcel and takes every expected one.
        at = datetime.now(UTC)
        taken = {c["compartments"][0]["id"] for c in store.credentials.values()}
        free = [
            c["id"]
            for c in store.last["compartments"]
            if c["state"] == "free" and c["id"] not in taken
        ]
        # The doors the API's deposits asked for opened first.
        events: list[dict[str, Any]] = [
            event("command", at, command_id=c["id"], result="opened")
            for c in store.last["commands"]
        ]
        for parcel in waiting:
            credential = store.by_pin(parcel["pickup"]["pin"])
            assert credential is not None
            events.append(
                event(
                    "pickup",
                    at,
                    credential_id=credential["id"],
                    method="pin",
                    compartments=[credential["compartments"][0]["id"]],
                    offline=True,
                )
            )
        for parcel, compartment in zip(announced, free, strict=False):
            events.append(
                event(
                    "deposit",
                    at,
                    parcel_id=parcel["id"],
                    compartment_id=compartment,
                    courier_id=courier["id"],
                    offline=True,
                )
            )

        def push() -> list[dict[str, Any]]:
            answer = locker.post(f"/v1/sites/{site}/kiosk/events", json={"events": events})
            assert answer.status_code == 200, answer.text
            results: list[dict[str, Any]] = answer.json()["results"]
            return results

        with ThreadPoolExecutor(2) as pool:
            both = list(pool.map(lambda _: push(), range(2)))
        outcomes = Counter(
            (result["id"], result["status"]) for results in both for result in results
        )
        for item in events:
            assert outcomes[(item["id"], "applied")] == 1, (item, outcomes)
            assert outcomes[(item["id"], "duplicate")] == 1
        third = push()
        assert [(r["status"], r["first_status"]) for r in third] == [
            ("duplicate", "applied")
        ] * len(events)

        statuses = Counter(
            row["status"]
            for row in api.get("/v1/parcels", params={"site_id": site, "limit": 50}).json()["items"]
        )
        assert statuses == {"picked_up": 8, "deposited": 8}
        assert one(
            ctx,
            "SELECT COUNT(*) FROM audit_events WHERE name = 'parcel.picked_up' AND site_id = :s",
            s=site,
        ) == (8,)
        # Only the API's deposits queued door commands; the kiosk answered each.
        assert one(
            ctx,
            "SELECT COUNT(*), SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END) FROM outbox"
            " WHERE topic = 'kiosk.open_compartment' AND site_id = :s",
            s=site,
        ) == (8, 8)

        _until(
            lambda: (
                not _sync(locker, site, store).expected
                and {c["parcel_id"] for c in store.credentials.values()}
                == {p["id"] for p in announced}
            ),
            "the changes to reach the kiosk",
        )
        assert store.last["commands"] == []
