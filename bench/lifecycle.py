"""Full parcel lifecycles over HTTP against a real `openlocker serve` process.

For each database (SQLite, and PostgreSQL when reachable) it starts the server, seeds the
demo network, and drives announce → deposit → pickup from concurrent clients for a fixed
time. It prints lifecycles per second, p50/p99 latency of each call, the server's peak
memory (sum of its processes' VmHWM), and where the CPU went: milliseconds per lifecycle
in the server, in PostgreSQL and in the load generator, and how busy the machine was. The
load generator runs on the same machine, in its own process, with a minimal keep-alive
HTTP/1.1 client so that it takes little CPU.

    python bench/lifecycle.py [--seconds 20] [--clients 8,24] [--workers 2] [--only postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get(
    "OPENLOCKER_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CALLS = ("announce", "deposit", "pickup")


class Connection:
    """A keep-alive HTTP/1.1 connection that speaks just enough of the protocol for JSON APIs."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, key: str, body: dict[str, Any] | None
    ) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        assert self.reader is not None
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        data = await self.reader.readexactly(length) if length else b""
        return status, json.loads(data) if data else None


async def _client_loop(
    worker: int,
    n: int,
    port: int,
    keys: dict[str, Any],
    deadline: float,
    warmup_until: float,
    latencies: dict[str, list[float]],
    errors: dict[str, int],
    done: list[int],
) -> None:
    conn = Connection("127.0.0.1", port)
    # Clients connect one by one, as real ones do, not all in the same instant: a burst of
    # connections would be accepted by whichever server worker wakes first.
    await asyncio.sleep(0.05 * n)
    sites = sorted(keys["kiosk_keys"])
    carrier = keys["carrier_key"]
    i = 0
    while time.perf_counter() < deadline:
        i += 1
        site = sites[(n + i) % len(sites)]
        counted = time.perf_counter() >= warmup_until
        t0 = time.perf_counter()
        status, parcel = await conn.request(
            "POST",
            "/v1/parcels",
            carrier,
            {
                "tracking_number": f"B{worker}-{n}-{i}-{os.getpid()}",
                "site_id": site,
                "size": "S",
                "notify": "sender",
            },
        )
        t1 = time.perf_counter()
        if status != 201:
            errors[f"announce {status} {parcel.get('code') if parcel else ''}"] += 1
            await asyncio.sleep(0.05)
            continue
        status, deposited = await conn.request(
            "POST", f"/v1/parcels/{parcel['id']}/deposit", carrier, None
        )
        t2 = time.perf_counter()
        if status != 200:
            errors[f"deposit {status} {deposited.get('code') if deposited else ''}"] += 1
            continue
        status, picked = await conn.request(
            "POST",
            f"/v1/sites/{site}/pickups",
            keys["kiosk_keys"][site],
            {"pin": deposited["pickup"]["pin"]},
        )
        t3 = time.perf_counter()
        if status != 200:
            errors[f"pickup {status} {picked.get('code') if picked else ''}"] += 1
            continue
        if counted:
            latencies["announce"].append(t1 - t0)
            latencies["deposit"].append(t2 - t1)
            latencies["pickup"].append(t3 - t2)
            done[0] += 1


