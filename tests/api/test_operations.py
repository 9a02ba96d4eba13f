"""Health, OpenAPI, metrics and logs that never carry a code or a key."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from openlocker.core.logging import JsonFormatter
from tests.factories import Factory


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert "/v1/parcels" in spec["paths"] and "/v1/sites/{site_id}/pickups" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_metrics(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("SM")
    factory.deposited(carrier, site)
    text = client.get("/metrics").text
    assert 'openlocker_parcels{status="deposited"} 1.0' in text
    assert f'openlocker_compartments_free{{site_id="{site}",size="M"}} 1.0' in text
    assert 'route="/v1/parcels/{parcel_id}/deposit"' in text
    assert "openlocker_http_request_duration_seconds_bucket" in text


def test_logs_are_json_and_hold_no_codes_or_keys(
    factory: Factory, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    with caplog.at_level(logging.INFO):
        parcel = factory.deposited(carrier, site)
        client.post(f"/v1/sites/{site}/pickups", json={"pin": "00000000"}, headers=kiosk.headers)
        client.post(
            f"/v1/sites/{site}/pickups",
            json={"pin": parcel["pickup"]["pin"]},
            headers=kiosk.headers,
        )
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert any('"route":"/v1/sites/{site_id}/pickups"' in line for line in lines)
    everything = "\n".join(lines)
    for secret in (
        parcel["pickup"]["pin"],
        parcel["pickup"]["qr"],
        carrier.key,
        kiosk.key,
        "00000000",
    ):
        assert secret not in everything
