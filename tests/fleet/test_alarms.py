"""Alarms: raised by kiosks and features, counted while open, listed and acknowledged."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.core.clock import FrozenClock
from openlocker.core.context import Actor, Context
from openlocker.fleet.alarms import do_clear_alarm, do_raise_alarm
from openlocker.webhooks.service import fan_out
from tests.factories import Factory
from tests.fleet.helpers import audit_names, event, push
from tests.orders.helpers import outbox

ORDERS = Actor("system:orders")


def test_a_kiosk_raises_and_clears_alarms_and_an_operator_lists_and_takes_them(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    site, other = factory.site("SS"), factory.site("S")
    kiosk = factory.kiosk(site)
    operator = factory.operator()
    doors = [
        c["id"]
        for c in client.get(f"/v1/sites/{site}/compartments", headers=kiosk.headers).json()["items"]
    ]
    now = clock.now
    push(
        client,
        site,
        kiosk,
        event("alarm", now, kind="door_left_open", compartment_id=doors[0], detail={"open_s": 90}),
        event("alarm", now, kind="door_left_open", compartment_id=doors[0], detail={"open_s": 180}),
        event("alarm", now, kind="door_left_open", compartment_id=doors[1]),
        event("alarm", now, kind="brute_force", detail="12 wrong PINs"),
    )
    with ctx.db.sql.transaction() as tx:
        do_raise_alarm(tx, ORDERS, other, "temperature_fault", now, detail={"celsius": 9.5})

    listed = client.get("/v1/alarms", headers=operator.headers).json()["items"]
    # Newest first by id (ids made in one millisecond come in any order).
    assert sorted((a["kind"], a["count"]) for a in listed) == [
        ("brute_force", 1),
        ("door_left_open", 1),
        ("door_left_open", 2),
        ("temperature_fault", 1),
    ]
    by_kind = {(a["kind"], a["compartment_id"]): a for a in listed}
    repeated = by_kind[("door_left_open", doors[0])]
    assert repeated["detail"]["open_s"] == 180 and repeated["state"] == "open"
    assert repeated["count"] == 2
    brute = by_kind[("brute_force", None)]
    assert brute["detail"]["message"] == "12 wrong PINs"

    def kinds(**filters: str) -> list[str]:
        page = client.get("/v1/alarms", params=filters, headers=operator.headers).json()
        return [a["kind"] for a in page["items"]]

    assert kinds(site_id=other) == ["temperature_fault"]
    assert kinds(kind="door_left_open") == ["door_left_open"] * 2
    assert kinds(state="closed") == []

    push(
        client,
        site,
        kiosk,
        event("alarm", now, kind="door_left_open", compartment_id=doors[0], state="cleared"),
    )
    taken = client.post(f"/v1/alarms/{brute['id']}/acknowledge", headers=operator.headers)
    assert taken.status_code == 200
    assert (taken.json()["state"], taken.json()["closed_reason"]) == ("closed", "acknowledged")
    again = client.post(f"/v1/alarms/{brute['id']}/acknowledge", headers=operator.headers)
    assert again.json()["closed_at"] == taken.json()["closed_at"]
    closed = client.get("/v1/alarms", params={"state": "closed"}, headers=operator.headers).json()
    assert {(a["kind"], a["closed_reason"]) for a in closed["items"]} == {
        ("door_left_open", "cleared"),
        ("brute_force", "acknowledged"),
    }
    # Raised again once closed: a new alarm.
    push(client, site, kiosk, event("alarm", now, kind="door_left_open", compartment_id=doors[0]))
    assert len(kinds(kind="door_left_open", state="open")) == 2

    page = client.get("/v1/alarms", params={"limit": 2}, headers=operator.headers).json()
    rest = client.get(
        "/v1/alarms", params={"limit": 10, "cursor": page["next_cursor"]}, headers=operator.headers
    ).json()
    assert len(page["items"]) + len(rest["items"]) == 5 and rest["next_cursor"] is None

    names = audit_names(ctx, site)
    assert names.count("alarm.raised") == 5 and "alarm.cleared" in names
    assert "alarm.acknowledged" in names


def test_alarms_are_for_operators(factory: Factory, client: TestClient, ctx: Context) -> None:
    site = factory.site("S")
    for org in (factory.org(), factory.kiosk(site)):
        refused = client.get("/v1/alarms", headers=org.headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "missing_scope")
    operator = factory.operator()
    missing = client.post("/v1/alarms/alm_nope/acknowledge", headers=operator.headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "alarm_not_found")
    for params in ({"state": "ajar"}, {"kind": "Bad Kind"}, {"cursor": "%%"}):
        assert client.get("/v1/alarms", params=params, headers=operator.headers).status_code == 422


def test_a_new_alarm_tells_the_operators_webhooks_a_repeat_does_not(
    factory: Factory, client: TestClient, ctx: Context, clock: FrozenClock
) -> None:
    ctx.settings.webhooks_allow_private = True
    operator = factory.operator()
    endpoint = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["alarm.raised"]},
        headers=operator.headers,
    )
    assert endpoint.status_code == 201, endpoint.text
    site = factory.site("S")
    for _ in range(2):
        with ctx.db.sql.transaction() as tx:
            do_raise_alarm(tx, ORDERS, site, "collection_discrepancy", clock.now)
    (message,) = outbox(ctx, "webhook.operator")
    assert message.payload["event"] == "alarm.raised" and message.payload["site_id"] == site
    assert message.payload["org_id"] == operator.id
    assert fan_out(ctx) == 1
    with ctx.db.engine.connect() as conn:
        (delivery,) = conn.execute(
            text("SELECT event_type, endpoint_id FROM webhook_deliveries")
        ).all()
    assert tuple(delivery) == ("alarm.raised", endpoint.json()["id"])
    with ctx.db.sql.transaction() as tx:
        assert do_clear_alarm(tx, ORDERS, site, "collection_discrepancy", clock.now) is not None
        assert do_clear_alarm(tx, ORDERS, site, "collection_discrepancy", clock.now) is None


def test_racing_raises_of_one_alarm_count_up_one_row(
    factory: Factory, ctx: Context, clock: FrozenClock
) -> None:
    site = factory.site("S")
    errors: list[BaseException] = []

    def raise_some() -> None:
        try:
            for _ in range(10):
                with ctx.db.sql.transaction() as tx:
                    do_raise_alarm(tx, ORDERS, site, "kiosk_silent", clock.now)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=raise_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT state, count FROM alarms WHERE site_id = :s"), {"s": site}
        ).all()
    assert [tuple(r) for r in rows] == [("open", 40)]
