"""Bad input gets problem+json with a stable code, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from openlocker.audit.models import AuditEvent
from openlocker.core.context import Context
from openlocker.parcels.models import Parcel
from tests.factories import Factory


def _counts(ctx: Context) -> tuple[int, int]:
    with ctx.db.read() as session:
        parcels = session.scalar(select(func.count()).select_from(Parcel)) or 0
        events = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return parcels, events


def _problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        (
            {"size": None, "dimensions_mm": {"length": -1, "width": 10, "height": 10}},
            422,
            "invalid_input",
        ),
        (
            {"size": None, "dimensions_mm": {"length": 10**9, "width": 10, "height": 10}},
            422,
            "invalid_input",
        ),
        (
            {"size": None, "dimensions_mm": {"length": 2000, "width": 1900, "height": 1800}},
            422,
            "too_large",
        ),
        ({"size": None}, 422, "invalid_input"),
        ({"size": "XXXL"}, 422, "unknown_size"),
        (
            {"size": "XXXL", "dimensions_mm": {"length": 100, "width": 100, "height": 10}},
            422,
            "unknown_size",
        ),
        ({"colour": "red"}, 422, "unknown_field"),
        ({"recipient": {"email": "ana@example.com", "age": 3}}, 422, "unknown_field"),
        ({"notify": "openlocker", "recipient": {}}, 422, "invalid_input"),
        ({"notify": "pigeon"}, 422, "invalid_input"),
        ({"site_id": "sit_nope"}, 404, "site_not_found"),
        ({"tracking_number": ""}, 422, "invalid_input"),
        ({"temperature": "hot"}, 422, "invalid_input"),
    ],
)
def test_bad_announce(
    factory: Factory, ctx: Context, fields: dict[str, Any], status: int, code: str
) -> None:
    carrier = factory.org()
    site = factory.site("SMLX")
    before = _counts(ctx)
    payload = {"tracking_number": "T-1", "site_id": site, "size": "S", "notify": "sender", **fields}
    payload = {k: v for k, v in payload.items() if v is not None}
    response = factory.client.post("/v1/parcels", json=payload, headers=carrier.headers)
    _problem(response, status, code)
    assert _counts(ctx) == before


def test_malformed_json(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    response = client.post(
        "/v1/parcels",
        content=b'{"tracking_number": ',
        headers={**carrier.headers, "Content-Type": "application/json"},
    )
    _problem(response, 400, "malformed_json")


def test_duplicate_tracking_number_for_the_same_carrier(factory: Factory) -> None:
    carrier, other = factory.org(), factory.org()
    site = factory.site("SSS")
    assert factory.announce(carrier, site, tracking_number="DUP-1").status_code == 201
    _problem(
        factory.announce(carrier, site, tracking_number="DUP-1"), 409, "duplicate_tracking_number"
    )
    assert factory.announce(other, site, tracking_number="DUP-1").status_code == 201


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer olk_nope_nope"}, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "missing_api_key"),
    ],
)
def test_wrong_or_missing_key(
    factory: Factory, client: TestClient, headers: dict[str, str], code: str
) -> None:
    site = factory.site("S")
    response = client.post(
        "/v1/parcels",
        json={"tracking_number": "X", "site_id": site, "size": "S", "notify": "sender"},
        headers=headers,
    )
    _problem(response, 401, code)
    _problem(client.get("/v1/sites", headers=headers), 401, code)


def test_another_carriers_parcel_is_not_found(factory: Factory, client: TestClient) -> None:
    owner, other = factory.org(), factory.org()
    site = factory.site("S")
    parcel = factory.announce(owner, site).json()
    _problem(
        client.get(f"/v1/parcels/{parcel['id']}", headers=other.headers), 404, "parcel_not_found"
    )
    _problem(
        client.post(f"/v1/parcels/{parcel['id']}/deposit", headers=other.headers),
        404,
        "parcel_not_found",
    )
    operator = factory.operator()
    assert client.get(f"/v1/parcels/{parcel['id']}", headers=operator.headers).status_code == 200


def test_missing_scope(factory: Factory, client: TestClient) -> None:
    reader = factory.org(scopes=("parcels:read",))
    site = factory.site("S")
    _problem(factory.announce(reader, site), 403, "missing_scope")
    _problem(client.get("/v1/events", headers=reader.headers), 403, "missing_scope")


def test_pickup_errors(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    factory.deposited(carrier, site)
    url = f"/v1/sites/{site}/pickups"
    _problem(client.post(url, json={"pin": "00000000"}, headers=kiosk.headers), 403, "invalid_code")
    _problem(client.post(url, json={"qr": "garbage"}, headers=kiosk.headers), 403, "invalid_code")
    _problem(client.post(url, json={}, headers=kiosk.headers), 422, "invalid_input")
    _problem(
        client.post(url, json={"pin": "1", "qr": "2"}, headers=kiosk.headers), 422, "invalid_input"
    )
    _problem(
        client.post("/v1/sites/sit_nope/pickups", json={"pin": "1"}, headers=kiosk.headers),
        403,
        "not_site_kiosk",
    )


def test_deposit_of_a_cancelled_parcel(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    parcel = factory.announce(carrier, factory.site("S")).json()
    client.post(f"/v1/parcels/{parcel['id']}/cancel", headers=carrier.headers)
    _problem(
        client.post(f"/v1/parcels/{parcel['id']}/deposit", headers=carrier.headers),
        409,
        "invalid_transition",
    )
    _problem(
        client.post(f"/v1/parcels/{parcel['id']}/cancel", headers=carrier.headers),
        409,
        "invalid_transition",
    )


def test_bad_cursor_and_unknown_route(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    _problem(
        client.get("/v1/parcels", params={"cursor": "!!!"}, headers=carrier.headers),
        422,
        "invalid_cursor",
    )
    _problem(
        client.get("/v1/parcels", params={"limit": 0}, headers=carrier.headers),
        422,
        "invalid_input",
    )
    _problem(client.get("/v1/nothing-here"), 404, "not_found")


def test_text_the_database_cannot_store(factory: Factory, client: TestClient, ctx: Context) -> None:
    """A NUL character: SQLite stores it, PostgreSQL refuses it with a 422, never a 500."""
    carrier = factory.org()
    site = factory.site("S")
    postgres = ctx.db.engine.dialect.name == "postgresql"
    before = _counts(ctx)
    listed = client.get(
        "/v1/parcels", params={"tracking_number": "A\x00B"}, headers=carrier.headers
    )
    announced = factory.announce(carrier, site, tracking_number="T\x00", notify="sender")
    if postgres:
        _problem(listed, 422, "invalid_input")
    else:
        assert listed.status_code == 200
    _problem(announced, 422, "invalid_input")  # tracking numbers are printable ASCII
    assert _counts(ctx) == before
    _problem(
        client.get("/v1/sites/sit_%00", headers=carrier.headers),
        422 if postgres else 404,
        "invalid_input" if postgres else "site_not_found",
    )
