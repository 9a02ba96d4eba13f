"""Benchmark the kiosk agent against a real ``openlocker serve`` and Kerong pty emulators.

1. Pickup latency: from a valid PIN submitted at the kiosk's ``POST /api/pickup`` to the
   unlock frame read in full by the board's emulator, p50 / p99 / max, online (the server
   up, the kiosk syncing and pushing its events meanwhile) and offline (the server stopped).
   The kiosk is its own process (``python -m openlocker.kiosk``) on three Kerong buses of 10
   boards each (480 compartments), polled every 0.5 s; both clocks are the machine's
   monotonic clock (``time.perf_counter``).
2. A new kiosk's first sync of ``--credentials`` credentials: ``Agent.sync_now()`` on an
   empty store (the pull over HTTP and the store's writes), and a new kiosk process from its
   start to ``/healthz`` reporting every credential.

    PYTHONPATH=. .venv/bin/python bench/kiosk.py [--pickups 480] [--credentials 10000]

The server, the emulators, the kiosk and this client share the machine: on a busy 2-core
box every figure grows. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.kiosk_sync import seed_waiting_parcels
from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.migrate import upgrade
from openlocker.kiosk.agent import Agent
from openlocker.kiosk.boards import kerong
from openlocker.kiosk.boards.bank import Bank
from openlocker.kiosk.boards.emulators import KerongEmulator
from openlocker.kiosk.boards.sim import SimBoard
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.doors import Doors
from openlocker.kiosk.link import ServerLink
from openlocker.kiosk.run import spawn_kiosk, stop_kiosk
from openlocker.kiosk.store import KioskStore
from tests.servers import _free_port, serving

BUSES = 3
BOARDS = 10  # a Kerong bus has at most 10


def _figures(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {cuts[49] * 1e3:6.2f} ms  p99 {cuts[98] * 1e3:6.2f} ms"
        f"  max {max(samples) * 1e3:6.2f} ms  ({len(samples)} pickups)"
    )


def _context(folder: Path, database_url: str | None) -> Context:
    url = database_url or f"sqlite:///{folder / 'bench.db'}"
    ctx = Context.from_settings(Settings(database_url=url, secret_key="bench", data_dir=folder))
    if database_url:
        from sqlalchemy import text

        with ctx.db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(ctx.db)
    return ctx


def _pick_up(
    kiosk: httpx.Client, emulators: list[KerongEmulator], pins: list[str], first: int
) -> list[float]:
    """Pick up the parcels of ``pins`` (in compartments ``first``, ``first + 1`` …) one after
    another; each one's time from the request to its unlock frame at the emulator."""
    latencies = []
    for n, pin in enumerate(pins, start=first):
        bus, board, lock = n // (16 * BOARDS), n // 16 % BOARDS, n % 16
        emulator = emulators[bus]
        seen = len(emulator.received)
        started = time.perf_counter()
        answer = kiosk.post("/api/pickup", json={"pin": pin})
        assert answer.status_code == 200, answer.text
        frame = kerong.unlock_frame(board, lock)
        arrival = next(r.at for r in emulator.received[seen:] if r.frame == frame)
        latencies.append(arrival - started)
        emulator.bank.close_door((board, lock))
    return latencies


def _healthz(kiosk: httpx.Client) -> dict[str, object]:
    body: dict[str, object] = kiosk.get("/healthz").json()
    return body


