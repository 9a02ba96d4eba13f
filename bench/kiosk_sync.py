"""Benchmark a new kiosk's first sync of 10,000 credentials, and the changes after it.

A site gets ``--credentials`` deposited parcels (compartments, parcels and credential sets
written in bulk, each set issued by ``access.service.do_issue_credentials``), then:

- in process: ``fleet.sync.sync`` page by page, the server's own work without HTTP;
- over HTTP against a real ``openlocker serve`` (one worker): the whole snapshot paged at
  ``--limit`` and at 5000 rows; then a push of 200 offline pickups (and the same push
  again, all duplicates) and the incremental sync after it.

Prints wall time, pages, bytes, rows per second, p50 / p99 page latency and the peak memory
a sync allocates in process. SQLite by default; ``--database-url postgresql://…`` for
PostgreSQL (the database is emptied first).

    PYTHONPATH=. .venv/bin/python bench/kiosk_sync.py [--credentials 10000] [--limit 1000]

The client shares the machine with the server: on a busy 2-core box every figure drops.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from openlocker.access import service as access
from openlocker.audit.service import seal_pending
from openlocker.core.config import Settings
from openlocker.core.context import Actor, Context
from openlocker.core.ids import new_id
from openlocker.core.migrate import upgrade
from openlocker.core.sql import insert_rows
from openlocker.fleet import sync as fleet_sync
from openlocker.lockers.schemas import SiteIn
from openlocker.lockers.service import access_site_info, do_create_site
from openlocker.orgs.service import access_principal, do_create_api_key, do_create_organization
from openlocker.parcels import service as parcels
from tests.servers import serving

BENCH = Actor("system:bench")


def seed_waiting_parcels(ctx: Context, count: int) -> tuple[str, str, list[str]]:
    """A site with ``count`` waiting parcels in compartments n = 0, 1, … (board n // 16,
    lock n % 16); its id, its kiosk key and the parcels' PINs, in compartment order."""
    pins: list[str] = []
    with ctx.db.transaction() as session:
        carrier = do_create_organization(session, ctx, BENCH, "Bench carrier", "carrier")
        operator = do_create_organization(session, ctx, BENCH, "Bench operator", "operator")
        site = do_create_site(
            session,
            ctx,
            BENCH,
            SiteIn(name="Bench", address="Bench street 1", lat=52.2, lon=21.0),
        )
        session.flush()
        _, kiosk_key = do_create_api_key(
            session, ctx, BENCH, operator.id, "kiosk", [f"kiosk:{site.id}"]
        )
        carrier_id, site_id = carrier.id, site.id
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        info = access_site_info(ctx, tx, site_id)
        for start in range(0, count, 500):
            batch = range(start, min(count, start + 500))
            compartments = [
                {
                    "id": new_id("cmp"),
                    "label": f"B{n}",
                    "board": n // 16,
                    "lock": n % 16,
                }
                for n in batch
            ]
            tx.execute(
                *insert_rows(
                    "compartments",
                    {
                        "site_id": site_id,
                        "size_code": "S",
                        "temperature": "ambient",
                        "floor_height_mm": 300,
                        "state": "occupied",
                        "door": "closed",
                        "use_count": 1,
                    },
                    compartments,
                )
            )
            rows = [
                parcels.ParcelRow(
                    id=new_id("prc"),
                    carrier_org_id=carrier_id,
                    tracking_number=f"BENCH-{n}",
                    site_id=site_id,
                    status="deposited",
                    size_code="S",
                    length_mm=None,
                    width_mm=None,
                    height_mm=None,
                    weight_g=None,
                    temperature="ambient",
                    accessible=False,
                    recipient={"name": "Bench", "phone": "+48600100200"},
                    notify="sender",
                    compartment_id=compartment["id"],
                    announced_at=now,
                    deposited_at=now,
                    dwell_deadline=now + timedelta(hours=72),
                )
                for n, compartment in zip(batch, compartments, strict=True)
            ]
            parcels.insert_parcels(tx, rows)
            for parcel in rows:
                assert parcel.dwell_deadline is not None
                issued = access.do_issue_credentials(
                    ctx,
                    tx,
                    parcel_id=parcel.id,
                    site=info,
                    expires_at=parcel.dwell_deadline,
                    phone=parcel.recipient["phone"],
                )
                pins.append(issued.pin)
    seal_pending(ctx)
    return site_id, kiosk_key, pins


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered) * 1000, ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000


