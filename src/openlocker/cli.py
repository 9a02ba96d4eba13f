"""The `openlocker` command: demo, serve, db, seed, audit, plan."""

from __future__ import annotations

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
from rich.console import Console

from openlocker.audit.service import check_chain, seal_pending
from openlocker.core.config import DEV_SECRET_KEY, get_settings
from openlocker.core.context import Context
from openlocker.core.migrate import upgrade
from openlocker.demo import (
    DemoKeys,
    demo_order_body,
    run_simulators,
    seed_demo,
    seed_demo_order,
)
from openlocker.planning.cli import plan_app

app = typer.Typer(help="OpenLocker: smart parcel lockers, open source.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
seed_app = typer.Typer(help="Seed data.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(audit_app, name="audit")
app.add_typer(plan_app, name="plan")
console = Console(stderr=True)


def _context() -> Context:
    return Context.from_settings()


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
def audit_verify() -> None:
    """Check the audit chain: exit 0 when intact, 1 and the first broken event otherwise."""
    ctx = _context()
    seal_pending(ctx)
    with ctx.db.read() as session:
        report = check_chain(session)
    if report.intact:
        console.print(f"[green]Audit chain intact[/]: {report.checked} events verified.")
        return
    console.print(
        f"[red]Audit chain broken[/] after {report.checked} good events: {report.reason}"
        + (f" at event seq={report.broken_seq} id={report.broken_id}" if report.broken_id else "")
    )
    raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the HTTP server (migrating the database first)."""
    settings = get_settings()
    if settings.secret_key == DEV_SECRET_KEY:
        console.print("[yellow]OPENLOCKER_SECRET_KEY is not set: using the development key.[/]")
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
        bool, typer.Option(help="Run a simulated locker per site: drops and pickups.")
    ] = True,
) -> None:
    """Seed the demo network into ./var/ and serve it; Ctrl-C stops."""
    os.environ.setdefault("OPENLOCKER_DATABASE_URL", "sqlite:///./var/openlocker.db")
    os.environ.setdefault("OPENLOCKER_BASE_URL", f"http://{host}:{port}")
    os.environ.setdefault("OPENLOCKER_LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    ctx = _context()
    upgrade(ctx.db)
    keys = seed_demo(ctx)
    _print_keys(keys, base=f"http://{host}:{port}")
    _print_order(keys, seed_demo_order(ctx, keys), base=f"http://{host}:{port}")
    stop = threading.Event()
    lockers = threading.Thread(
        target=run_simulators, args=(f"http://{host}:{port}", keys, stop), daemon=True
    )
    if simulate:
        console.print(
            "[dim]A simulated locker per site drops and collects parcels every few seconds "
            "(--no-simulate turns them off).[/]"
        )
        lockers.start()
    console.print("[dim]Serving; press Ctrl-C to stop.[/]")
    try:
        _serve_here(host, port)
    finally:
        stop.set()
        if simulate:
            lockers.join(15)
    console.print("[green]Stopped.[/]")


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
    if base is None:
        return
    site_id = next(iter(keys.sites))
    console.print(
        f"\n[bold]OpenLocker demo[/]\n  API docs  {base}/docs\n  Sites     {base}/v1/sites\n"
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
