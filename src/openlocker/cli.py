"""The `openlocker` command."""

from __future__ import annotations

import typer

from openlocker.planning.cli import plan_app

app = typer.Typer(help="OpenLocker: smart parcel lockers, open source.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
