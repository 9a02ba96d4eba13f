"""Open deposit at the kiosk against a real ``openlocker serve`` (SQLite, and PostgreSQL when
configured), on sim boards: a courier with no announced parcel finds a resident in the
site's directory, picks a size, a door opens, and closing it deposits the parcel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.core.context import Context
from openlocker.kiosk.agent import Agent
from openlocker.kiosk.boards.bank import Bank
from tests.directory.helpers import Building, add_entry, building
from tests.factories import Factory, Org
from tests.kiosk.e2e import (
    Locker,
    clock,  # noqa: F401 (the real clock, for the server and the kiosk)
    kiosk_address,
    kiosk_events,
    locker,
    wait_for,
)
from tests.servers import _free_port, serving


def _courier_code(client: TestClient, org: Org) -> str:
    made = client.post("/v1/couriers", json={"name": "Ola"}, headers=org.headers)
    assert made.status_code == 201, made.text
    code: str = made.json()["code"]
    return code


def _sign_in(k: Locker, code: str) -> None:
    wait_for(
        lambda: k.http.post("/api/courier/login", json={"code": code}).status_code == 200,
        "the courier code to reach the kiosk",
    )


def _status(ctx: Context, parcel_id: str) -> tuple[str, str | None]:
    with ctx.db.engine.connect() as conn:
        status, compartment = conn.execute(
            text("SELECT status, compartment_id FROM parcels WHERE id = :id"), {"id": parcel_id}
        ).one()
    return str(status), compartment


def _compartment_state(ctx: Context, compartment_id: str) -> str:
    with ctx.db.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT state FROM compartments WHERE id = :id"), {"id": compartment_id}
            ).scalar_one()
        )


def _pin_sent(ctx: Context, parcel_id: str) -> str | None:
    with ctx.db.engine.connect() as conn:
        sealed = conn.execute(
            text(
                "SELECT sealed FROM outbox WHERE parcel_id = :p"
                " AND topic = 'recipient.pickup_ready'"
            ),
            {"p": parcel_id},
        ).scalar()
    return None if sealed is None else str(orjson.loads(ctx.keyring.unseal(sealed))["pin"])


def _setup(factory: Factory, sizes: str = "SSM") -> tuple[Building, Org, dict[str, Any]]:
    here = building(factory, sizes)
    carrier = factory.org()
    entry = add_entry(
        factory, here, display_name="Łucja Żółć", unit="12A", email="lucja@example.com"
    )
    add_entry(factory, here, display_name="Jan Nowak", unit="3", phone="+48600100200")
    return here, carrier, entry


def _deposit(k: Locker, entry_id: str, size: str, request_id: str | None = None) -> Any:
    body: dict[str, Any] = {"entry_id": entry_id, "size": size}
    if request_id is not None:
        body["request_id"] = request_id
    return k.http.post("/api/courier/open-deposit", json=body)


def test_a_courier_delivers_to_a_resident_and_closing_the_door_sends_the_credentials(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    here, carrier, entry = _setup(factory)
    code = _courier_code(client, carrier)
    bank = Bank(1, 16)
    with (
        serving(ctx, workers=1) as base,
        locker(tmp_path, here.site_id, here.kiosk.key, base, bank) as k,
    ):
        wait_for(k.synced, "the first sync")
        before = k.http.get("/api/courier/directory", params={"q": "zolc"})
        assert before.status_code == 401 and before.json()["code"] == "courier_required"
        _sign_in(k, code)

        found = k.http.get("/api/courier/directory", params={"q": "lucja 12a"})
        assert found.status_code == 200, found.text
        assert found.json() == {
            "items": [{"id": entry["id"], "display_name": "Łucja Żółć", "unit": "12A"}],
            "more": False,
        }
        none = k.http.get("/api/courier/directory", params={"q": "kowalski"}).json()
        assert none == {"items": [], "more": False}
        sizes = k.http.get("/api/courier/open-deposit/sizes").json()
        assert [s["code"] for s in sizes["sizes"]] == ["S", "M"]  # no L here

        opened = _deposit(k, entry["id"], "S", "tap-0001")
        assert opened.status_code == 200, opened.text
        answer = opened.json()
        again = _deposit(k, entry["id"], "S", "tap-0001")  # a double tap
        assert again.status_code == 200 and again.json() == answer
        address = kiosk_address(k, answer["compartment"]["id"])
        assert bank.snapshot(address).door_open and bank.snapshot(address).pulses == 1
        assert k.open_doors() == 1
        assert answer["recipient"] == {
            "id": entry["id"],
            "display_name": "Łucja Żółć",
            "unit": "12A",
        }
        parcel_id = answer["parcel_id"]
        assert _status(ctx, parcel_id) == ("announced", answer["compartment"]["id"])
        assert _pin_sent(ctx, parcel_id) is None  # told only once the parcel is in

        bank.load(address)
        bank.close_door(address)
        wait_for(lambda: _status(ctx, parcel_id)[0] == "deposited", "the deposit on the server")
        assert _status(ctx, parcel_id) == ("deposited", answer["compartment"]["id"])
        pin = _pin_sent(ctx, parcel_id)
        assert pin is not None
        assert [e.body["parcel_id"] for e in kiosk_events(k, "deposit")] in ([], [parcel_id])

        # The recipient collects it at this kiosk with the PIN from their message.
        wait_for(k.synced, "the deposit's sync")
        picked = k.http.post("/api/pickup", json={"pin": pin})
        assert picked.status_code == 200, picked.text
        assert picked.json()["compartment"]["id"] == answer["compartment"]["id"]
        bank.load(address, False)
        bank.close_door(address)
        wait_for(lambda: _status(ctx, parcel_id)[0] == "picked_up", "the pickup on the server")

        with ctx.db.engine.connect() as conn:
            data = conn.execute(
                text(
                    "SELECT data FROM audit_events WHERE parcel_id = :p"
                    " AND name = 'parcel.announced'"
                ),
                {"p": parcel_id},
            ).scalar_one()
        data = data if isinstance(data, dict) else orjson.loads(data)
        assert data["open_deposit"] is True and data["entry_id"] == entry["id"]
        assert pin not in k.kiosk.call(lambda agent: str(agent.store.events()))


def _kiosk_state(k: Locker, compartment_id: str) -> str | None:
    """The compartment's state in the kiosk's own store."""

    def state(agent: Agent) -> str | None:
        compartment = agent.store.compartment(compartment_id)
        return None if compartment is None else compartment.state

    return cast("str | None", k.kiosk.call(state))


def test_refusals_a_jammed_door_an_empty_close_and_going_offline(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    here, carrier, entry = _setup(factory)
    code = _courier_code(client, carrier)
    retailer = factory.org("retailer")
    shop_code = _courier_code(client, retailer)
    bank = Bank(1, 16)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # Syncing a minute apart: a called-off deposit's compartment is free at once all the same.
    with locker(tmp_path, here.site_id, here.kiosk.key, base, bank, sync_interval_s=60) as k:
        with serving(ctx, workers=1, port=port):
            wait_for(k.synced, "the first sync")
            # A retailer's staff do not deliver to residents.
            _sign_in(k, shop_code)
            refused = _deposit(k, entry["id"], "S")
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "open_deposit_not_allowed"
            assert k.open_doors() == 0
            k.http.post("/api/courier/logout")

            _sign_in(k, code)
            gone = _deposit(k, "dir_nobody", "S")
            assert gone.status_code == 404 and gone.json()["code"] == "entry_not_found"
            assert k.health()["online"]

            # The best S door is jammed: it goes out of service and the other S opens.
            compartments = k.kiosk.call(lambda agent: agent.store.compartments())
            first, second = (c for c in compartments if c.size == "S")  # type: ignore[attr-defined]
            bank.jam(first.address)
            opened = _deposit(k, entry["id"], "S")
            assert opened.status_code == 200, opened.text
            assert opened.json()["compartment"]["id"] == second.id
            parcel_id = opened.json()["parcel_id"]
            bank.load(second.address)
            bank.close_door(second.address)
            wait_for(lambda: _status(ctx, parcel_id) == ("deposited", second.id), "the deposit")
            assert _pin_sent(ctx, parcel_id) is not None
            wait_for(lambda: _compartment_state(ctx, first.id) == "out_of_service", "the jam")

            # The M door shuts on nothing: the deposit is called off, nobody is told.
            empty = _deposit(k, entry["id"], "S")  # the S are out: the M takes it
            assert empty.status_code == 200, empty.text
            empty_id = empty.json()["parcel_id"]
            emptied = empty.json()["compartment"]["id"]
            address = kiosk_address(k, emptied)
            bank.close_door(address)
            wait_for(lambda: _status(ctx, empty_id) == ("cancelled", None), "the calling off")
            wait_for(lambda: _kiosk_state(k, emptied) == "free", "the kiosk to see it free")
            assert _pin_sent(ctx, empty_id) is None
            last = _deposit(k, entry["id"], "M")
            assert last.status_code == 200, last.text
            address = kiosk_address(k, last.json()["compartment"]["id"])
            bank.load(address)
            bank.close_door(address)
            full = _deposit(k, entry["id"], "S")  # the S jammed, the other S and the M taken
            assert full.status_code == 409 and full.json()["code"] == "site_full"

        # The server is gone: open deposit says it needs the network (a sync now finds out).
        k.kiosk.call(lambda agent: agent.wake_sync())
        wait_for(lambda: not k.health()["online"], "the kiosk to notice the server gone")
        offline = _deposit(k, entry["id"], "M")
        assert offline.status_code == 503 and offline.json()["code"] == "open_deposit_offline"
        search = k.http.get("/api/courier/directory", params={"q": "nowak"})
        assert search.status_code == 503 and search.json()["code"] == "open_deposit_offline"
        assert k.open_doors() == 0

        k.http.post("/api/courier/logout")
        signed_out = _deposit(k, entry["id"], "M")
        assert signed_out.status_code == 401 and signed_out.json()["code"] == "courier_required"
