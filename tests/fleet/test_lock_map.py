"""Compartments know their board and lock; the site's kiosk and operators list them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from openlocker.core.context import Context
from tests.factories import Factory

_BODY = {"name": "Lock map", "address": "Test street 3", "lat": 52.2, "lon": 21.0}


def _compartments(n: int, **locks: dict[str, int]) -> list[dict[str, object]]:
    return [
        {"label": f"C{i}", "size": "S", "floor_height_mm": 300, **locks.get(f"C{i}", {})}
        for i in range(n)
    ]


def test_compartment_n_is_board_n_div_16_lock_n_mod_16(
    factory: Factory, client: TestClient
) -> None:
    operator = factory.operator()
    created = client.post(
        "/v1/sites", json={**_BODY, "compartments": _compartments(34)}, headers=operator.headers
    )
    assert created.status_code == 201, created.text
    site = created.json()["id"]
    listed = client.get(f"/v1/sites/{site}/compartments", headers=operator.headers)
    assert listed.status_code == 200
    by_label = {c["label"]: (c["board"], c["lock"]) for c in listed.json()["items"]}
    assert by_label["C0"] == (0, 0)
    assert by_label["C15"] == (0, 15)
    assert by_label["C16"] == (1, 0)
    assert by_label["C33"] == (2, 1)
    first = listed.json()["items"][0]
    assert set(first) >= {"id", "label", "size", "temperature", "state", "door", "board", "lock"}
    assert (first["state"], first["door"]) == ("free", "closed")


def test_a_compartment_may_name_its_own_lock(factory: Factory, client: TestClient) -> None:
    operator = factory.operator()
    body = {**_BODY, "compartments": _compartments(3, C1={"board": 7, "lock": 3})}
    site = client.post("/v1/sites", json=body, headers=operator.headers).json()["id"]
    listed = client.get(f"/v1/sites/{site}/compartments", headers=operator.headers).json()
    assert [(c["board"], c["lock"]) for c in listed["items"]] == [(0, 0), (7, 3), (0, 2)]
    # Operators see the map in the site too.
    shown = client.get(f"/v1/sites/{site}", headers=operator.headers).json()
    assert {(c["board"], c["lock"]) for c in shown["compartments"]} == {(0, 0), (7, 3), (0, 2)}


def test_two_compartments_on_one_lock_are_refused(factory: Factory, client: TestClient) -> None:
    operator = factory.operator()
    # C2 takes the default of C0 (board 0, lock 0)... and C0 takes it too.
    body = {**_BODY, "compartments": _compartments(3, C2={"board": 0, "lock": 0})}
    refused = client.post("/v1/sites", json=body, headers=operator.headers)
    assert refused.status_code == 422
    assert refused.json()["code"] == "duplicate_lock"
    half = {**_BODY, "compartments": _compartments(1, C0={"board": 1})}
    assert client.post("/v1/sites", json=half, headers=operator.headers).status_code == 422
    wide = {**_BODY, "compartments": _compartments(1, C0={"board": 1, "lock": 256})}
    assert client.post("/v1/sites", json=wide, headers=operator.headers).status_code == 422
    assert client.get("/v1/sites", headers=operator.headers).json()["items"] == []


def test_only_operators_and_the_sites_kiosk_list_compartments(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    site = factory.site("SM")
    other = factory.site("S")
    kiosk = factory.kiosk(site)
    listed = client.get(f"/v1/sites/{site}/compartments", headers=kiosk.headers)
    assert [(c["label"], c["board"], c["lock"]) for c in listed.json()["items"]] == [
        ("A1", 0, 0),
        ("A2", 0, 1),
    ]
    elsewhere = client.get(f"/v1/sites/{other}/compartments", headers=kiosk.headers)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (403, "not_site_kiosk")
    carrier = factory.org()
    assert client.get(f"/v1/sites/{site}/compartments", headers=carrier.headers).status_code == 403
    missing = client.get("/v1/sites/sit_nope/compartments", headers=factory.operator().headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "site_not_found")
