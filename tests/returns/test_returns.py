"""Returns and courier collection: a code, a drop-off at any locker, one visit to collect."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from openlocker.core.clock import FrozenClock
from openlocker.core.context import Context
from openlocker.core.errors import DomainError
from openlocker.orgs.service import access_principal
from openlocker.parcels.service import expire_due
from openlocker.returns import service
from tests.factories import Factory, Org
from tests.orders.helpers import events, outbox


def _issue(factory: Factory, org: Org, **fields: object) -> dict[str, object]:
    body = {"reference": "RMA-1", "size": "M", "customer": {"email": "ana@example.com"}}
    body.update(fields)
    issued = factory.client.post("/v1/returns", json=body, headers=org.headers)
    assert issued.status_code == 201, issued.text
    return issued.json()  # type: ignore[no-any-return]


def test_a_return_is_dropped_off_and_collected_from_the_manifest(
    factory: Factory, client: TestClient, ctx: Context
) -> None:
    carrier = factory.org()
    site = factory.site("SML")
    issued = _issue(factory, carrier)
    code = str(issued["code"])
    assert len(code) == 19 and issued["status"] == "issued"

    kiosk = factory.kiosk(site)
    typed = code.lower().replace("-", " ")  # typed carelessly still reads
    dropped = client.post(f"/v1/sites/{site}/returns", json={"code": typed}, headers=kiosk.headers)
    assert dropped.status_code == 201, dropped.text
    assert dropped.json()["status"] == "awaiting_collection"
    assert dropped.json()["compartment"]["size"] == "M"
    (receipt,) = outbox(ctx, "recipient.return_receipt")
    assert receipt.payload["recipient"]["email"] == "ana@example.com"
    assert receipt.payload["reference"] == "RMA-1"

    again = client.post(f"/v1/sites/{site}/returns", json={"code": code}, headers=kiosk.headers)
    assert again.status_code == 409 and again.json()["code"] == "return_code_used"

    manifest = client.get(f"/v1/sites/{site}/collection", headers=carrier.headers).json()
    assert [(i["kind"], i["reference"]) for i in manifest["items"]] == [("return", "RMA-1")]
    parcel_id = manifest["items"][0]["parcel_id"]
    scanned = client.post(f"/v1/sites/{site}/collection/{parcel_id}", headers=carrier.headers)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["status"] == "collected"
    final = client.get(f"/v1/returns/{issued['id']}", headers=carrier.headers).json()
    assert final["status"] == "collected" and "code" not in final
    assert client.get(f"/v1/sites/{site}/collection", headers=carrier.headers).json()["items"] == []
    assert {"return.dropped_off", "parcel.collected", "return.collected"} <= set(events(ctx))


def test_one_visit_collects_returns_and_expired_parcels_of_the_courier_only(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier, other = factory.org(), factory.org()
    site, elsewhere = factory.site("SSSS"), factory.site("S")
    mine = factory.deposited(carrier, site)
    factory.deposited(other, site)
    clock.advance(hours=73)
    expire_due(ctx)
    kiosk = factory.kiosk(site)
    code = _issue(factory, carrier, size="S")["code"]
    client.post(f"/v1/sites/{site}/returns", json={"code": code}, headers=kiosk.headers)

    manifest = client.get(f"/v1/sites/{site}/collection", headers=carrier.headers).json()
    assert sorted(i["kind"] for i in manifest["items"]) == ["expired", "return"]
    wrong_site = client.post(
        f"/v1/sites/{elsewhere}/collection/{mine['id']}", headers=carrier.headers
    )
    assert wrong_site.status_code == 409 and wrong_site.json()["code"] == "not_at_site"

    missing = client.post(
        f"/v1/sites/{site}/collection/{mine['id']}",
        json={"outcome": "missing"},
        headers=carrier.headers,
    )
    assert missing.status_code == 200 and missing.json()["status"] == "expired"
    audit = client.get(
        "/v1/events",
        params={"name": "collection.discrepancy"},
        headers=factory.operator().headers,
    ).json()
    assert [e["parcel_id"] for e in audit["items"]] == [mine["id"]]
    assert "collection.discrepancy" in events(ctx)
    (alarm,) = client.get(
        "/v1/alarms", params={"site_id": site}, headers=factory.operator().headers
    ).json()["items"]
    assert alarm["kind"] == "collection_discrepancy" and alarm["state"] == "open"
    assert alarm["compartment_id"] == mine["compartment"]["id"]

    for item in manifest["items"]:
        done = client.post(
            f"/v1/sites/{site}/collection/{item['parcel_id']}", headers=carrier.headers
        )
        assert done.json()["status"] in ("returned", "collected")
    twice = client.post(f"/v1/sites/{site}/collection/{mine['id']}", headers=carrier.headers)
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_transition"


def test_bad_return_codes_are_refused_and_audited(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    carrier = factory.org()
    site = factory.site("S")
    kiosk = factory.kiosk(site)
    for code in ("0000-0000-0000-0000", "not a code at all!!"):
        refused = client.post(
            f"/v1/sites/{site}/returns", json={"code": code}, headers=kiosk.headers
        )
        assert refused.status_code == 403 and refused.json()["code"] == "invalid_code"
    code = _issue(factory, carrier, valid_days=1)["code"]
    clock.advance(days=2)
    late = client.post(f"/v1/sites/{site}/returns", json={"code": code}, headers=kiosk.headers)
    assert late.status_code == 403 and late.json()["code"] == "code_expired"
    failed = client.get(
        "/v1/events", params={"name": "return.drop_off_failed"}, headers=factory.operator().headers
    ).json()
    assert [e["data"]["reason"] for e in failed["items"]] == [
        "invalid_code",
        "invalid_code",
        "code_expired",
    ]
    duplicate = client.post(
        "/v1/returns",
        json={"reference": "RMA-1", "size": "S", "customer": {"email": "a@example.com"}},
        headers=carrier.headers,
    )
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_reference"


def test_racing_drop_offs_of_one_code_take_one_compartment(factory: Factory, ctx: Context) -> None:
    carrier = factory.org()
    site = factory.site("SSSSSS")
    code = str(_issue(factory, carrier, size="S")["code"])
    kiosk = access_principal(ctx, f"Bearer {factory.kiosk(site).key}")
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def drop() -> None:
        barrier.wait()
        try:
            service.drop_off(ctx, kiosk, site, code)
            outcomes.append("ok")
        except DomainError as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=drop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["ok"] + ["return_code_used"] * 7
