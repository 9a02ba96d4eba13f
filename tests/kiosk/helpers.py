"""Sync pages as the server sends them, and a kiosk on sim boards with no server to reach.

The pages are what ``GET …/kiosk/sync`` answers (``docs/kiosk-sync.md``), built from codes the
test knows: the kiosk's own parts are tested on them; the tests against a real server are in
``test_end_to_end.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from openlocker.access.credentials import issue_qr, kiosk_digest
from openlocker.core.clock import FrozenClock
from openlocker.core.keys import Keyring, b64url
from openlocker.kiosk.agent import Agent
from openlocker.kiosk.api import create_kiosk_app
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.doors import Doors
from openlocker.kiosk.link import ServerLink
from openlocker.kiosk.store import KioskStore, QueuedEvent

T = TypeVar("T")
SITE = "sit_01KTESTSITE0000000000000000"
KEYRING = Keyring("kiosk-test-secret")
DIGEST_KEY = bytes(range(32))
START = datetime.fromisoformat("2026-03-02T09:00:00+00:00")


def closed_port() -> int:
    """A local port nothing listens on: a server that cannot be reached."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compartment(
    n: int, *, size: str = "M", temperature: str = "ambient", state: str = "free"
) -> dict[str, Any]:
    """Compartment n of the site as the sync lists it, on board n // 16, lock n % 16."""
    return {
        "id": f"cmp_{n:03d}",
        "label": f"A{n + 1}",
        "size": size,
        "temperature": temperature,
        "state": state,
        "door": "closed",
        "board": n // 16,
        "lock": n % 16,
    }


def credential(
    ident: str,
    parcel_id: str,
    compartments: Sequence[int],
    *,
    pin: str | None = None,
    qr: str | None = None,
    phone: str | None = None,
    expires_at: datetime | None = None,
    active: bool = True,
    used: bool = False,
    order_id: str | None = None,
) -> dict[str, Any]:
    """A credential row with the kiosk digests of ``pin``, ``qr`` and the phone suffix."""
    return {
        "id": ident,
        "parcel_id": parcel_id,
        "order_id": order_id,
        "pin": kiosk_digest(DIGEST_KEY, "pin", pin) if pin else None,
        "qr": kiosk_digest(DIGEST_KEY, "qr", qr) if qr else None,
        "phone": kiosk_digest(DIGEST_KEY, "phone", phone[-4:]) if phone else None,
        "expires_at": (expires_at or START + timedelta(days=3)).isoformat(),
        "active": active,
        "used": used,
        "compartments": [{"id": f"cmp_{n:03d}", "label": f"A{n + 1}"} for n in compartments],
    }


def courier(ident: str, org_id: str, code: str, *, active: bool = True) -> dict[str, Any]:
    return {
        "id": ident,
        "org_id": org_id,
        "name": f"Courier {ident}",
        "code": kiosk_digest(DIGEST_KEY, "courier", code),
        "active": active,
    }


def expected(
    parcel_id: str,
    tracking_number: str,
    org_id: str,
    *,
    size: str = "M",
    temperature: str = "ambient",
    compartment_id: str | None = None,
    active: bool = True,
) -> dict[str, Any]:
    return {
        "parcel_id": parcel_id,
        "tracking_number": tracking_number,
        "org_id": org_id,
        "size": size,
        "temperature": temperature,
        "compartment_id": compartment_id,
        "active": active,
    }


def qr_token(parcel_id: str, *, version: int = 1, site_id: str = SITE, days: float = 3) -> str:
    return issue_qr(
        KEYRING.site_signing_key(SITE, version),
        parcel_id=parcel_id,
        site_id=site_id,
        expires_at=START + timedelta(days=days),
        key_version=version,
    )


def page(
    *,
    compartments: Iterable[dict[str, Any]] = (),
    credentials: Iterable[dict[str, Any]] = (),
    couriers: Iterable[dict[str, Any]] = (),
    expected: Iterable[dict[str, Any]] = (),
    key_versions: Iterable[int] = (1,),
    sizes: Iterable[tuple[str, int, int, int]] | None = None,
    cursor: str = "c1",
    more: bool = False,
) -> dict[str, Any]:
    """One page of ``GET …/kiosk/sync``."""
    body: dict[str, Any] = {
        "site": {"id": SITE, "name": "Test site", "language": "en", "timezone": "UTC"},
        "digest_key": b64url(DIGEST_KEY),
        "public_keys": [
            {"version": v, "public_key": KEYRING.site_public_key(SITE, v)} for v in key_versions
        ],
        "compartments": list(compartments),
        "credentials": list(credentials),
        "couriers": list(couriers),
        "expected": list(expected),
        "commands": [],
        "cursor": cursor,
        "more": more,
    }
    if sizes is not None:
        body["sizes"] = [
            {"code": c, "width_mm": w, "height_mm": h, "depth_mm": d} for c, w, h, d in sizes
        ]
    return body


@dataclass
class Kiosk:
    """An agent on a sim bank, its store, and a client of its JSON API, all on one loop."""

    agent: Agent
    bank: Bank
    store: KioskStore
    api: httpx.AsyncClient
    clock: FrozenClock

    def events(self, kind: str | None = None) -> list[QueuedEvent]:
        return [e for e in self.store.events() if kind is None or e.type == kind]

    def alarms(self, kind: str) -> list[dict[str, Any]]:
        return [e.body for e in self.events("alarm") if e.body["kind"] == kind]

    def pulses(self, n: int) -> int:
        return self.bank.snapshot((n // 16, n % 16)).pulses

    async def settle(self, seconds: float = 0.1) -> None:
        """Let the door watcher poll (the sim polls every 10 ms here)."""
        await asyncio.sleep(seconds)

    async def pickup(self, **body: Any) -> httpx.Response:
        return await self.api.post("/api/pickup", json=body)


def run_kiosk(
    tmp: Path,
    scenario: Callable[[Kiosk], Awaitable[T]],
    *,
    pages: Iterable[dict[str, Any]] = (),
    bank: Bank | None = None,
    door_left_open_s: float = 60.0,
    clock: FrozenClock | None = None,
) -> T:
    """Run ``scenario`` against a started kiosk whose store holds ``pages``; offline."""
    clock = clock or FrozenClock(START)
    bank = bank or Bank(2, 16)
    settings = KioskSettings(
        site_id=SITE,
        server=f"http://127.0.0.1:{closed_port()}",
        key="olk_test",
        data_dir=tmp / "kiosk",
        door_left_open_s=door_left_open_s,
        offline_retry_s=0.05,
        request_timeout_s=0.5,
    )
    store = KioskStore(settings.store_path)
    for body in pages:
        store.apply_pull(body, clock())

    async def main() -> T:
        link = ServerLink(settings.server, SITE, settings.key, timeout_s=0.5)
        agent = Agent(
            settings, store, Doors([SimBoard(bank, poll_interval=0.01)]), link, clock=clock
        )
        await agent.start()
        running = asyncio.create_task(agent.run())
        transport = httpx.ASGITransport(app=create_kiosk_app(agent))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://kiosk") as api:
                return await scenario(Kiosk(agent, bank, store, api, clock))
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await agent.close()

    try:
        return asyncio.run(main())
    finally:
        store.close()
