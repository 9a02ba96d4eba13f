"""A kiosk on sim boards against a real ``openlocker serve``: the pieces the end-to-end tests
share. The test acts on the sim bank as the people at the doors."""

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
from tests.factories import Org
from tests.servers import _free_port


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
        """Online with nothing queued (and ``credentials`` in its store)."""
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


def kiosk_settings(tmp: Path, site: str, key: str, base: str, **options: Any) -> KioskSettings:
    """A test kiosk of ``site`` with its store under ``tmp``, syncing every 0.2 s unless told."""
    return KioskSettings(
        site_id=site,
        server=base,
        key=key,
        data_dir=tmp / "kiosk",
        ui_port=_free_port(),
        sync_interval_s=options.pop("sync_interval_s", 0.2),
        offline_retry_s=0.2,
        request_timeout_s=5.0,
        **options,
    )


@contextmanager
def locker(
    tmp: Path, site: str, key: str, base: str, bank: Bank, **timings: float
) -> Iterator[Locker]:
    settings = kiosk_settings(tmp, site, key, base, **timings)
    with KioskThread(settings, drivers=[SimBoard(bank, poll_interval=0.02)]) as kiosk:
        yield Locker(kiosk, bank)


def address_of(parcel: dict[str, Any], ctx: Context) -> tuple[int, int]:
    with ctx.db.engine.connect() as conn:
        board, lock = conn.execute(
            text("SELECT board, lock FROM compartments WHERE id = :id"),
            {"id": parcel["compartment"]["id"]},
        ).one()
    return int(board), int(lock)


def status_of(client: TestClient, carrier: Org, parcel_id: str) -> str:
    return str(client.get(f"/v1/parcels/{parcel_id}", headers=carrier.headers).json()["status"])


def audit_of(ctx: Context, site: str, name: str) -> list[dict[str, Any]]:
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT parcel_id, compartment_id FROM audit_events"
                " WHERE site_id = :s AND name = :n ORDER BY seq"
            ),
            {"s": site, "n": name},
        ).all()
    return [{"parcel_id": p, "compartment_id": c} for p, c in rows]


def pending_commands(ctx: Context, site: str) -> int:
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


def receipts(ctx: Context, site: str) -> int:
    with ctx.db.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM kiosk_event_receipts WHERE site_id = :s"), {"s": site}
            ).scalar_one()
        )


def kiosk_events(k: Locker, kind: str | None) -> list[Any]:
    events = k.kiosk.call(lambda agent: agent.store.events())
    return [e for e in events if kind is None or e.type == kind]  # type: ignore[attr-defined]


def kiosk_address(k: Locker, compartment_id: str) -> tuple[int, int]:
    compartment = k.kiosk.call(lambda agent: agent.store.compartment(compartment_id))
    address = compartment.address  # type: ignore[attr-defined]
    assert address is not None
    return tuple(address)  # type: ignore[return-value]
