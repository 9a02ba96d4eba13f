"""The conflict rules of docs/kiosk-sync.md, lived through by a real kiosk: offline, it acts on
what it knows; meanwhile the server's records change; back online, its events are what
physically happened, and its store ends up agreeing with the server."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.access import presence
from openlocker.access.credentials import kiosk_digest
from openlocker.core.clock import system_clock
from openlocker.core.context import Context
from openlocker.core.keys import unb64url
from openlocker.core.sql import Tx
from openlocker.kiosk.boards.bank import Bank
from openlocker.parcels.service import expire_due
from openlocker.web.service import open_compartment
from tests.factories import Factory
from tests.kiosk.e2e import (
    Locker,
    address_of,
    audit_of,
    clock,  # noqa: F401 (the real clock, for the server and the kiosk)
    kiosk_address,
    locker,
    pending_commands,
    status_of,
    wait_for,
)
from tests.orders.helpers import place, retailer, zoned_site
from tests.servers import _free_port, serving


def _conflicts(ctx: Context, site: str) -> list[list[str]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT data FROM audit_events WHERE site_id = :s AND name = 'kiosk.conflict'"
                " ORDER BY seq"
            ),
            {"s": site},
        ).all()
    return [Tx.json(row[0])["reasons"] for row in rows]


def _kiosk_state(k: Locker, compartment_id: str) -> str:
    compartment = k.kiosk.call(lambda agent: agent.store.compartment(compartment_id))
    return str(compartment.state)  # type: ignore[attr-defined]


def _usable(k: Locker, pin: str) -> bool:
    def look(agent: Any) -> Any:
        key = unb64url(agent.store.meta("digest_key"))
        return agent.store.credential_by("pin", kiosk_digest(key, "pin", pin))

    credential = k.kiosk.call(look)
    return credential is not None and credential.used_at is None  # type: ignore[attr-defined]


@contextmanager
def _offline_day(
    ctx: Context, tmp: Path, site: str, key: str, bank: Bank, *, credentials: int
) -> Iterator[tuple[Locker, Callable[[], Any]]]:
    """A kiosk that syncs with a real server (whose deposits' doors it opens and that are
    then shut), loses it, and yields with a function that brings the server back."""
    port = _free_port()
    with locker(tmp, site, key, f"http://127.0.0.1:{port}", bank) as k:
        with serving(ctx, workers=1, port=port):
            wait_for(
                lambda: k.synced(credentials=credentials) and pending_commands(ctx, site) == 0,
                "the first sync and the deposits' door commands",
            )
            k.close_all()
            wait_for(lambda: k.health()["open_doors"] == 0 and k.synced(), "the doors shut")
        wait_for(lambda: not k.health()["online"], "the kiosk to notice the server gone")

        @contextmanager
        def back() -> Iterator[None]:
            with serving(ctx, workers=1, port=port):
                wait_for(k.synced, "the kiosk's queue to drain")
                yield

        yield k, back


def test_a_parcel_expired_on_the_server_but_picked_up_offline_is_picked_up(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SS", dwell_hours=1)
    parcel = factory.deposited(carrier, site)
    bank = Bank(1, 16)
    with _offline_day(ctx, tmp_path, site, factory.kiosk(site).key, bank, credentials=1) as (
        k,
        back,
    ):
        answer = k.http.post("/api/pickup", json={"pin": parcel["pickup"]["pin"]})
        assert answer.status_code == 200 and answer.json()["offline"] is True
        bank.close_door(address_of(parcel, ctx))
        later = dataclasses.replace(ctx, clock=lambda: system_clock() + timedelta(hours=2))
        assert expire_due(later) == (1, 0)
        assert status_of(client, carrier, parcel["id"]) == "expired"
        with back():
            assert status_of(client, carrier, parcel["id"]) == "picked_up"
            assert _conflicts(ctx, site) == [["expired_on_server", "credential_inactive"]]
            wait_for(lambda: _kiosk_state(k, parcel["compartment"]["id"]) == "free", "the map")


def test_a_parcel_cancelled_on_the_server_but_deposited_offline_waits_for_its_courier(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    announced = factory.announce(carrier, site).json()
    code = client.post("/v1/couriers", json={"name": "K"}, headers=carrier.headers).json()["code"]
    bank = Bank(1, 16)
    with _offline_day(ctx, tmp_path, site, factory.kiosk(site).key, bank, credentials=0) as (
        k,
        back,
    ):
        assert k.http.post("/api/courier/login", json={"code": code}).status_code == 200
        answer = k.http.post(
            "/api/courier/deposit", json={"tracking_number": announced["tracking_number"]}
        )
        assert answer.status_code == 200, answer.text
        compartment = answer.json()["compartment"]["id"]
        bank.load(kiosk_address(k, compartment))
        bank.close_door(kiosk_address(k, compartment))
        cancel = client.post(f"/v1/parcels/{announced['id']}/cancel", headers=carrier.headers)
        assert cancel.is_success
        with back():
            parcel = client.get(f"/v1/parcels/{announced['id']}", headers=carrier.headers).json()
            assert (parcel["status"], parcel["compartment"]["id"]) == ("expired", compartment)
            assert _conflicts(ctx, site) == [["cancelled_on_server"]]
            wait_for(lambda: _kiosk_state(k, compartment) == "occupied", "the map")


def test_a_link_opened_while_the_kiosk_was_offline_does_not_open_the_emptied_door(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SS")
    parcel = factory.deposited(carrier, site)
    address = address_of(parcel, ctx)
    bank = Bank(1, 16)
    with _offline_day(ctx, tmp_path, site, factory.kiosk(site).key, bank, credentials=1) as (
        k,
        back,
    ):
        pulses = bank.snapshot(address).pulses  # the deposit's door
        assert k.http.post("/api/pickup", json={"qr": parcel["pickup"]["qr"]}).status_code == 200
        bank.close_door(address)
        # Meanwhile someone at the locker opens it from the recipient's link page.
        link = parcel["pickup"]["link"].rsplit("/", 1)[1]
        open_compartment(ctx, link, presence.current_code(ctx.keyring, site, ctx.clock()).code, "t")
        assert pending_commands(ctx, site) == 1
        with back():
            wait_for(lambda: pending_commands(ctx, site) == 0, "the command withdrawn")
            assert _conflicts(ctx, site) == [["already_picked_up", "credential_inactive"]]
            assert [a["parcel_id"] for a in audit_of(ctx, site, "kiosk.command_withdrawn")] == [
                parcel["id"]
            ]
        assert bank.snapshot(address).pulses == pulses + 1  # the kiosk's pickup, once


def test_a_deposit_into_a_compartment_the_server_gave_away_moves_the_other_parcel(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SSSS")
    announced = factory.announce(carrier, site).json()
    code = client.post("/v1/couriers", json={"name": "K"}, headers=carrier.headers).json()["code"]
    bank = Bank(1, 16)
    with _offline_day(ctx, tmp_path, site, factory.kiosk(site).key, bank, credentials=0) as (
        k,
        back,
    ):
        assert k.http.post("/api/courier/login", json={"code": code}).status_code == 200
        chosen = k.http.post(
            "/api/courier/deposit", json={"tracking_number": announced["tracking_number"]}
        ).json()["compartment"]["id"]
        # Meanwhile the server reserves that very compartment for another parcel.
        other = factory.announce(carrier, site, reserve=True).json()
        assert other["compartment"]["id"] == chosen
        bank.load(kiosk_address(k, chosen))
        bank.close_door(kiosk_address(k, chosen))
        with back():
            assert _conflicts(ctx, site) == [["compartment_given_away"]]
            deposited = client.get(f"/v1/parcels/{announced['id']}", headers=carrier.headers)
            assert deposited.json()["compartment"]["id"] == chosen
            moved = client.get(f"/v1/parcels/{other['id']}", headers=carrier.headers).json()
            assert moved["status"] == "announced"
            assert moved["compartment"]["id"] != chosen
            wait_for(lambda: _kiosk_state(k, chosen) == "occupied", "the map")
            wait_for(lambda: _kiosk_state(k, moved["compartment"]["id"]) == "reserved", "the move")


def test_an_order_with_a_stuck_door_is_collected_in_part_then_in_full(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    shop = retailer(factory)
    site = zoned_site(ctx, {"ambient": "SSS"})
    order = place(factory, shop, site, [{"size": "S"}, {"size": "S"}]).json()
    loaded = client.post(f"/v1/orders/{order['id']}/load", headers=shop.headers).json()
    pin = loaded["pickup"]["pin"]
    bank = Bank(1, 16)
    port = _free_port()
    with (
        serving(ctx, workers=1, port=port) as base,
        locker(tmp_path, site, factory.kiosk(site).key, base, bank) as k,
    ):
        wait_for(lambda: k.synced(credentials=1) and pending_commands(ctx, site) == 0, "sync")
        k.close_all()
        wait_for(lambda: k.health()["open_doors"] == 0 and k.synced(), "the doors shut")
        bank.jam((0, 1))
        first = k.http.post("/api/pickup", json={"pin": pin}).json()
        assert [c["label"] for c in first["compartments"]] == ["A1"]
        assert [c["label"] for c in first["failed"]] == ["A2"]
        bank.close_door((0, 0))
        wait_for(
            lambda: (
                client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()["status"]
                == "partially_collected"
            ),
            "the partial pickup",
        )
        bank.jam((0, 1), False)
        # Once the kiosk has heard that the code is good for the rest, it opens the rest.
        wait_for(lambda: _usable(k, pin), "the code given back for the rest")
        again = k.http.post("/api/pickup", json={"pin": pin})
        assert [c["label"] for c in again.json()["compartments"]] == ["A2"], again.text
        assert bank.snapshot((0, 1)).door_open
        wait_for(
            lambda: (
                client.get(f"/v1/orders/{order['id']}", headers=shop.headers).json()["status"]
                == "collected"
            ),
            "the order collected",
        )
        alarms = client.get("/v1/alarms", headers=factory.operator().headers).json()["items"]
        assert {(a["kind"], a["state"]) for a in alarms} == {("door_jammed", "closed")}
