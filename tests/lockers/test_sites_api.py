"""Sites over HTTP: free counts, site_full with the nearest alternatives, operators create sites."""

from __future__ import annotations

import random

from fastapi.testclient import TestClient
from sqlalchemy import select

from openlocker.core.context import Context
from openlocker.core.sql import Tx
from openlocker.lockers import allocation
from openlocker.lockers.models import Compartment
from openlocker.lockers.service import load_sizes
from tests.factories import Factory


def test_sites_show_free_compartments_by_size(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    site = factory.site("SSML")
    factory.deposited(carrier, site, size="S")
    body = client.get(f"/v1/sites/{site}", headers=carrier.headers).json()
    free = {(f["size"], f["temperature"]): f["free"] for f in body["free"]}
    assert free == {("S", "ambient"): 1, ("M", "ambient"): 1, ("L", "ambient"): 1}
    assert body["compartments_total"] == 4 and body["compartments"] is None
    listed = client.get("/v1/sites", headers=carrier.headers).json()
    assert [s["id"] for s in listed["items"]] == [site]


def test_site_full_names_the_nearest_sites_with_room(factory: Factory, client: TestClient) -> None:
    carrier = factory.org()
    full = factory.site("S", lat=52.2297, lon=21.0122, name="Full")
    near = factory.site("M", lat=52.2397, lon=21.0122, name="Near")  # ~1.1 km north
    far = factory.site("L", lat=52.4064, lon=16.9252, name="Far")  # Poznań
    factory.site("S", lat=52.2298, lon=21.0122, name="Too small")
    factory.deposited(carrier, full)
    response = factory.announce(carrier, full, size="M")
    assert response.status_code == 409
    alternatives = response.json()["alternatives"]
    assert [a["site_id"] for a in alternatives] == [near, far]
    assert 1000 < alternatives[0]["distance_m"] < 1250


def test_accessible_and_chilled_parcels_get_matching_compartments(factory: Factory) -> None:
    carrier = factory.org()
    high = factory.site("M", floor_height_mm=1500)
    assert factory.announce(carrier, high, size="S", accessible=True).json()["code"] == "site_full"
    assert (
        factory.announce(carrier, high, size="S", temperature="chilled").json()["code"]
        == "site_full"
    )
    chilled = factory.site("M", temperature="chilled", floor_height_mm=400)
    parcel = factory.deposited(carrier, chilled, size="S", temperature="chilled", accessible=True)
    assert parcel["compartment"]["size"] == "M"


def test_operator_creates_a_site(factory: Factory, client: TestClient) -> None:
    operator, carrier = factory.operator(), factory.org()
    spec = {
        "name": "Kraków Główny",
        "address": "Pawia 5a, 31-154 Kraków",
        "lat": 50.0677,
        "lon": 19.9476,
        "compartments": [{"label": "A1", "size": "M", "floor_height_mm": 200}],
    }
    created = client.post("/v1/sites", json=spec, headers=operator.headers)
    assert created.status_code == 201
    assert created.json()["free"] == [{"size": "M", "temperature": "ambient", "free": 1}]
    assert (
        client.post("/v1/sites", json=spec, headers=carrier.headers).json()["code"]
        == "missing_scope"
    )
    bad = {**spec, "compartments": [{"label": "A1", "size": "Q", "floor_height_mm": 200}]}
    assert (
        client.post("/v1/sites", json=bad, headers=operator.headers).json()["code"]
        == "unknown_size"
    )
    detail = client.get(f"/v1/sites/{created.json()['id']}", headers=operator.headers).json()
    assert [c["label"] for c in detail["compartments"]] == ["A1"]


def test_claims_follow_the_pure_ranking(factory: Factory, ctx: Context) -> None:
    """The database claim picks what ``allocation.rank_candidates`` ranks first."""
    rng = random.Random(7)
    carrier = factory.org()
    site_id = factory.site("SSMMLLXX")
    with ctx.db.transaction() as session:
        for compartment in session.scalars(
            select(Compartment).where(Compartment.site_id == site_id)
        ):
            compartment.use_count = rng.randrange(5)
            compartment.floor_height_mm = rng.choice([200, 900, 1500])
    for _ in range(6):
        size, accessible = rng.choice("SML"), rng.random() < 0.5
        with ctx.db.read() as session:
            sizes = load_sizes(ctx, Tx.of(session))
            free = session.scalars(
                select(Compartment).where(
                    Compartment.site_id == site_id, Compartment.state == "free"
                )
            ).all()
            need = allocation.ParcelNeed(None, size, "ambient", accessible)
            ranked = allocation.rank_candidates(
                need,
                [
                    allocation.Candidate(
                        c.id,
                        c.label,
                        sizes[c.size_code],
                        c.temperature,
                        c.floor_height_mm,
                        c.use_count,
                    )
                    for c in free
                ],
                sizes=sizes,
            )
        response = factory.announce(
            carrier, site_id, size=size, accessible=accessible, reserve=True
        )
        if not ranked:
            assert response.json()["code"] == "site_full"
            continue
        assert response.json()["compartment"]["id"] == ranked[0].id