def _load_process(
    worker: int,
    clients: int,
    port: int,
    keys: dict[str, Any],
    start: float,
    warmup: float,
    seconds: float,
    out: Any,
) -> None:
    latencies: dict[str, list[float]] = {c: [] for c in CALLS}
    errors: dict[str, int] = __import__("collections").Counter()
    done = [0]

    async def main() -> None:
        await asyncio.gather(
            *(
                _client_loop(
                    worker,
                    n,
                    port,
                    keys,
                    start + warmup + seconds,
                    start + warmup,
                    latencies,
                    errors,
                    done,
                )
                for n in range(clients)
            )
        )

    # uvloop (installed with uvicorn) keeps the load generator's own CPU small.
    uvloop.run(main())
    out.put((latencies, dict(errors), done[0]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss_kib(root_pid: int) -> int:
    """Sum of VmHWM over the server and its worker processes."""
    pids = [root_pid]
    children = Path(f"/proc/{root_pid}/task/{root_pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def _descendants(root_pid: int) -> list[int]:
    pids, queue = [], [root_pid]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            queue += [int(c) for c in children.read_text().split()]
    return pids


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return pids


def _cpu_snapshot(server_pid: int, load_pids: list[int]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the server's processes, PostgreSQL's and the load generator's."""
    groups = {
        "server": _descendants(server_pid),
        "postgresql": _postgres_pids(),
        "load": load_pids,
    }
    return {name: {pid: _cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}


def _cpu_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    return {
        name: sum(t - before[name].get(pid, 0.0) for pid, t in after[name].items())
        for name in after
    }


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not become healthy")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def run_backend(
    name: str, url: str, workers: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Serve ``url`` with ``workers`` processes and measure every load level against it."""
    env = {
        **os.environ,
        "OPENLOCKER_DATABASE_URL": url,
        "OPENLOCKER_SECRET_KEY": "bench-secret",
        "OPENLOCKER_LOG_LEVEL": "WARNING",
    }
    seeded = subprocess.run(
        [str(BIN / "openlocker"), "seed", "demo", "--json"],
        env=env,
        check=True,
        capture_output=True,
    )
    keys = json.loads(seeded.stdout)
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "openlocker"), "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rows = []
    try:
        _wait_healthy(port, server)
        for clients in args.clients:
            row = _measure(port, keys, clients, args, server.pid)
            row.update(
                backend=name, workers=workers, server_peak_rss_mib=_peak_rss_kib(server.pid) / 1024
            )
            rows.append(row)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(30)
    return rows


def _measure(
    port: int, keys: dict[str, Any], clients: int, args: argparse.Namespace, server_pid: int
) -> dict[str, Any]:
    """One load level: ``clients`` lifecycles in flight from the load-generator processes."""
    queue: Any = mp.Queue()
    start = time.perf_counter() + 0.5
    processes = min(args.load_processes, clients)
    procs = [
        mp.Process(
            target=_load_process,
            args=(
                w,
                clients // processes + (w < clients % processes),
                port,
                keys,
                start,
                args.warmup,
                args.seconds,
                queue,
            ),
        )
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    # CPU is counted over the measured window only, per group of processes.
    time.sleep(max(0.0, start + args.warmup - time.perf_counter()))
    cpu_before = _cpu_snapshot(server_pid, [p.pid for p in procs if p.pid])
    time.sleep(max(0.0, start + args.warmup + args.seconds - time.perf_counter()))
    cpu = _cpu_used(cpu_before, _cpu_snapshot(server_pid, [p.pid for p in procs if p.pid]))
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    latencies: dict[str, list[float]] = {c: [] for c in CALLS}
    errors: dict[str, int] = {}
    done = 0
    for lat, errs, count in results:
        for c in CALLS:
            latencies[c] += lat[c]
        for k, v in errs.items():
            errors[k] = errors.get(k, 0) + v
        done += count
    return {
        "clients": clients,
        "lifecycles": done,
        "lifecycles_per_s": done / args.seconds,
        "latency_ms": {
            c: {"p50": _percentile(latencies[c], 0.50), "p99": _percentile(latencies[c], 0.99)}
            for c in CALLS
        },
        "errors": errors,
        # CPU milliseconds per lifecycle by group, and the share of the machine in use.
        "cpu_ms_per_lifecycle": {k: 1000 * v / max(done, 1) for k, v in cpu.items()},
        "cpu_busy": sum(cpu.values()) / args.seconds / (os.cpu_count() or 1),
    }


def _postgres_url() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    name = f"openlocker_bench_{os.getpid()}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError:
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _drop_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per backend")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--clients",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[8, 24],
        help="concurrent lifecycles in flight; a comma-separated list measures each",
    )
    parser.add_argument("--load-processes", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, default=2, help="server worker processes (PostgreSQL)"
    )
    parser.add_argument(
        "--sqlite-workers", type=int, default=1, help="server worker processes (SQLite)"
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()

    reports = []
    if args.only in (None, "sqlite"):
        folder = tempfile.mkdtemp(prefix="openlocker-bench-")
        try:
            reports += run_backend(
                "sqlite", f"sqlite:///{folder}/bench.db", args.sqlite_workers, args
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.only in (None, "postgresql"):
        url = _postgres_url()
        if url is None:
            print("PostgreSQL not reachable: skipped", file=sys.stderr)
        else:
            try:
                reports += run_backend("postgresql", url, args.workers, args)
            finally:
                _drop_postgres(url)

    print(
        f"\nOpenLocker lifecycle benchmark: {args.seconds:.0f} s measured per row, "
        f"{os.cpu_count()} CPUs (load generator on the same machine)"
    )
    print(
        f"{'backend':<11} {'workers':>7} {'clients':>7} {'lifecycles/s':>12} "
        + " ".join(f"{c + ' p50/p99 ms':>22}" for c in CALLS)
        + f" {'server peak MiB':>16} {'CPU ms/lifecycle srv+db+load':>29} {'busy':>5}  errors"
    )
    for r in reports:
        cells = " ".join(
            f"{r['latency_ms'][c]['p50']:>10.1f} /{r['latency_ms'][c]['p99']:>9.1f}" for c in CALLS
        )
        cpu = r["cpu_ms_per_lifecycle"]
        split = f"{cpu['server']:.2f}+{cpu['postgresql']:.2f}+{cpu['load']:.2f}"
        print(
            f"{r['backend']:<11} {r['workers']:>7} {r['clients']:>7} "
            f"{r['lifecycles_per_s']:>12.1f} {cells} "
            f"{r['server_peak_rss_mib']:>16.1f} {split:>29} {r['cpu_busy']:>5.0%}"
            f"  {r['errors'] or 'none'}"
        )
    print(json.dumps(reports))


if __name__ == "__main__":
    main()
