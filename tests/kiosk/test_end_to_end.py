"""The kiosk against a real ``openlocker serve`` (SQLite, and PostgreSQL when configured),
on sim boards the test acts on as the people at the doors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from openlocker.core.clock import Clock, system_clock
from openlocker.core.context import Context
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.run import KioskThread
from tests.factories import Factory, Org
from tests.servers import _free_port, serving


@pytest.fixture
def clock() -> Clock:
    """The real clock: the server and the kiosk run on it, so the test's setup does too."""
    return system_clock


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Locker:
    """A kiosk thread on a sim bank, and an HTTP client of its JSON API."""

    def __init__(self, kiosk: KioskThread, bank: Bank) -> None:
        self.kiosk = kiosk
        self.bank = bank
        self.http = httpx.Client(base_url=kiosk.url, timeout=10)

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/healthz").json()
        return body

    def synced(self, credentials: int | None = None) -> bool:
        health = self.health()
        return bool(
            health["online"]
            and health["queued"] == 0
            and (credentials is None or health["credentials"] == credentials)
        )

    def close_all(self) -> None:
        """Everyone shuts the doors they opened (after deposits' door commands, say)."""
        for board in range(self.bank.boards):
            for lock in range(self.bank.locks):
                if self.bank.snapshot((board, lock)).door_open:
                    self.bank.close_door((board, lock))

    def open_doors(self) -> int:
        return sum(
            self.bank.snapshot((b, lock)).door_open
            for b in range(self.bank.boards)
            for lock in range(self.bank.locks)
        )


@contextmanager
def locker(
    tmp: Path, site: str, key: str, base: str, bank: Bank, **timings: float
) -> Iterator[Locker]:
    settings = KioskSettings(
        site_id=site,
        server=base,
        key=key,
        data_dir=tmp / "kiosk",
        ui_port=_free_port(),
        sync_interval_s=timings.pop("sync_interval_s", 0.2),
        offline_retry_s=0.2,
        request_timeout_s=5.0,
        **timings,
    )
    with KioskThread(settings, drivers=[SimBoard(bank, poll_interval=0.02)]) as kiosk:
        yield Locker(kiosk, bank)


def _address(parcel: dict[str, Any], ctx: Context) -> tuple[int, int]:
    with ctx.db.engine.connect() as conn:
        board, lock = conn.execute(
            text("SELECT board, lock FROM compartments WHERE id = :id"),
            {"id": parcel["compartment"]["id"]},
        ).one()
    return int(board), int(lock)


def _status(client: TestClient, carrier: Org, parcel_id: str) -> str:
    return str(client.get(f"/v1/parcels/{parcel_id}", headers=carrier.headers).json()["status"])


def _audit(ctx: Context, site: str, name: str) -> list[dict[str, Any]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT parcel_id, compartment_id FROM audit_events"
                " WHERE site_id = :s AND name = :n ORDER BY seq"
            ),
            {"s": site, "n": name},
        ).all()
    return [{"parcel_id": p, "compartment_id": c} for p, c in rows]


