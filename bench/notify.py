"""Recipients' messages: how fast one dispatcher sends, and how soon a message leaves.

1. Throughput: N parcels deposited with ``notify: openlocker``, then one dispatcher sends
   their emails to a local SMTP server (aiosmtpd in its own process) and the rate is timed.
2. Latency: a real ``openlocker serve`` with its dispatcher takes deposits at a steady rate;
   each email's arrival at the SMTP server is compared with the moment its deposit answered.

    python bench/notify.py [--emails 2000] [--rate 100] [--seconds 20] [--database-url URL]

Prints the figures; the SMTP server runs in a child process so it does not share the
dispatcher's core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from openlocker.api.app import create_app
from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.db import Database
from openlocker.core.keys import Keyring
from openlocker.core.migrate import upgrade
from openlocker.notify.dispatcher import Dispatcher
from openlocker.notify.transports import transports_from_settings
from tests.factories import Factory
from tests.servers import _free_port

OPENLOCKER = Path(sys.executable).parent / "openlocker"
SECRET = "bench-secret"


def sink(port: int, log_path: str) -> None:
    """An SMTP server that writes ``<Message-ID> <unix time>`` per accepted email."""
    from aiosmtpd.controller import Controller

    log = open(log_path, "a", buffering=1)  # noqa: SIM115 (open for the server's life)

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            content: bytes = envelope.original_content  # type: ignore[attr-defined]
            for line in content.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    log.write(f"{line.split(b':', 1)[1].strip().decode()} {time.time()}\n")
                    break
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def start_sink(log_path: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    child = subprocess.Popen([sys.executable, __file__, "--sink", str(port), log_path])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return child, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the SMTP sink did not start")


def received(log_path: str) -> dict[str, float]:
    with open(log_path) as log:
        return {line.split()[0]: float(line.split()[1]) for line in log if line.strip()}


def context(url: str, data_dir: Path, **settings: object) -> Context:
    config = Settings(
        database_url=url,
        secret_key=SECRET,
        data_dir=data_dir,
        **settings,  # type: ignore[arg-type]
    )
    return Context(Database(url), Keyring(SECRET), config)


def throughput(url: str, data_dir: Path, emails: int) -> None:
    log_path = str(data_dir / "throughput.log")
    child, port = start_sink(log_path)
    try:
        ctx = context(url, data_dir, smtp_url=f"smtp://127.0.0.1:{port}")
        upgrade(ctx.db)
        with TestClient(create_app(ctx, run_jobs=False)) as client:
            factory = Factory(ctx, client)
            carrier = factory.org()
            site = factory.site("S" * emails)
            started = time.perf_counter()
            for i in range(emails):
                factory.deposited(
                    carrier,
                    site,
                    notify="openlocker",
                    recipient={"email": f"r{i}@example.com", "language": "pl" if i % 2 else "en"},
                )
            print(f"seeded {emails} deposits in {time.perf_counter() - started:.1f} s")

        async def drain() -> float:
            dispatcher = Dispatcher(ctx, transports_from_settings(ctx))
            began = time.perf_counter()
            sent = 0
            while sent < emails:
                handled = await dispatcher.dispatch_once()
                if handled == 0:
                    break
                sent += handled
            elapsed = time.perf_counter() - began
            for transport in dispatcher.transports.values():
                await transport.aclose()
            return elapsed

        elapsed = asyncio.run(drain())
        got = len(received(log_path))
        cpu = os.times()
        print(
            f"throughput: {got} emails in {elapsed:.2f} s = {got / elapsed:.0f} emails/s "
            f"(one dispatcher, batch {ctx.settings.notify_batch}, "
            f"{ctx.settings.notify_concurrency} SMTP connections; process CPU so far "
            f"{cpu.user + cpu.system:.1f} s)"
        )
    finally:
        child.terminate()
        child.wait()


def latency(url: str, data_dir: Path, rate: float, seconds: float) -> None:
    log_path = str(data_dir / "latency.log")
    child, smtp_port = start_sink(log_path)
    port = _free_port()
    env = {
        **os.environ,
        "OPENLOCKER_DATABASE_URL": url,
        "OPENLOCKER_SECRET_KEY": SECRET,
        "OPENLOCKER_DATA_DIR": str(data_dir),
        "OPENLOCKER_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "OPENLOCKER_LOG_LEVEL": "WARNING",
    }
    ctx = context(url, data_dir)
    upgrade(ctx.db)
    with TestClient(create_app(ctx, run_jobs=False)) as client:
        factory = Factory(ctx, client)
        carrier = factory.org()
        site = factory.site("S" * int(rate * seconds + 10))
        parcels = [
            factory.announce(
                carrier, site, notify="openlocker", recipient={"email": f"l{i}@example.com"}
            ).json()["id"]
            for i in range(int(rate * seconds))
        ]
    server = subprocess.Popen(
        [str(OPENLOCKER), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)

        async def drive() -> dict[str, float]:
            answered: dict[str, float] = {}
            async with httpx.AsyncClient(base_url=base, headers=carrier.headers) as http:

                async def one(parcel_id: str) -> None:
                    reply = await http.post(f"/v1/parcels/{parcel_id}/deposit")
                    if reply.status_code == 200:
                        answered[parcel_id] = time.time()

                start = time.perf_counter()
                tasks = []
                for i, parcel_id in enumerate(parcels):
                    await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
                    tasks.append(asyncio.create_task(one(parcel_id)))
                await asyncio.gather(*tasks)
            return answered

        answered = asyncio.run(drive())
        time.sleep(3)
    finally:
        server.terminate()
        server.wait(30)
        child.terminate()
        child.wait()
    with ctx.db.sql.transaction(write=False) as tx:
        by_message = {
            f"<{outbox_id}@openlocker.invalid>": parcel_id
            for outbox_id, parcel_id in tx.all(
                "SELECT id, parcel_id FROM outbox WHERE topic = 'recipient.pickup_ready'"
            )
        }
    arrivals = received(log_path)
    waits = sorted(
        arrivals[message] - answered[parcel]
        for message, parcel in by_message.items()
        if message in arrivals and parcel in answered
    )
    if not waits:
        print("latency: no email arrived")
        return
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    print(
        f"latency at {rate:.0f} deposits/s for {seconds:.0f} s: {len(waits)} of "
        f"{len(answered)} deposits' emails arrived; from the deposit's answer to the SMTP "
        f"server: p50 {statistics.median(waits) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {waits[-1] * 1000:.0f} ms"
    )


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        sink(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        throughput(args.database_url or f"sqlite:///{folder}/throughput.db", data_dir, args.emails)
        latency(
            args.database_url or f"sqlite:///{folder}/latency.db", data_dir, args.rate, args.seconds
        )


if __name__ == "__main__":
    main()
