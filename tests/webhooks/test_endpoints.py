"""Registering, listing, rotating and deleting endpoints: scopes, ownership, audit."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from openlocker.audit.models import AuditEvent
from openlocker.core.context import Context
from tests.factories import Factory
from tests.webhooks.conftest import register

URL = "http://127.0.0.1:9/hook"


def test_the_secret_is_shown_once_and_stored_sealed(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    created = register(client, carrier, URL + "?token=integrators-own")
    assert created["id"].startswith("whe_") and created["secret"].startswith("whsec_")
    assert created["events"] == ["parcel.announced", "parcel.deposited"]
    shown = client.get(f"/v1/webhooks/{created['id']}", headers=carrier.headers).json()
    assert "secret" not in shown and shown["url"] == URL + "?token=integrators-own"
    listed = client.get("/v1/webhooks", headers=carrier.headers).json()["items"]
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    rotated = client.post(f"/v1/webhooks/{created['id']}/rotate", headers=carrier.headers).json()
    with ctx.db.engine.connect() as conn:
        dump = "\n".join(
            repr(tuple(row))
            for table in ("webhook_endpoints", "audit_events", "outbox")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
    for secret in (created["secret"], rotated["secret"]):
        assert secret not in dump and secret.removeprefix("whsec_") not in dump
    assert "integrators-own" not in dump.split("webhook_endpoints")[0].split("webhook.created")[-1]
    with ctx.db.read() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.name == "webhook.created")
        ).one()
    assert event.data["url"] == URL and event.actor.startswith("key:")


def test_a_carrier_never_sees_another_carriers_endpoints(
    factory: Factory, client: TestClient
) -> None:
    mine, theirs = factory.org(), factory.org()
    endpoint = register(client, mine, URL)
    for method, path in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate"),
        ("GET", "/deliveries"),
        ("POST", "/deliveries/whd_x/replay"),
    ]:
        answer = client.request(
            method,
            f"/v1/webhooks/{endpoint['id']}{path}",
            headers=theirs.headers,
            json={} if method == "PATCH" else None,
        )
        assert answer.status_code == 404, (method, path)
        assert answer.json()["code"] == "webhook_not_found"
    assert client.get("/v1/webhooks", headers=theirs.headers).json()["items"] == []
    everything = client.get("/v1/webhooks", headers=factory.operator().headers).json()
    assert [e["org_id"] for e in everything["items"]] == [mine.id]


def test_keys_need_the_webhooks_or_parcels_write_scope(
    factory: Factory, client: TestClient
) -> None:
    reader = factory.org(scopes=("parcels:read",))
    refused = client.post(
        "/v1/webhooks", json={"url": URL, "events": ["parcel.expired"]}, headers=reader.headers
    )
    assert refused.status_code == 403 and refused.json()["code"] == "missing_scope"
    register(client, factory.org("retailer", scopes=("webhooks",)), URL)


def test_bad_input_is_a_clear_422(factory: Factory, client: TestClient, ctx: Context) -> None:
    carrier = factory.org()
    for body, code in [
        ({"url": URL, "events": ["parcel.exploded"]}, "invalid_input"),
        ({"url": URL, "events": []}, "invalid_input"),
        ({"url": URL}, "invalid_input"),
        ({"url": URL, "events": ["parcel.expired"], "secret": "mine"}, "unknown_field"),
        (
            {"url": "https://user:pw@example.com/", "events": ["parcel.expired"]},
            "invalid_webhook_url",
        ),
        ({"url": "not a url", "events": ["parcel.expired"]}, "invalid_webhook_url"),
        ({"url": "https://[::1", "events": ["parcel.expired"]}, "invalid_webhook_url"),
        ({"url": "https://x" * 1000, "events": ["parcel.expired"]}, "invalid_input"),
    ]:
        answer = client.post("/v1/webhooks", json=body, headers=carrier.headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["code"] == code, body
    unknown = client.post(
        "/v1/webhooks", json={"url": URL, "events": ["parcel.exploded"]}, headers=carrier.headers
    ).json()["detail"]
    # The field and the types it may hold are named.
    assert unknown.startswith("events.0: ") and "'parcel.picked_up'" in unknown
    ctx.settings.webhooks_allow_private = False
    for url in (
        "https://127.0.0.1/",
        "https://10.1.1.1/",
        "https://169.254.169.254/",
        "https://[::1]/",
        "https://localhost/",
    ):
        answer = client.post(
            "/v1/webhooks", json={"url": url, "events": ["parcel.expired"]}, headers=carrier.headers
        )
        assert answer.status_code == 422 and answer.json()["code"] == "webhook_url_not_public"
    plain = client.post(
        "/v1/webhooks", json={"url": URL, "events": ["parcel.expired"]}, headers=carrier.headers
    )
    assert plain.json()["code"] == "invalid_webhook_url"
    assert client.get("/v1/webhooks", headers=carrier.headers).json()["items"] == []


def test_changes_and_deletion_are_audited(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    endpoint = register(client, carrier, URL)
    path = f"/v1/webhooks/{endpoint['id']}"
    changed = client.patch(
        path, json={"events": ["parcel.picked_up"], "enabled": False}, headers=carrier.headers
    ).json()
    assert changed["events"] == ["parcel.picked_up"]
    assert (
        changed["disabled_reason"]
        == f"turned off by key:{changed['disabled_reason'].split(':')[1]}"
    )
    deleted = client.delete(path, headers=carrier.headers)
    assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None
    assert client.get(path, headers=carrier.headers).json()["code"] == "webhook_not_found"
    with ctx.db.read() as session:
        names = session.scalars(
            select(AuditEvent.name)
            .where(AuditEvent.name.like("webhook.%"))
            .order_by(AuditEvent.seq)
        ).all()
        sealed = session.execute(
            text("SELECT secret_sealed FROM webhook_endpoints WHERE id = :id"),
            {"id": endpoint["id"]},
        ).scalar()
    assert names == ["webhook.created", "webhook.updated", "webhook.deleted"]
    assert sealed is None