def _wait(check: object, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def pickup_latency(folder: Path, database_url: str | None, pickups: int) -> None:
    ctx = _context(folder / "latency", database_url)
    site, key, pins = seed_waiting_parcels(ctx, pickups)
    port = _free_port()
    with ExitStack() as stack:
        emulators = [
            stack.enter_context(KerongEmulator(Bank(BOARDS, 16)))
            for _ in range(-(-pickups // (16 * BOARDS)))
        ]
        settings = KioskSettings(
            site_id=site,
            server=f"http://127.0.0.1:{port}",
            key=key,
            boards=tuple(f"kerong:{e.port},boards={BOARDS},settle=0.01" for e in emulators),
            data_dir=folder / "kiosk-latency",
            ui_port=_free_port(),
            sync_interval_s=1.0,
            offline_retry_s=1.0,
        )
        kiosk_log = (folder / "kiosk-latency.log").open("wb")
        with serving(ctx, workers=1, port=port):
            process = spawn_kiosk(settings, log=kiosk_log)
            stack.callback(stop_kiosk, process)
            kiosk = stack.enter_context(
                httpx.Client(base_url=f"http://127.0.0.1:{settings.ui_port}")
            )
            _wait(lambda: _healthz(kiosk)["credentials"] == pickups, "the kiosk's first sync")
            half = pickups // 2
            online = _pick_up(kiosk, emulators, pins[:half], 0)
            _wait(lambda: _healthz(kiosk)["queued"] == 0, "the online pickups to reach the server")
        _wait(lambda: not _healthz(kiosk)["online"], "the kiosk to notice the server gone")
        offline = _pick_up(kiosk, emulators, pins[half:], half)
        queued = _healthz(kiosk)["queued"]
    print(f"PIN at POST /api/pickup to the unlock frame at the board, {BUSES} Kerong buses:")
    print(f"  online   {_figures(online)}")
    print(f"  offline  {_figures(offline)}   ({queued} events queued)")


async def _sync_in_process(settings: KioskSettings) -> tuple[float, int]:
    store = KioskStore(settings.store_path)
    link = ServerLink(settings.server, settings.site_id, settings.key, timeout_s=60)
    agent = Agent(settings, store, Doors([SimBoard(Bank(BOARDS, 16))]), link)
    started = time.perf_counter()
    await agent.sync_now()
    elapsed = time.perf_counter() - started
    count = store.count_credentials()
    await link.close()
    store.close()
    return elapsed, count


def first_sync(folder: Path, database_url: str | None, credentials: int) -> None:
    ctx = _context(folder / "sync", database_url)
    site, key, _ = seed_waiting_parcels(ctx, credentials)
    with serving(ctx, workers=1) as base:
        settings = KioskSettings(
            site_id=site,
            server=base,
            key=key,
            boards=(f"sim:{BOARDS}x16",),
            data_dir=folder / "kiosk-sync-1",
            ui_port=_free_port(),
        )
        elapsed, count = asyncio.run(_sync_in_process(settings))
        assert count == credentials, count
        print(f"A new kiosk's first sync of {count} credentials:")
        print(f"  Agent.sync_now() on an empty store: {elapsed:.2f} s")
        fresh = KioskSettings(
            site_id=site,
            server=base,
            key=key,
            boards=(f"sim:{BOARDS}x16",),
            data_dir=folder / "kiosk-sync-2",
            ui_port=_free_port(),
        )
        started = time.perf_counter()
        process = spawn_kiosk(fresh, log=(folder / "kiosk-sync.log").open("wb"))
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{fresh.ui_port}") as kiosk:
                answered = time.perf_counter() - started
                _wait(lambda: _healthz(kiosk)["credentials"] == credentials, "the new kiosk")
                synced = time.perf_counter() - started
        finally:
            stop_kiosk(process)
        print(
            f"  a new kiosk process: /healthz after {answered:.2f} s,"
            f" every credential after {synced:.2f} s"
        )
        size = sum(p.stat().st_size for p in (folder / "kiosk-sync-2").glob("kiosk.db*"))
        print(f"  its store: {size / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pickups", type=int, default=BUSES * BOARDS * 16)
    parser.add_argument("--credentials", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="postgresql://… (emptied first)")
    args = parser.parse_args()
    if args.pickups > BUSES * BOARDS * 16:
        parser.error(f"at most {BUSES * BOARDS * 16} pickups (one per compartment)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder:
        pickup_latency(Path(folder), args.database_url, args.pickups)
        first_sync(Path(folder), args.database_url, args.credentials)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory of a child process (server or kiosk): {peak:.0f} MiB")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
