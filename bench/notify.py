"""Recipients' messages: how fast one worker sends, and how soon a message leaves.

1. Throughput: N parcels deposited with ``notify: openlocker``, then one ``openlocker
   worker`` sends their emails to a local SMTP server (aiosmtpd in its own process). The rate
   is the SMTP server's: emails between its first and its last arrival. The worker's CPU per
   email and its peak memory (VmHWM) are read from /proc.
2. Latency: a real ``openlocker serve`` (one process, its dispatcher inside) takes deposits
   at a steady rate; each email's arrival at the SMTP server is compared with the moment its
   deposit answered. The first ``--warmup`` seconds of deposits are not measured (a server
   that just started is slower: Python's first calls, connections being opened). The
   server's CPU per deposit-and-email (warm-up included) and peak memory are printed.

    python bench/notify.py [--emails 2000] [--rate 100] [--seconds 20] [--warmup 3]
                           [--repeat 3] [--only throughput|latency] [--database-url URL --reset]

Each part runs ``--repeat`` times (interleaved) and the median is printed after the runs,
with the load average before and after: the machine is shared, so read figures with it.
``--database-url`` takes a PostgreSQL database; ``--reset`` empties it (drops its public
schema) before each run, and is required for one, as the figures need an empty outbox.
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
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from openlocker.api.app import create_app
from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.db import Database
from openlocker.core.keys import Keyring
from openlocker.core.migrate import upgrade
from tests.factories import Factory
from tests.servers import _free_port

OPENLOCKER = Path(sys.executable).parent / "openlocker"
SECRET = "bench-secret"
DOMAIN = "openlocker.invalid"


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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (steal time counted), every core added."""
    jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(jiffies) - jiffies[3] - jiffies[4]) / os.sysconf("SC_CLK_TCK")


class Others:
    """How busy the machine was with anything but this bench's processes, over a span."""

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.busy = machine_busy() - self._ours()

    def _ours(self) -> float:
        mine = os.times()
        return mine.user + mine.system + sum(cpu_seconds(pid) for pid in self.pids)

    def share(self) -> float:
        span = (time.monotonic() - self.started) * (os.cpu_count() or 1)
        return max(0.0, machine_busy() - self._ours() - self.busy) / span


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def context(url: str, data_dir: Path) -> Context:
    config = Settings(database_url=url, secret_key=SECRET, data_dir=data_dir)
    return Context(Database(url), Keyring(SECRET), config)


def environment(url: str, data_dir: Path, smtp_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "OPENLOCKER_DATABASE_URL": url,
        "OPENLOCKER_SECRET_KEY": SECRET,
        "OPENLOCKER_DATA_DIR": str(data_dir),
        "OPENLOCKER_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "OPENLOCKER_LOG_LEVEL": "WARNING",
    }


