"""Organizations and API keys: created by operators, shown once, stored hashed, revocable."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from openlocker.core.context import Context
from openlocker.orgs.models import ApiKey
from tests.factories import Factory


def test_key_lifecycle(factory: Factory, client: TestClient, ctx: Context) -> None:
    operator = factory.operator()
    org = client.post(
        "/v1/organizations",
        json={"name": "Swift Couriers", "kind": "carrier"},
        headers=operator.headers,
    )
    assert org.status_code == 201
    org_id = org.json()["id"]
    created = client.post(
        f"/v1/organizations/{org_id}/keys",
        json={"name": "handhelds", "scopes": ["parcels:write", "parcels:read"]},
        headers=operator.headers,
    )
    assert created.status_code == 201
    key = created.json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/parcels", headers=headers).status_code == 200

    with ctx.db.read() as session:
        stored = session.scalars(select(ApiKey).where(ApiKey.org_id == org_id)).one()
    assert key not in (stored.key_digest, stored.prefix) and stored.prefix in key

    listed = client.get(f"/v1/organizations/{org_id}/keys", headers=operator.headers).json()
    assert [k["id"] for k in listed["items"]] == [created.json()["id"]]
    assert "key" not in listed["items"][0]

    revoked = client.delete(
        f"/v1/organizations/{org_id}/keys/{stored.id}", headers=operator.headers
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    refused = client.get("/v1/parcels", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_api_key"


def test_only_operators_manage_keys(factory: Factory, client: TestClient) -> None:
    carrier, operator = factory.org(), factory.operator()
    body = {"name": "x", "kind": "carrier"}
    assert (
        client.post("/v1/organizations", json=body, headers=carrier.headers).json()["code"]
        == "missing_scope"
    )
    bad_scope = client.post(
        f"/v1/organizations/{carrier.id}/keys",
        json={"name": "x", "scopes": ["parcels:everything"]},
        headers=operator.headers,
    )
    assert bad_scope.status_code == 422 and bad_scope.json()["code"] == "unknown_scope"
    missing = client.delete(
        f"/v1/organizations/{carrier.id}/keys/key_nope", headers=operator.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "api_key_not_found"
    bad_kind = client.post(
        "/v1/organizations", json={"name": "x", "kind": "bank"}, headers=operator.headers
    )
    assert bad_kind.status_code == 422
