"""Deliveries reach a real HTTP server, signed, on the Standard Webhooks schedule."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from standardwebhooks import Webhook, WebhookVerificationError

from openlocker.audit.models import AuditEvent, OutboxMessage
from openlocker.core.clock import FrozenClock
from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.db import Database
from openlocker.core.keys import Keyring
from openlocker.webhooks.delivery import Dispatcher
from openlocker.webhooks.service import SCHEDULE, claim_due, fan_out, record_outcome
from tests.factories import Factory
from tests.webhooks.conftest import deliver, register
from tests.webhooks.receiver import Receiver


def test_a_delivery_is_signed_and_verifies_with_standardwebhooks(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    endpoint = register(client, carrier, receiver.url("/hooks"))
    parcel = factory.announce(carrier, factory.site("S")).json()
    assert deliver(ctx) == ["delivered"]
    [request] = receiver.to("/hooks")
    body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert body == {
        "type": "parcel.announced",
        "timestamp": parcel["announced_at"].replace("Z", "+00:00"),
        "data": {
            "parcel_id": parcel["id"],
            "tracking_number": parcel["tracking_number"],
            "status": "announced",
        },
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("whd_")
    # Another secret, a changed body or a changed id does not verify.
    other = register(client, carrier, receiver.url("/other"))
    for secret, data, headers in [
        (other["secret"], request.body, request.headers),
        (endpoint["secret"], request.body.replace(b"announced", b"deposited"), request.headers),
        (endpoint["secret"], request.body, {**request.headers, "webhook-id": "whd_forged"}),
    ]:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(data, headers)


def test_a_carrier_hears_only_its_own_parcels(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    first, second = factory.org(), factory.org("retailer")
    register(client, first, receiver.url("/first"))
    register(client, second, receiver.url("/second"))
    site = factory.site("SSS")
    mine = [factory.deposited(first, site)["id"] for _ in range(2)]
    theirs = factory.deposited(second, site)["id"]
    assert sorted(deliver(ctx)) == ["delivered"] * 6
    heard = {
        path: sorted(json.loads(r.body)["data"]["parcel_id"] for r in receiver.to(path))
        for path in ("/first", "/second")
    }
    assert heard == {"/first": sorted(mine * 2), "/second": [theirs, theirs]}


def test_only_the_subscribed_event_types_are_sent(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    register(client, carrier, receiver.url("/picked"), ["parcel.picked_up"])
    site = factory.site("S")
    parcel = factory.deposited(carrier, site)
    assert deliver(ctx) == []
    assert factory.pick_up(site, parcel).status_code == 200
    assert deliver(ctx) == ["delivered"]
    assert [json.loads(r.body)["type"] for r in receiver.to("/picked")] == ["parcel.picked_up"]


def _deliveries(client: TestClient, headers: dict[str, str], endpoint_id: str) -> list[dict]:  # type: ignore[type-arg]
    answer = client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[dict] = answer.json()["items"]  # type: ignore[type-arg]
    return items


def test_failures_retry_on_the_schedule_then_fail_visibly_and_replay(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock, receiver: Receiver
) -> None:
    carrier = factory.org()
    endpoint = register(client, carrier, receiver.url("/down"), ["parcel.announced"])
    receiver.answers["/down"] = 500
    factory.announce(carrier, factory.site("S"))
    start = clock.now
    assert deliver(ctx) == ["pending"]
    for wait in SCHEDULE[1:]:
        clock.advance(seconds=wait.total_seconds() - 1)
        assert deliver(ctx) == [], f"sent before {wait} had passed"
        clock.advance(seconds=1)
        assert len(deliver(ctx)) == 1
    [delivery] = _deliveries(client, carrier.headers, endpoint["id"])
    assert delivery["state"] == "failed"
    assert delivery["last_error"] == "HTTP 500"
    assert [a["status_code"] for a in delivery["attempts"]] == [500] * 8
    moments = [start + sum(SCHEDULE[: i + 1], timedelta()) for i in range(8)]
    assert [a["at"] for a in delivery["attempts"]] == [
        m.isoformat().replace("+00:00", "Z") for m in moments
    ]
    assert len(receiver.to("/down")) == 8
    assert {r.webhook_id for r in receiver.to("/down")} == {delivery["id"]}
    failed = client.get(
        f"/v1/webhooks/{endpoint['id']}/deliveries",
        params={"state": "failed"},
        headers=carrier.headers,
    ).json()["items"]
    assert [d["id"] for d in failed] == [delivery["id"]]
    with ctx.db.read() as session:
        names = session.scalars(select(AuditEvent.name)).all()
    assert names.count("webhook.delivery_failed") == 1

    receiver.answers["/down"] = 200
    replayed = client.post(
        f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/replay",
        headers=carrier.headers,
    )
    assert replayed.status_code == 200 and replayed.json()["state"] == "pending"
    assert deliver(ctx) == ["delivered"]
    assert receiver.to("/down")[-1].webhook_id == delivery["id"]
    [done] = _deliveries(client, carrier.headers, endpoint["id"])
    assert done["state"] == "delivered" and len(done["attempts"]) == 9
    with ctx.db.read() as session:
        assert "webhook.delivery_replayed" in session.scalars(select(AuditEvent.name)).all()


def test_gone_disables_the_endpoint_until_it_is_turned_on(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    endpoint = register(client, carrier, receiver.url("/gone"), ["parcel.announced"])
    receiver.answers["/gone"] = 410
    ctx.settings.webhooks_per_endpoint = 1
    site = factory.site("SSS")
    factory.announce(carrier, site)
    factory.announce(carrier, site)
    assert deliver(ctx) == ["failed"]
    shown = client.get(f"/v1/webhooks/{endpoint['id']}", headers=carrier.headers).json()
    assert shown["disabled_reason"] == "the endpoint answered 410 Gone"
    deliveries = _deliveries(client, carrier.headers, endpoint["id"])
    assert [d["state"] for d in deliveries] == ["failed", "failed"]
    assert len(receiver.to("/gone")) == 1
    factory.announce(carrier, site)
    assert deliver(ctx) == []
    assert len(_deliveries(client, carrier.headers, endpoint["id"])) == 2
    replay = f"/v1/webhooks/{endpoint['id']}/deliveries/{deliveries[0]['id']}/replay"
    refused = client.post(replay, headers=carrier.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "endpoint_disabled"
    with ctx.db.read() as session:
        assert "webhook.disabled" in session.scalars(select(AuditEvent.name)).all()

    receiver.answers["/gone"] = 200
    on = client.patch(
        f"/v1/webhooks/{endpoint['id']}", json={"enabled": True}, headers=carrier.headers
    )
    assert on.status_code == 200 and on.json()["disabled_at"] is None
    assert client.post(replay, headers=carrier.headers).status_code == 200
    assert deliver(ctx) == ["delivered"]


def _by_hand(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The check docs/webhooks.md shows without the package."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, entry.removeprefix("v1,"))
        for entry in headers["webhook-signature"].split(" ")
    )


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock, receiver: Receiver
) -> None:
    carrier = factory.org()
    endpoint = register(client, carrier, receiver.url("/rot"), ["parcel.announced"])
    rotated = client.post(f"/v1/webhooks/{endpoint['id']}/rotate", headers=carrier.headers)
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["secret"] != endpoint["secret"] and new["secret"].startswith("whsec_")
    site = factory.site("SS")
    factory.announce(carrier, site)
    assert deliver(ctx) == ["delivered"]
    [during] = receiver.to("/rot")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new["secret"]):
        Webhook(secret).verify(during.body, during.headers)
        assert _by_hand(secret, during.headers, during.body)

    clock.advance(hours=ctx.settings.webhooks_rotation_overlap_hours, seconds=1)
    factory.announce(carrier, site)
    assert deliver(ctx) == ["delivered"]
    after = receiver.to("/rot")[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert _by_hand(new["secret"], after.headers, after.body)
    assert not _by_hand(endpoint["secret"], after.headers, after.body)


def test_a_hanging_endpoint_does_not_delay_another(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    hanging = register(client, carrier, receiver.url("/hang"), ["parcel.announced"])
    register(client, carrier, receiver.url("/ok"), ["parcel.announced"])
    receiver.answers["/hang"] = "hang"
    site = factory.site("S" * 10)
    for _ in range(10):
        factory.announce(carrier, site)

    async def run() -> float:
        stop = asyncio.Event()
        dispatcher = Dispatcher(ctx)
        job = asyncio.create_task(dispatcher.run(stop))
        started = time.monotonic()
        await asyncio.to_thread(receiver.wait_for, "/ok", 10)
        took = time.monotonic() - started
        # The hanging endpoint's sends time out (2 s here) and are recorded.
        await asyncio.sleep(ctx.settings.webhooks_timeout_seconds + 0.5)
        stop.set()
        await job
        await dispatcher.aclose()
        return took

    took = asyncio.run(run())
    assert took < 1.0, f"the healthy endpoint waited {took:.2f} s"
    # The hanging one had no more than its bound in flight: 4, then 4 more once they timed out.
    hung = [r.at - receiver.to("/hang")[0].at for r in receiver.to("/hang")]
    bound = ctx.settings.webhooks_per_endpoint
    assert len(hung) == 2 * bound
    assert max(hung[:bound]) < 0.5 < ctx.settings.webhooks_timeout_seconds - 0.5 < min(hung[bound:])
    timed_out = [d for d in _deliveries(client, carrier.headers, hanging["id"]) if d["attempts"]]
    assert len(timed_out) == ctx.settings.webhooks_per_endpoint
    assert {d["attempts"][0]["error"] for d in timed_out} == {"no answer within 2 s"}
    assert all(d["attempts"][0]["duration_ms"] >= 2000 for d in timed_out)


def test_an_address_that_turned_private_is_refused_at_delivery(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    port = receiver.base.rsplit(":", 1)[1]
    moved = register(client, carrier, f"https://localhost:{port}/moved", ["parcel.announced"])
    plain = register(client, carrier, receiver.url("/plain"), ["parcel.announced"])
    factory.announce(carrier, factory.site("S"))
    # As if the name had resolved to a public address at registration and to loopback now.
    ctx.settings.webhooks_allow_private = False
    assert deliver(ctx) == ["pending", "pending"]
    assert receiver.requests == []
    [refused] = _deliveries(client, carrier.headers, moved["id"])[0]["attempts"]
    assert refused["status_code"] is None
    assert refused["error"].startswith("localhost resolves to ")
    assert refused["error"].endswith("which is not a public address.")
    [plain_refused] = _deliveries(client, carrier.headers, plain["id"])[0]["attempts"]
    assert plain_refused["error"] == "A webhook URL must start with https://."


def test_two_processes_deliver_each_delivery_once(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    register(client, carrier, receiver.url("/once"), ["parcel.announced"])
    site = factory.site("S")
    for _ in range(40):
        factory.announce(carrier, site)
    contexts = [
        Context(
            Database(ctx.settings.database_url),
            Keyring(ctx.settings.secret_key),
            ctx.settings,
            ctx.clock,
        )
        for _ in range(2)
    ]
    for other in contexts:
        other.settings = Settings(**{**ctx.settings.model_dump(), "webhooks_concurrency": 8})
    barrier = threading.Barrier(2)
    states: list[str] = []

    def work(process: Context) -> None:
        barrier.wait()
        for _ in range(20):
            states.extend(deliver(process))

    threads = [threading.Thread(target=work, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in contexts:
        other.db.dispose()
    ids = [r.webhook_id for r in receiver.to("/once")]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert states == ["delivered"] * 40


def test_a_lease_that_ran_out_passes_the_delivery_on(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock, receiver: Receiver
) -> None:
    carrier = factory.org()
    register(client, carrier, receiver.url("/crash"), ["parcel.announced"])
    factory.announce(carrier, factory.site("S"))
    fan_out(ctx)
    [crashed] = claim_due(ctx, limit=10, per_endpoint=4, in_flight={})
    # The process that claimed it died mid-send: nobody else gets it while its lease holds.
    assert claim_due(ctx, limit=10, per_endpoint=4, in_flight={}) == []
    clock.advance(seconds=ctx.settings.webhooks_timeout_seconds + 31)
    assert deliver(ctx) == ["delivered"]
    [request] = receiver.to("/crash")
    assert request.webhook_id == crashed.delivery_id
    # Had it come back, its outcome no longer moves the delivery.
    from openlocker.webhooks.service import Outcome

    assert record_outcome(ctx, crashed, Outcome(clock.now, 5, 500)) == "taken_over"


def test_fan_out_leaves_other_topics_and_marks_webhooks_sent(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    factory.deposited(
        carrier, factory.site("S"), notify="openlocker", recipient={"email": "ana@example.com"}
    )
    assert fan_out(ctx) == 2
    with ctx.db.read() as session:
        unsent = session.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.sent_at.is_(None))
        ).all()
    assert sorted(unsent) == ["kiosk.open_compartment", "recipient.pickup_ready"]
    assert fan_out(ctx) == 0


def test_a_secret_that_no_longer_opens_fails_its_delivery_until_rotated(
    factory: Factory, client: TestClient, ctx: Context, receiver: Receiver
) -> None:
    carrier = factory.org()
    broken = register(client, carrier, receiver.url("/broken"), ["parcel.announced"])
    register(client, carrier, receiver.url("/fine"), ["parcel.announced"])
    with ctx.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE webhook_endpoints SET secret_sealed = :s WHERE id = :id"),
            {
                "s": Keyring("an old server secret")
                .sealer("webhook-secret")
                .seal("whsec_x", broken["id"]),
                "id": broken["id"],
            },
        )
    site = factory.site("SS")
    factory.announce(carrier, site)
    assert deliver(ctx) == ["delivered"]
    [failed] = _deliveries(client, carrier.headers, broken["id"])
    assert failed["state"] == "failed" and "rotate it" in failed["last_error"]
    new = client.post(f"/v1/webhooks/{broken['id']}/rotate", headers=carrier.headers).json()
    factory.announce(carrier, site)
    assert deliver(ctx) == ["delivered", "delivered"]
    [request] = receiver.to("/broken")
    Webhook(new["secret"]).verify(request.body, request.headers)