def sites_for(factory: Factory, parcels: int, per_site: int = 1000) -> list[str]:
    """Sites with one small compartment per parcel between them."""
    count = -(-parcels // per_site)
    return [factory.site("S" * -(-parcels // count)) for _ in range(count)]


def throughput(url: str, data_dir: Path, emails: int) -> dict[str, float]:
    ctx = context(url, data_dir)
    upgrade(ctx.db)
    with TestClient(create_app(ctx, run_jobs=False)) as client:
        factory = Factory(ctx, client)
        carrier = factory.org()
        sites = sites_for(factory, emails)
        for i in range(emails):
            factory.deposited(
                carrier,
                sites[i % len(sites)],
                notify="openlocker",
                recipient={"email": f"r{i}@example.com", "language": "pl" if i % 2 else "en"},
            )
    ctx.db.dispose()
    log_path = str(data_dir / f"throughput-{time.time_ns()}.log")
    child, port = start_sink(log_path)
    worker = subprocess.Popen(
        [str(OPENLOCKER), "worker"],
        env=environment(url, data_dir, port),
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        cpu_at_first: float | None = None
        others = Others(worker.pid, child.pid)
        got: dict[str, float] = {}
        while len(got) < emails and time.monotonic() < deadline:
            time.sleep(0.02)
            got = received(log_path)
            if got and cpu_at_first is None:
                cpu_at_first = cpu_seconds(worker.pid)
        cpu = cpu_seconds(worker.pid) - (cpu_at_first or 0.0)
        peak = peak_rss_mib(worker.pid)
        elsewhere = others.share()
    finally:
        worker.terminate()
        worker.wait(30)
        child.terminate()
        child.wait()
    arrivals = sorted(got.values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "emails": len(got),
        "seconds": span,
        "rate": (len(arrivals) - 1) / span,
        "cpu_ms": 1000 * cpu / max(1, len(arrivals) - 1),
        "peak_mib": peak,
        "others": elsewhere,
    }


def latency(
    url: str, data_dir: Path, rate: float, seconds: float, warmup: float
) -> dict[str, float]:
    ctx = context(url, data_dir)
    upgrade(ctx.db)
    warm = int(rate * warmup)
    count = warm + int(rate * seconds)
    with TestClient(create_app(ctx, run_jobs=False)) as client:
        factory = Factory(ctx, client)
        carrier = factory.org()
        sites = sites_for(factory, count)
        parcels = [
            factory.announce(
                carrier,
                sites[i % len(sites)],
                notify="openlocker",
                recipient={"email": f"l{i}@example.com"},
            ).json()["id"]
            for i in range(count)
        ]
    log_path = str(data_dir / f"latency-{time.time_ns()}.log")
    child, smtp_port = start_sink(log_path)
    port = _free_port()
    server = subprocess.Popen(
        [str(OPENLOCKER), "serve", "--port", str(port)],
        env=environment(url, data_dir, smtp_port),
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

        cpu_before = cpu_seconds(server.pid)
        others = Others(server.pid, child.pid)
        answered = asyncio.run(drive())
        deadline = time.monotonic() + 10
        while len(received(log_path)) < len(answered) and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = cpu_seconds(server.pid) - cpu_before
        peak = peak_rss_mib(server.pid)
        elsewhere = others.share()
        for parcel_id in parcels[:warm]:  # the warm-up's deposits are not measured
            answered.pop(parcel_id, None)
    finally:
        server.terminate()
        server.wait(30)
        child.terminate()
        child.wait()
    with ctx.db.sql.transaction(write=False) as tx:
        by_message = {
            f"<{outbox_id}@{DOMAIN}>": parcel_id
            for outbox_id, parcel_id in tx.all(
                "SELECT id, parcel_id FROM outbox WHERE topic = 'recipient.pickup_ready'"
            )
        }
    ctx.db.dispose()
    arrivals = received(log_path)
    waits = sorted(
        arrivals[message] - answered[parcel]
        for message, parcel in by_message.items()
        if message in arrivals and parcel in answered
    )
    if not waits:
        return {"arrived": 0, "deposits": len(answered), "others": elsewhere}
    return {
        "arrived": len(waits),
        "deposits": len(answered),
        "p50_ms": 1000 * statistics.median(waits),
        "p99_ms": 1000 * waits[min(len(waits) - 1, int(len(waits) * 0.99))],
        "max_ms": 1000 * waits[-1],
        "cpu_ms": 1000 * cpu / max(1, count),
        "peak_mib": peak,
        "others": elsewhere,
    }


def fresh(url: str | None, folder: Path, name: str, reset: bool) -> str:
    """A database to run on: a new SQLite file, or the PostgreSQL one emptied."""
    if url is None:
        return f"sqlite:///{folder}/{name}-{time.time_ns()}.db"
    if not reset:
        raise SystemExit("--database-url needs --reset: the bench empties that database")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        sink(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--reset", action="store_true", help="empty --database-url first")
    parser.add_argument("--only", choices=["throughput", "latency"])
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}, {os.cpu_count()} cores; {load()}")
    rates: list[dict[str, Any]] = []
    delays: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        for run in range(1, args.repeat + 1):
            if args.only in (None, "throughput"):
                url = fresh(args.database_url, data_dir, "throughput", args.reset)
                r = throughput(url, data_dir, args.emails)
                rates.append(r)
                print(
                    f"run {run} throughput: {r['emails']} emails in {r['seconds']:.2f} s ="
                    f" {r['rate']:.0f} emails/s; worker CPU {r['cpu_ms']:.2f} ms/email,"
                    f" peak {r['peak_mib']:.0f} MiB; other work {r['others']:.0%} of the machine"
                )
            if args.only in (None, "latency"):
                url = fresh(args.database_url, data_dir, "latency", args.reset)
                d = latency(url, data_dir, args.rate, args.seconds, args.warmup)
                delays.append(d)
                if not d["arrived"]:
                    print(f"run {run} latency: no email arrived ({d['others']:.0%} busy elsewhere)")
                    continue
                print(
                    f"run {run} latency at {args.rate:.0f} deposits/s for {args.seconds:.0f} s:"
                    f" {d['arrived']} of {d['deposits']} emails arrived; deposit answered →"
                    f" SMTP server p50 {d['p50_ms']:.0f} ms, p99 {d['p99_ms']:.0f} ms, max"
                    f" {d['max_ms']:.0f} ms; server CPU {d['cpu_ms']:.2f} ms/deposit+email,"
                    f" peak {d['peak_mib']:.0f} MiB; other work {d['others']:.0%} of the machine"
                )
    print(f"after the runs: {load()}")

    def median(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(row[key] for row in rows if key in row)

    if rates:
        print(
            f"median of {len(rates)}: {median(rates, 'rate'):.0f} emails/s from one worker,"
            f" {median(rates, 'cpu_ms'):.2f} ms CPU/email, peak {median(rates, 'peak_mib'):.0f} MiB"
        )
    if any(d.get("arrived") for d in delays):
        print(
            f"median of {len(delays)}: at {args.rate:.0f} deposits/s p50"
            f" {median(delays, 'p50_ms'):.0f} ms, p99 {median(delays, 'p99_ms'):.0f} ms, max"
            f" {median(delays, 'max_ms'):.0f} ms, server CPU {median(delays, 'cpu_ms'):.2f}"
            f" ms/deposit+email, peak {median(delays, 'peak_mib'):.0f} MiB"
        )


if __name__ == "__main__":
    main()