def _in_process(ctx: Context, site_id: str, kiosk_key: str, limit: int) -> None:
    kiosk = access_principal(ctx, f"Bearer {kiosk_key}")

    def run() -> tuple[int, int, list[float], int]:
        cursor, rows, size, latencies = None, 0, 0, []
        while True:
            began = time.perf_counter()
            answer = fleet_sync.sync(ctx, kiosk, site_id, cursor, limit)
            size += len(answer.model_dump_json())
            latencies.append(time.perf_counter() - began)
            rows += len(answer.credentials) + len(answer.couriers) + len(answer.expected)
            cursor = answer.cursor
            if not answer.more:
                return rows, len(latencies), latencies, size

    start = time.perf_counter()
    rows, pages, latencies, size = run()
    elapsed = time.perf_counter() - start
    tracemalloc.start()  # a second run, traced (tracing slows it down)
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    p50, p99 = _percentiles(latencies)
    print(
        f"  in process, limit {limit:>5}: {rows} rows in {elapsed:.2f} s ({rows / elapsed:,.0f}"
        f" rows/s), {pages} pages, {size / 2**20:.1f} MiB of JSON, page p50 {p50:.0f} ms"
        f" p99 {p99:.0f} ms, peak {peak / 2**20:.1f} MiB allocated"
    )


def _full_sync(client: httpx.Client, site_id: str, headers: dict[str, str], limit: int) -> str:
    """A new kiosk's sync, timed and printed (the client parses every answer); its cursor."""
    cursor, rows, pages, size, latencies = None, 0, 0, 0, []
    start = time.perf_counter()
    while True:
        params: dict[str, object] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        began = time.perf_counter()
        response = client.get(f"/v1/sites/{site_id}/kiosk/sync", params=params, headers=headers)
        answer = response.json()
        latencies.append(time.perf_counter() - began)
        assert response.status_code == 200, response.text
        rows += len(answer["credentials"])
        size += len(response.content)
        pages += 1
        cursor = answer["cursor"]
        if not answer["more"]:
            break
    elapsed = time.perf_counter() - start
    p50, p99 = _percentiles(latencies)
    print(
        f"  over HTTP, limit {limit:>5}: {rows} credentials in {elapsed:.2f} s"
        f" ({rows / elapsed:,.0f}/s), {pages} pages, {size / 2**20:.1f} MiB,"
        f" page p50 {p50:.0f} ms p99 {p99:.0f} ms"
    )
    assert isinstance(cursor, str)
    return cursor


def _over_http(ctx: Context, site_id: str, kiosk_key: str, limits: list[int]) -> None:
    headers = {"Authorization": f"Bearer {kiosk_key}"}
    with serving(ctx, workers=1) as base, httpx.Client(base_url=base, timeout=60) as client:
        cursor = ""
        for limit in limits:
            cursor = _full_sync(client, site_id, headers, limit)
        # The kiosk was offline: its pickups of 200 parcels arrive in one push.
        with ctx.db.engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT c.id, p.compartment_id FROM credential_sets c"
                    " JOIN parcels p ON p.id = c.parcel_id WHERE c.site_id = :s AND c.active"
                    " ORDER BY c.id LIMIT 200"
                ),
                {"s": site_id},
            ).all()
        at = datetime.now(UTC).isoformat()
        events = [
            {
                "id": f"kev_bench_{n}",
                "seq": n,
                "type": "pickup",
                "at": at,
                "credential_id": credential_id,
                "method": "pin",
                "compartments": [compartment_id],
                "offline": True,
            }
            for n, (credential_id, compartment_id) in enumerate(held)
        ]
        for label in ("first push", "replayed push"):
            began = time.perf_counter()
            response = client.post(
                f"/v1/sites/{site_id}/kiosk/events", json={"events": events}, headers=headers
            )
            took = time.perf_counter() - began
            statuses = {r["status"] for r in response.json()["results"]}
            print(
                f"  {label} of {len(events)} offline pickups: {took:.2f} s"
                f" ({len(events) / took:,.0f} events/s), {', '.join(sorted(statuses))}"
            )
        time.sleep(ctx.settings.audit_seal_interval_seconds * 3)  # the server's sealer runs
        began = time.perf_counter()
        answer = client.get(
            f"/v1/sites/{site_id}/kiosk/sync", params={"cursor": cursor}, headers=headers
        ).json()
        changed = time.perf_counter() - began
        used = sum(1 for c in answer["credentials"] if not c["active"])
        print(
            f"  incremental sync after them: {used} credentials withdrawn in one page,"
            f" {changed * 1000:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--credentials", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        settings = Settings(database_url=url, secret_key="bench", data_dir=Path(folder))
        ctx = Context.from_settings(settings)
        if url.startswith("postgresql"):
            with ctx.db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(ctx.db)
        began = time.perf_counter()
        site_id, kiosk_key, _ = seed_waiting_parcels(ctx, args.credentials)
        database = ctx.db.engine.dialect.name
        print(
            f"kiosk sync, {database}: {args.credentials} credentials at one site"
            f" (seeded in {time.perf_counter() - began:.1f} s)"
        )
        if database == "postgresql":
            with ctx.db.engine.begin() as conn:
                conn.execute(text("ANALYZE"))  # as autovacuum would soon after a bulk load
        limits = sorted({args.limit, 5000})
        for limit in limits:
            _in_process(ctx, site_id, kiosk_key, limit)
        _over_http(ctx, site_id, kiosk_key, limits)
        ctx.db.dispose()


if __name__ == "__main__":
    main()
