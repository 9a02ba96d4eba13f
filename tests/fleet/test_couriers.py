"""Carriers give their couriers codes for kiosks' courier mode; never kept in plain text."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.core.context import Context
from tests.factories import Factory
from tests.fleet.helpers import audit_names


def test_a_carrier_creates_lists_and_deactivates_its_courier_codes(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    created = client.post(
        "/v1/couriers", json={"name": "Jan", "site_ids": [site]}, headers=carrier.headers
    )
    assert created.status_code == 201, created.text
    courier = created.json()
    assert len(courier["code"]) == 10 and courier["code"].isdigit()
    assert (courier["org_id"], courier["site_ids"], courier["active"]) == (carrier.id, [site], True)
    everywhere = client.post("/v1/couriers", json={"name": "Ola"}, headers=carrier.headers).json()
    assert everywhere["site_ids"] is None and everywhere["code"] != courier["code"]

    listed = client.get("/v1/couriers", headers=carrier.headers).json()
    assert [c["id"] for c in listed["items"]] == [everywhere["id"], courier["id"]]
    assert all("code" not in c for c in listed["items"])
    paged = client.get("/v1/couriers", params={"limit": 1}, headers=carrier.headers).json()
    second = client.get(
        "/v1/couriers", params={"limit": 1, "cursor": paged["next_cursor"]}, headers=carrier.headers
    ).json()
    assert [c["id"] for c in paged["items"] + second["items"]] == [everywhere["id"], courier["id"]]
    assert second["next_cursor"] is None

    other = factory.org()
    assert client.get("/v1/couriers", headers=other.headers).json()["items"] == []
    stranger = client.delete(f"/v1/couriers/{courier['id']}", headers=other.headers)
    assert (stranger.status_code, stranger.json()["code"]) == (404, "courier_not_found")

    gone = client.delete(f"/v1/couriers/{courier['id']}", headers=carrier.headers)
    assert gone.status_code == 200 and gone.json()["active"] is False
    again = client.delete(f"/v1/couriers/{courier['id']}", headers=carrier.headers)
    assert again.json()["deactivated_at"] == gone.json()["deactivated_at"]
    active = client.get("/v1/couriers", params={"active": True}, headers=carrier.headers).json()
    assert [c["id"] for c in active["items"]] == [everywhere["id"]]
    operator = factory.operator()
    assert len(client.get("/v1/couriers", headers=operator.headers).json()["items"]) == 2

    with ctx.db.engine.connect() as conn:
        names = [
            row[0]
            for row in conn.execute(
                text("SELECT name FROM audit_events WHERE name LIKE 'courier.%' ORDER BY seq")
            )
        ]
        dump = repr(conn.execute(text("SELECT * FROM courier_codes")).all())
        trail = repr(conn.execute(text("SELECT data FROM audit_events")).all())
    assert names == ["courier.created", "courier.created", "courier.deactivated"]
    for code in (courier["code"], everywhere["code"]):
        assert code not in dump and code not in trail
    assert audit_names(ctx, site) == ["site.created"]  # courier events belong to no site


def test_bad_courier_requests_are_refused(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    unknown = client.post(
        "/v1/couriers", json={"name": "Jan", "site_ids": ["sit_nope"]}, headers=carrier.headers
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_site")
    for body in ({"name": ""}, {"name": "Jan", "site_ids": []}, {"name": "J", "extra": 1}):
        assert client.post("/v1/couriers", json=body, headers=carrier.headers).status_code == 422
    reader = factory.org(scopes=("parcels:read",))
    refused = client.post("/v1/couriers", json={"name": "Jan"}, headers=reader.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "missing_scope")
    bad = client.get("/v1/couriers", params={"cursor": "%%%"}, headers=carrier.headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")
    assert client.get("/v1/couriers", headers=carrier.headers).json()["items"] == []