def test_an_online_pickup_is_decided_at_the_kiosk_and_reaches_the_server(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SSSSMMMM")
    kiosk_key = factory.kiosk(site).key
    parcel = factory.deposited(carrier, site)
    address = _address(parcel, ctx)
    bank = Bank(1, 16)
    with serving(ctx, workers=1) as base, locker(tmp_path, site, kiosk_key, base, bank) as k:
        # The deposit's door command opens the door for the courier; then it is shut.
        wait_for(lambda: k.synced(credentials=1) and bank.snapshot(address).pulses, "sync")
        k.close_all()
        answer = k.http.post("/api/pickup", json={"pin": parcel["pickup"]["pin"]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["parcel_id"] == parcel["id"] and body["offline"] is False
        assert body["compartment"]["label"] == parcel["compartment"]["label"]
        assert bank.snapshot(address).door_open
        bank.close_door(address)
        wait_for(lambda: k.synced(credentials=0), "the pickup to reach the server")
        assert _status(client, carrier, parcel["id"]) == "picked_up"
        assert [a["parcel_id"] for a in _audit(ctx, site, "parcel.picked_up")] == [parcel["id"]]
        again = k.http.post("/api/pickup", json={"qr": parcel["pickup"]["qr"]})
        assert again.status_code == 403 and again.json()["code"] == "code_used"


def test_a_code_the_kiosk_has_not_synced_yet_is_decided_by_the_server(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    site = factory.site("SSSS")
    kiosk_key = factory.kiosk(site).key
    bank = Bank(1, 16)
    with (
        serving(ctx, workers=1) as base,
        locker(tmp_path, site, kiosk_key, base, bank, sync_interval_s=60) as k,
    ):
        wait_for(lambda: k.synced(credentials=0), "the first sync")
        parcel = factory.deposited(carrier, site)
        address = _address(parcel, ctx)
        answer = k.http.post("/api/pickup", json={"pin": parcel["pickup"]["pin"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["compartment"]["id"] == parcel["compartment"]["id"]
        assert bank.snapshot(address).door_open
        assert _status(client, carrier, parcel["id"]) == "picked_up"
        wrong = k.http.post("/api/pickup", json={"pin": "00000000"})
        assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_code"


def test_a_day_offline_200_pickups_and_deposits_sync_exactly_once_when_the_server_is_back(
    ctx: Context, factory: Factory, client: TestClient, tmp_path: Path
) -> None:
    carrier = factory.org()
    count = 100
    site = factory.site("M" * (2 * count))
    kiosk_key = factory.kiosk(site).key
    waiting = [factory.deposited(carrier, site, size="M") for _ in range(count)]
    announced = [
        factory.announce(carrier, site, size="M", notify="openlocker").json() for _ in range(count)
    ]
    courier = client.post(
        "/v1/couriers", json={"name": "Offline Olek"}, headers=carrier.headers
    ).json()
    bank = Bank(13, 16)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # The kiosk outlives its server: it starts before it, and goes on when it stops.
    with locker(tmp_path, site, kiosk_key, base, bank) as k:
        with serving(ctx, workers=1, port=port):
            wait_for(lambda: k.synced(credentials=count), "the first sync")
            # The deposits above sent door commands, run once: those doors are shut now.
            wait_for(lambda: k.open_doors() == count, "the deposits' door commands")
            k.close_all()
            wait_for(lambda: k.synced() and _pending_commands(ctx, site) == 0, "the doors")
        wait_for(lambda: not k.health()["online"], "the kiosk to notice the server gone")
        for n, parcel in enumerate(waiting):
            code = {"pin": parcel["pickup"]["pin"]} if n % 2 else {"qr": parcel["pickup"]["qr"]}
            answer = k.http.post("/api/pickup", json=code)
            assert answer.status_code == 200, answer.text
            assert answer.json()["offline"] is True
            bank.close_door(_address(parcel, ctx))
        assert k.http.post("/api/courier/login", json={"code": courier["code"]}).status_code == 200
        placed = {}
        for parcel in announced:
            answer = k.http.post(
                "/api/courier/deposit", json={"tracking_number": parcel["tracking_number"]}
            )
            assert answer.status_code == 200, answer.text
            placed[parcel["id"]] = answer.json()["compartment"]["id"]
            address = _kiosk_address(k, placed[parcel["id"]])
            bank.load(address)
            bank.close_door(address)
        wait_for(lambda: len(_kiosk_events(k, "deposit")) == count, "deposits confirmed")
        queued = k.health()["queued"]
        # A pickup and a deposit each, and each door's opening and closing.
        assert queued == 6 * count
        assert len(set(placed.values())) == count
        assert _status(client, carrier, waiting[0]["id"]) == "deposited"
        with serving(ctx, workers=1, port=port):
            wait_for(k.synced, "the queue to drain", timeout_s=120)
    for parcel in waiting:
        assert _status(client, carrier, parcel["id"]) == "picked_up"
    for parcel in announced:
        assert _status(client, carrier, parcel["id"]) == "deposited"
    picked = _audit(ctx, site, "parcel.picked_up")
    assert sorted(a["parcel_id"] for a in picked) == sorted(p["id"] for p in waiting)
    deposited = {a["parcel_id"]: a["compartment_id"] for a in _audit(ctx, site, "parcel.deposited")}
    assert len(_audit(ctx, site, "parcel.deposited")) == 2 * count
    assert {p: deposited[p] for p in placed} == placed
    assert _receipts(ctx, site) >= queued


def _pending_commands(ctx: Context, site: str) -> int:
    with ctx.db.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM outbox WHERE topic = 'kiosk.open_compartment'"
                    " AND state = 'pending' AND site_id = :s"
                ),
                {"s": site},
            ).scalar_one()
        )


def _receipts(ctx: Context, site: str) -> int:
    with ctx.db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM kiosk_event_receipts WHERE site_id = :s"), {"s": site}
            ).scalar_one()
        )


def _kiosk_events(k: Locker, kind: str) -> list[Any]:
    events = k.kiosk.call(lambda agent: agent.store.events())
    return [e for e in events if e.type == kind]  # type: ignore[attr-defined]


def _kiosk_address(k: Locker, compartment_id: str) -> tuple[int, int]:
    compartment = k.kiosk.call(lambda agent: agent.store.compartment(compartment_id))
    address = compartment.address  # type: ignore[attr-defined]
    assert address is not None
    return tuple(address)  # type: ignore[return-value]


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
