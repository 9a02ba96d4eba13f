"""``openlocker serve`` with two worker processes delivers webhooks, each one once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from standardwebhooks import Webhook

from openlocker.core.context import Context
from openlocker.webhooks.service import MAX_ENDPOINTS
from tests.factories import Factory
from tests.servers import serving
from tests.webhooks.receiver import Receiver


def test_two_workers_register_within_the_limit_and_deliver_each_event_once(
    factory: Factory, ctx: Context, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENLOCKER_WEBHOOKS_ALLOW_PRIVATE", "1")
    carrier = factory.org()
    site = factory.site("S" * 10)
    with (
        serving(ctx, workers=2) as base,
        httpx.Client(base_url=base, headers=carrier.headers) as api,
    ):

        def register(i: int) -> httpx.Response:
            body = {"url": receiver.url(f"/e{i}"), "events": ["parcel.announced"]}
            return api.post("/v1/webhooks", json=body)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(register, range(MAX_ENDPOINTS + 12)))
        created = [a.json() for a in answers if a.status_code == 201]
        refused = [a.json()["code"] for a in answers if a.status_code != 201]
        assert len(created) == MAX_ENDPOINTS
        assert refused == ["webhook_limit_reached"] * 12
        kept = created.pop()
        for endpoint in created:
            assert api.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 200
        subscribed = api.patch(
            f"/v1/webhooks/{kept['id']}", json={"events": ["parcel.announced", "parcel.deposited"]}
        )
        assert subscribed.status_code == 200
        path = "/" + kept["url"].rsplit("/", 1)[1]
        for i in range(10):
            body = {"tracking_number": f"SRV-{i}", "site_id": site, "size": "S", "notify": "sender"}
            parcel = api.post("/v1/parcels", json=body).json()
            assert api.post(f"/v1/parcels/{parcel['id']}/deposit").status_code == 200
        requests = receiver.wait_for(path, 20, timeout=20)
    ids = [r.webhook_id for r in requests]
    assert len(set(ids)) == 20
    verifier = Webhook(kept["secret"])
    types = sorted(verifier.verify(r.body, r.headers)["type"] for r in requests)
    assert types == ["parcel.announced"] * 10 + ["parcel.deposited"] * 10
    assert all(not receiver.to(f"/e{i}") for i in range(MAX_ENDPOINTS + 12) if f"/e{i}" != path)
