"""The directory: a CSV import of a large building, the kiosk's search in it, open deposits.

- import: ``--entries`` rows into an empty directory, the same file again (nothing changes),
  and a file with a tenth of the rows changed and a twentieth gone (``--deactivate-missing``);
  wall time, rows per second and the process's peak resident memory;
- search: ``--searches`` queries (a name's first letters, a unit) in that directory: p50 and
  p99 milliseconds of ``directory.service.search``;
- open deposit against the carrier API's announce and deposit, interleaved on two sites with
  ``--deposits`` compartments each: p50 and p99 milliseconds per parcel and the ratio.

The use cases are timed themselves (no HTTP).

    python bench/directory.py [--entries 10000] [--database-url postgresql://…/scratch]

Without ``--database-url`` it runs on a fresh SQLite file. A PostgreSQL database given is
emptied first (its public schema is dropped): give a scratch database.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from openlocker.core.clock import FrozenClock
from openlocker.core.config import Settings
from openlocker.core.context import Actor, Context
from openlocker.core.migrate import upgrade
from openlocker.directory import service as directory
from openlocker.directory.csvimport import parse_csv
from openlocker.directory.schemas import EntryIn, ImportReport, OpenDepositIn
from openlocker.lockers.schemas import CompartmentIn, SiteIn
from openlocker.lockers.service import do_create_site
from openlocker.orgs.service import access_principal, do_create_api_key, do_create_organization
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import AnnounceIn, Recipient

ACTOR = Actor("system:bench")
GIVEN = ["Anna", "Łucja", "Zofia", "Jan", "Piotr", "Krzysztof", "Małgorzata", "Ewa", "Józef"]
FAMILY = ["Nowak", "Kowalski", "Wiśniewska", "Wójcik", "Kamiński", "Lewandowska", "Zieliński"]
FAMILY += ["Szymańska", "Woźniak", "Dąbrowski", "Kozłowska", "Jankowski", "Mazur", "Krawczyk"]


def _context(url: str) -> Context:
    ctx = Context.from_settings(
        Settings(database_url=url, secret_key="bench-secret"), clock=FrozenClock()
    )
    if url.startswith("postgresql"):
        with ctx.db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(ctx.db)
    return ctx


def _site(ctx: Context, name: str, compartments: int) -> str:
    spec = SiteIn(
        name=name,
        address="Bench street 1",
        lat=52.23,
        lon=21.01,
        compartments=[
            CompartmentIn(label=f"A{i}", size="S", floor_height_mm=300) for i in range(compartments)
        ],
    )
    with ctx.db.transaction() as session:
        return do_create_site(session, ctx, ACTOR, spec).id


def _keys(ctx: Context, sites: list[str]) -> tuple[str, list[str]]:
    """A carrier's key, and each site's kiosk key."""
    with ctx.db.transaction() as session:
        carrier = do_create_organization(session, ctx, ACTOR, "Bench carrier", "carrier")
        operator = do_create_organization(session, ctx, ACTOR, "Bench operator", "operator")
        session.flush()
        scopes = ["parcels:write", "parcels:read"]
        key = do_create_api_key(session, ctx, ACTOR, carrier.id, "bench", scopes)[1]
        kiosks = [
            do_create_api_key(session, ctx, ACTOR, operator.id, "kiosk", [f"kiosk:{s}"])[1]
            for s in sites
        ]
    return key, kiosks


def _csv(people: list[tuple[str, str]]) -> bytes:
    lines = ["display_name,unit,email,phone,external_id"]
    lines += [
        f"{name},{unit},r{n}@example.com,+4860{n:07d},R-{n}"
        for n, (name, unit) in enumerate(people)
    ]
    return ("\n".join(lines) + "\n").encode()


def _peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _import(ctx: Context, site: str, data: bytes, **options: bool) -> tuple[float, ImportReport]:
    started = time.perf_counter()
    report = directory.import_entries(ctx, ACTOR, site, parse_csv(data), **options)
    wall = time.perf_counter() - started
    assert report.applied, report.rows[:3]
    return wall, report


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def bench_import(ctx: Context, site: str, entries: int, rng: random.Random) -> list[str]:
    people = [
        (f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}", f"{n // 4 + 1}{'ABCD'[n % 4]}")
        for n in range(entries)
    ]
    first = _csv(people)
    lines = []
    for label, data, options in (
        ("new directory", first, {}),
        ("same file again", first, {}),
    ):
        wall, report = _import(ctx, site, data, **options)
        lines.append(
            f"import, {label}: {entries} rows in {wall:.2f} s ({entries / wall:,.0f} rows/s),"
            f" {report.created} created, {report.unchanged} unchanged;"
            f" peak RSS so far {_peak_rss_mib():.0f} MiB"
        )
    changed = [
        (f"{name} Jr", unit) if n % 10 == 0 else (name, unit)
        for n, (name, unit) in enumerate(people)
    ]
    kept = _csv(changed).decode().splitlines()
    data = ("\n".join(kept[: 1 + entries - entries // 20]) + "\n").encode()
    wall, report = _import(ctx, site, data, deactivate_missing=True)
    lines.append(
        f"import, a tenth changed, a twentieth gone: {wall:.2f} s;"
        f" {report.updated} updated, {report.deactivated} deactivated;"
        f" peak RSS so far {_peak_rss_mib():.0f} MiB"
    )
    return lines


def bench_search(ctx: Context, site: str, kiosk: str, searches: int, rng: random.Random) -> str:
    principal = access_principal(ctx, f"Bearer {kiosk}")
    clock = ctx.clock
    assert isinstance(clock, FrozenClock)
    queries = [
        rng.choice(FAMILY)[: rng.randint(2, 5)] if n % 3 else f"{rng.randint(1, 500)}"
        for n in range(searches)
    ]
    samples, found = [], 0
    for n, query in enumerate(queries):
        if n % directory.SEARCHES_PER_MINUTE == 0:
            clock.advance(seconds=60)  # the kiosk's per-minute allowance
        started = time.perf_counter()
        answer = directory.search(ctx, principal, site, query)
        samples.append(time.perf_counter() - started)
        found += len(answer.items)
    return f"search: {searches} queries, {_ms(samples)}, {found / searches:.1f} matches each"


def bench_deposits(ctx: Context, deposits: int) -> list[str]:
    sites = [_site(ctx, f"Bench {n}", deposits) for n in (1, 2)]
    key, kiosks = _keys(ctx, sites)
    carrier = access_principal(ctx, f"Bearer {key}")
    kiosk = access_principal(ctx, f"Bearer {kiosks[1]}")
    anna = EntryIn(display_name="Anna Nowak", email="anna@example.com")
    with ctx.db.sql.transaction() as tx:
        recipient = directory.do_create_entry(tx, ACTOR, sites[1], anna, "api", ctx.clock())
    who = Recipient(name="Anna Nowak", email="anna@example.com")

    def carrier_pair(n: int) -> Callable[[], None]:
        def run() -> None:
            request = AnnounceIn(
                tracking_number=f"B-{n}", site_id=sites[0], size="S", recipient=who
            )
            announced = parcels.announce(ctx, carrier, request).parcel
            parcels.deposit(ctx, carrier, announced.id)

        return run

    def open_deposit() -> None:
        directory.open_deposit(ctx, kiosk, sites[1], OpenDepositIn(entry_id=recipient.id, size="S"))

    pairs, opens = [], []
    for n in range(deposits):
        for samples, work in ((pairs, carrier_pair(n)), (opens, open_deposit)):
            started = time.perf_counter()
            work()
            samples.append(time.perf_counter() - started)
    ratio = statistics.median(opens) / statistics.median(pairs)
    return [
        f"announce + deposit (2 calls): {deposits} parcels, {_ms(pairs)}",
        f"open deposit (1 call): {deposits} parcels, {_ms(opens)}; {ratio:.2f}x the pair's p50",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=1_000)
    parser.add_argument("--deposits", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        ctx = _context(url)
        rng = random.Random(7)
        site = _site(ctx, "Bench building", 1)
        _, [kiosk] = _keys(ctx, [site])
        print(f"database: {ctx.db.engine.dialect.name}")
        for line in bench_import(ctx, site, args.entries, rng):
            print(line)
        print(bench_search(ctx, site, kiosk, args.searches, rng))
        for line in bench_deposits(ctx, args.deposits):
            print(line)
        ctx.db.dispose()


if __name__ == "__main__":
    main()
