"""The `openlocker` command: demo, serve, worker, kiosk, db, seed, audit, plan."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.console import Console

from openlocker.audit.service import AuditTampered, check_chain, seal_pending
from openlocker.core.config import get_settings
from openlocker.core.context import Context
from openlocker.core.errors import DomainError
from openlocker.core.keys import load_public_key
from openlocker.core.migrate import upgrade
from openlocker.core.secret import SecretKeyMissing
from openlocker.demo import (
    DEMO_RESIDENTS,
    DemoFleet,
    DemoKeys,
    KioskWork,
    demo_compartment,
    demo_fleet,
    demo_order_body,
    run_simulators,
    sample_pickup_link,
    seed_demo,
    seed_demo_order,
    seed_kiosk_work,
)
from openlocker.directory.csvimport import CsvFileError, parse_csv
from openlocker.directory.schemas import ImportReport
from openlocker.directory.service import SYSTEM_IMPORT, import_entries
from openlocker.kiosk.cli import kiosk
from openlocker.kiosk.run import KioskThread, sim_kiosk
from openlocker.notify.dispatcher import run_worker
from openlocker.planning.cli import plan_app

app = typer.Typer(help="OpenLocker: smart parcel lockers, open source.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
seed_app = typer.Typer(help="Seed data.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
directory_app = typer.Typer(help="Sites' recipient directories.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(audit_app, name="audit")
app.add_typer(directory_app, name="directory")
app.add_typer(plan_app, name="plan")
app.command("kiosk")(kiosk)
console = Console(stderr=True)


def _context() -> Context:
    """The process's context; without a secret, the reason and exit status 2."""
    try:
        return Context.from_settings()
    except SecretKeyMissing as missing:
        console.print(str(missing), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest version."""
    ctx = _context()
    upgrade(ctx.db)
    console.print(f"[green]Database is up to date[/] ({ctx.db.engine.url.render_as_string()})")


@seed_app.command("demo")
def seed_demo_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the created API keys as JSON.")
    ] = False,
) -> None:
    """Create the demo network (three sites, a carrier, a retailer, an operator) and keys."""
    ctx = _context()
    upgrade(ctx.db)
    keys = seed_demo(ctx)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(keys), indent=2))
    else:
        _print_keys(keys)


@audit_app.command("verify")
def audit_verify(
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            "--checkpoints",
            exists=True,
            dir_okay=False,
            help="Checkpoints kept elsewhere: JSON lines as in the data folder's"
            " audit-checkpoints.jsonl, or answers of GET /v1/audit/checkpoints.",
        ),
    ] = None,
    public_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--public-key",
            help="Also accept checkpoints signed by this audit public key (base64url), such"
            " as the one from before the secret key changed. Repeatable.",
        ),
    ] = None,
) -> None:
    """Seal pending events, then check the audit chain against its signed checkpoints: exit 0
    when intact, 1 and what disagrees otherwise."""
    trusted = [_audit_public_key(text) for text in public_keys or ()]
    ctx = _context()
    try:
        seal_pending(ctx)
    except AuditTampered as refused:
        console.print(refused.detail, style="red", markup=False, highlight=False, soft_wrap=True)
    report = check_chain(ctx, kept=checkpoints, public_keys=trusted)
    newest = report.newest
    if report.intact:
        signed = newest.at.isoformat(timespec="seconds") if newest else ""
        console.print(
            f"[green]Audit chain intact[/]: {report.checked} events verified,"
            f" {report.checkpoints} checkpoint{'' if report.checkpoints == 1 else 's'} matched"
            + (f" (newest: {newest.count} events at {signed})." if newest else " (none yet)."),
            soft_wrap=True,
        )
    elif report.reason:
        console.print(
            f"[red]Audit chain broken[/] after {report.checked} good events: {report.reason}"
            + (
                f" at event seq={report.broken_seq} id={report.broken_id}"
                if report.broken_id
                else ""
            ),
            soft_wrap=True,
        )
    else:
        console.print(
            f"[red]Audit chain broken[/]: its {report.checked} events link up, but not with its"
            " signed checkpoints:",
            soft_wrap=True,
        )
    for problem in report.problems:
        console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    sources = ", ".join(f"{where} ({held})" for where, held in report.sources)
    unsealed = f" {report.unsealed} events not sealed." if report.unsealed else ""
    console.print(
        f"Checkpoints read from {sources}.{unsealed}",
        style="dim",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if not report.intact:
        raise typer.Exit(1)


@directory_app.command("import")
def directory_import(
    site_id: Annotated[str, typer.Argument(metavar="SITE", help="The site's id (sit_…).")],
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv", exists=True, dir_okay=False, help="The directory as CSV."
        ),
    ],
    deactivate_missing: Annotated[
        bool,
        typer.Option(
            "--deactivate-missing",
            help="Deactivate the site's active entries no row lists (the file is the whole"
            " directory); entries an identity provider keeps over SCIM are left alone.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every line, not only rejected ones.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Create and update a site's directory entries from a CSV file, whole or not at all.

    Columns (docs/directory.md): display_name, unit, email, phone, external_id, active,
    language, given_name, family_name. Rows are matched to entries by external_id, else by
    email. Exit 0 when imported, 1 when rows were rejected (nothing was written), 2 when the
    file or the site cannot be used.
    """
    ctx = _context()
    upgrade(ctx.db)
    try:
        report = import_entries(
            ctx,
            SYSTEM_IMPORT,
            site_id,
            parse_csv(file.read_bytes()),
            deactivate_missing=deactivate_missing,
            dry_run=dry_run,
        )
    except (CsvFileError, DomainError) as refused:
        console.print(f"{file}: {refused.detail}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_import(report, verbose)
    if report.rejected:
        raise typer.Exit(1)


def _print_import(report: ImportReport, verbose: bool) -> None:
    for row in report.rows:
        if verbose or row.outcome == "rejected":
            where = f"line {row.line}" if row.line is not None else "not in the file"
            what = row.reason if row.outcome == "rejected" else row.entry_id or ""
            console.print(
                f"  {where}: {row.outcome} {what}", markup=False, highlight=False, soft_wrap=True
            )
    counts = (
        f"{report.created} created, {report.updated} updated, {report.deactivated} deactivated,"
        f" {report.unchanged} unchanged"
    )
    if report.rejected:
        console.print(
            f"[red]Nothing imported[/]: {report.rejected} rejected (the rest would be {counts})."
            " Fix the rejected lines and import again.",
            soft_wrap=True,
        )
    elif report.dry_run:
        console.print(f"[yellow]Dry run, nothing written[/]: would be {counts}.", soft_wrap=True)
    else:
        console.print(f"[green]Imported[/] into {report.site_id}: {counts}.", soft_wrap=True)


def _audit_public_key(text: str) -> Ed25519PublicKey:
    try:
        return load_public_key(text)
    except ValueError:
        raise typer.BadParameter(
            "not an Ed25519 public key in base64url", param_hint="--public-key"
        ) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP server (migrating the database first)."""
    settings = get_settings()
    if not (settings.smtp_url or settings.sms_url or settings.mailbox):
        console.print(
            "[yellow]Neither OPENLOCKER_SMTP_URL nor OPENLOCKER_SMS_URL is set: recipients'"
            " messages stay queued in the outbox until one is.[/]"
        )
    # Also makes SQLite's secret file before the exec, so every worker reads the same one.
    upgrade(_context().db)
    if workers == 1:
        _serve_here(host, port)
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Counters from every worker add up on /metrics.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_folder()
    # Workers start from uvicorn's own small main module, not this command's (which would
    # load the planning tools, about 100 MiB, into every worker).
    log_config = Path(__file__).resolve().parent / "api" / "logging.json"
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "uvicorn",
            "openlocker.api.asgi:app",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-config",
            str(log_config),
        ],
    )


@app.command()
def worker() -> None:
    """Deliver recipients' messages and queue reminders, without serving HTTP (several may
    run on PostgreSQL; they never take the same message)."""
    settings = get_settings()
    if not (settings.smtp_url or settings.sms_url or settings.mailbox):
        console.print(
            "[red]Nothing to send with:[/] set OPENLOCKER_SMTP_URL or OPENLOCKER_SMS_URL."
        )
        raise typer.Exit(2)
    ctx = _context()
    upgrade(ctx.db)
    console.print("[dim]Delivering messages; press Ctrl-C to stop.[/]")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(ctx))
    console.print("[green]Stopped.[/]")


def metrics_folder() -> str:
    """A fresh folder for the workers' metrics, named after this process (which becomes the
    server: ``serve`` execs uvicorn). Folders of servers that have stopped are removed, since
    the exec leaves no one to clean up after them."""
    prefix = "openlocker-metrics-"
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        owner = folder.name.removeprefix(prefix).split("-", 1)[0]
        if owner.isdigit() and folder.stat().st_uid == os.getuid() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    simulate: Annotated[
        bool, typer.Option(help="Couriers and recipients use each site's kiosk: drops and pickups.")
    ] = True,
) -> None:
    """Seed the demo network into ./var/ and serve it; Ctrl-C stops."""
    os.environ.setdefault("OPENLOCKER_DATABASE_URL", "sqlite:///./var/openlocker.db")
    os.environ.setdefault("OPENLOCKER_BASE_URL", f"http://{host}:{port}")
    os.environ.setdefault("OPENLOCKER_LOG_LEVEL", "WARNING")
    # Without an SMTP server, recipients' messages land in the demo's mailbox page.
    os.environ.setdefault("OPENLOCKER_MAILBOX", "1")
    get_settings.cache_clear()
    ctx = _context()
    upgrade(ctx.db)
    keys = seed_demo(ctx)
    _print_keys(keys, base=f"http://{host}:{port}")
    site_id = next(iter(keys.sites))
    console.print(
        f"\n[bold]A recipient's pickup page[/]\n  {sample_pickup_link(ctx, keys)}\n"
        'The code its locker\'s screen shows (for "Open my compartment"):',
        soft_wrap=True,
    )
    console.print(
        f"curl -s -H 'Authorization: Bearer {keys.kiosk_keys[site_id]}' "
        f"http://{host}:{port}/v1/sites/{site_id}/presence-code",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    _print_order(keys, seed_demo_order(ctx, keys), base=f"http://{host}:{port}")
    work = seed_kiosk_work(ctx, keys)
    base = f"http://{host}:{port}"
    with demo_fleet(ctx.settings.data_folder / "mosquitto", list(keys.kiosk_keys)) as fleet:
        if fleet.server_url:
            os.environ["OPENLOCKER_MQTT_URL"] = fleet.server_url
            get_settings.cache_clear()
        _print_fleet(ctx, keys, fleet, base)
        _run_demo(ctx, keys, work, fleet, host, port, simulate)
    console.print("[green]Stopped.[/]")


def _run_demo(
    ctx: Context,
    keys: DemoKeys,
    work: KioskWork,
    fleet: DemoFleet,
    host: str,
    port: int,
    simulate: bool,
) -> None:
    """A kiosk per site (on the fleet channel when there is one), the simulated people, and
    the server in this process, until Ctrl-C."""
    base = f"http://{host}:{port}"
    kiosk_urls = {site: f"http://{host}:{port + 101 + n}" for n, site in enumerate(keys.kiosk_keys)}
    console.print("\n[bold]Kiosks[/] (one per site, on simulated lock boards; their touchscreens)")
    for site, url in kiosk_urls.items():
        console.print(f"  {keys.sites[site]:<20} {url}/", soft_wrap=True)
    _print_kiosk_work(keys, work)
    stop = threading.Event()
    kiosks: list[KioskThread] = []

    def start_kiosks() -> None:
        for n, site in enumerate(keys.kiosk_keys):
            thread = sim_kiosk(
                base,
                site,
                keys.kiosk_keys[site],
                ui_host=host,
                ui_port=port + 101 + n,
                data_dir=ctx.settings.data_folder / "kiosks" / site,
                mqtt_url=fleet.kiosk_urls.get(site),
            )
            thread.start()
            kiosks.append(thread)
        if simulate and not stop.is_set():
            run_simulators(base, keys, kiosk_urls, stop)

    people = threading.Thread(target=start_kiosks, name="demo kiosks", daemon=True)
    if simulate:
        console.print(
            "[dim]Couriers and recipients use each kiosk every few seconds "
            "(--no-simulate leaves the kiosks to you).[/]"
        )
    people.start()
    console.print("[dim]Serving; press Ctrl-C to stop.[/]")
    try:
        _serve_here(host, port)
    finally:
        stop.set()
        people.join(15)
        for thread in kiosks:
            with contextlib.suppress(Exception):
                thread.stop()


def _print_kiosk_work(keys: DemoKeys, work: KioskWork) -> None:
    """What a newcomer can do at the kiosks by hand, with the codes it takes."""
    code = {keys.orgs[org]: c for org, c in keys.courier_codes.items()}
    resident, unit, _ = DEMO_RESIDENTS[0]
    console.print("[bold]At a kiosk[/] (tap Courier, then type the code)", soft_wrap=True)
    console.print(
        f"  courier of Demo Parcel Express, code {code['Demo Parcel Express']}: scan tracking"
        f' numbers; "No tracking number — deliver to a resident": type {resident.split()[-1][:5]}'
        f" ({resident}, {unit}) and pick a size; at {keys.sites[work.expired_at]},"
        ' "Collect 1 parcel" (it expired)',
        soft_wrap=True,
    )
    loads = ", ".join(f"{ref} at {keys.sites[site]}" for site, ref in work.orders.items())
    console.print(
        f'  store staff of Demo Grocer, code {code["Demo Grocer"]}: "Load an order": {loads}',
        soft_wrap=True,
    )
    console.print(
        f'  a customer: "Return a parcel" with the code {work.return_code}'
        " (the receipt lands in the mailbox)",
        soft_wrap=True,
    )


def _print_fleet(ctx: Context, keys: DemoKeys, fleet: DemoFleet, base: str) -> None:
    site_id = next(iter(keys.sites))
    auth = f"-H 'Authorization: Bearer {keys.operator_key}'"
    console.print(f"\n[bold]Fleet channel[/] (MQTT): {fleet.about}", soft_wrap=True)
    console.print(
        f"Open door A2 of {keys.sites[site_id]} remotely (the answer says if the kiosk confirmed):",
        soft_wrap=True,
    )
    door = demo_compartment(ctx, site_id)
    console.print(
        f"curl -s -X POST {auth} -H 'Content-Type: application/json'"
        f' -d \'{{"reason": "demo"}}\' {base}/v1/compartments/{door}/open',
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    console.print("and see its kiosk online, its last heartbeat and version:", soft_wrap=True)
    console.print(
        f"curl -s {auth} {base}/v1/sites/{site_id}/kiosk",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn's server, but Ctrl-C ends it without re-raising the signal afterwards.

    uvicorn re-raises a caught SIGINT once it has shut down, which surfaces as a traceback
    from the application's lifespan; a stopped demo should just say it stopped.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _serve_here(host: str, port: int) -> None:
    """Serve in this process until Ctrl-C or SIGTERM."""
    config = uvicorn.Config(
        "openlocker.api.asgi:app", host=host, port=port, log_config=None, access_log=False
    )
    _QuietServer(config).run()


def _print_keys(keys: DemoKeys, base: str | None = None) -> None:
    # Keys go on lines of their own, never wrapped, so they copy and paste whole.
    console.print("[bold]Demo API keys[/] (shown once; a new run issues new ones)")
    console.print(f"  carrier  (Demo Parcel Express)  {keys.carrier_key}", soft_wrap=True)
    console.print(f"  retailer (Demo Grocer)          {keys.retailer_key}", soft_wrap=True)
    console.print(f"  operator (admin)                {keys.operator_key}", soft_wrap=True)
    for site_id, key in keys.kiosk_keys.items():
        console.print(f"  kiosk of {keys.sites[site_id]} ({site_id})  {key}", soft_wrap=True)
    console.print("[bold]Courier codes[/] (kiosks' courier mode; shown once)")
    for org_id, code in keys.courier_codes.items():
        console.print(f"  {keys.orgs[org_id]:<30} {code}", soft_wrap=True)
    if base is None:
        return
    site_id = next(iter(keys.sites))
    console.print(
        f"\n[bold]OpenLocker demo[/]\n  API docs  {base}/docs\n  Sites     {base}/v1/sites\n"
        f"  Mailbox   {base}/demo/mailbox  (the recipients' emails and SMS)\n"
        f"  Health    {base}/healthz\n  Metrics   {base}/metrics\n\n[bold]Try it[/]",
        soft_wrap=True,
    )
    console.print(
        f"curl -s -H 'Authorization: Bearer {keys.carrier_key}' "
        "-H 'Content-Type: application/json' "
        f'-d \'{{"tracking_number": "DEMO-1", "site_id": "{site_id}", "size": "M", '
        f'"notify": "sender"}}\' {base}/v1/parcels',
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def _print_order(keys: DemoKeys, order_id: str, base: str) -> None:
    console.print(
        f"\n[bold]Click & collect[/] Demo Grocer's chilled order {order_id} is loaded; see it:",
        soft_wrap=True,
    )
    auth = f"-H 'Authorization: Bearer {keys.retailer_key}'"
    console.print(f"curl -s {auth} {base}/v1/orders/{order_id}", soft_wrap=True, markup=False)
    body = json.dumps(demo_order_body(next(iter(keys.sites)), datetime.now(UTC)))
    console.print("and place another (then POST /v1/orders/ID/load):", soft_wrap=True)
    console.print(
        f"curl -s {auth} -H 'Content-Type: application/json' -d '{body}' {base}/v1/orders",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
