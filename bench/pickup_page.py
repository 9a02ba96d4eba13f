"""Benchmark the pickup page against a real ``openlocker serve`` (one worker, SQLite).

Prints, for sequential requests from one client on keep-alive: page views of valid links
(digest lookup, parcel read, unsealing, QR drawing, rendering), unknown links under the
limit (a 404 page and a counted miss) and past it (429, nothing written), as requests per
second and p50 / p99 latency.

    .venv/bin/python bench/pickup_page.py [--requests 300]

The load generator shares the machine: on a busy 2-core box every figure drops.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from openlocker.core.config import Settings
from openlocker.core.context import Context
from openlocker.core.migrate import upgrade
from openlocker.demo import seed_demo
from tests.servers import serving


def _time(client: httpx.Client, paths: list[str], expect: int) -> tuple[float, float, float]:
    latencies = []
    start = time.perf_counter()
    for path in paths:
        began = time.perf_counter()
        status = client.get(path).status_code
        latencies.append(time.perf_counter() - began)
        assert status == expect, (path, status)
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return (
        len(paths) / elapsed,
        statistics.median(ordered) * 1000,
        ordered[int(len(ordered) * 0.99) - 1] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        settings = Settings(database_url=url, secret_key="bench", data_dir=Path(folder))
        ctx = Context.from_settings(settings)
        upgrade(ctx.db)
        keys = seed_demo(ctx)
        site = next(iter(keys.sites))
        carrier = {"Authorization": f"Bearer {keys.carrier_key}"}
        with serving(ctx, workers=1) as base, httpx.Client(base_url=base) as client:
            tokens = []
            for number in range(20):
                announced = client.post(
                    "/v1/parcels",
                    headers=carrier,
                    json={
                        "tracking_number": f"B{number}",
                        "site_id": site,
                        "size": "S",
                        "notify": "sender",
                    },
                ).json()
                deposited = client.post(f"/v1/parcels/{announced['id']}/deposit", headers=carrier)
                tokens.append(deposited.json()["pickup"]["link"].rsplit("/p/", 1)[1])
            views = [f"/p/{tokens[i % len(tokens)]}" for i in range(args.requests)]
            rows = [("page view of a valid link", *_time(client, views, 200))]
            # Each minute a client slot may miss 10 times; the bench stays inside one minute.
            misses = [f"/p/{i:022d}" for i in range(10)]
            rows.append(("unknown link, counted (404)", *_time(client, misses, 404)))
            limited = [f"/p/{i:022d}" for i in range(args.requests)]
            rows.append(("unknown link, limited (429)", *_time(client, limited, 429)))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'request':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rate, p50, p99 in rows:
        print(f"{name:32} {rate:8.0f} {p50:8.2f} {p99:8.2f}")


if __name__ == "__main__":
    main()
