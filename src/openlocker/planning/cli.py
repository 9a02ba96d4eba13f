"""`openlocker plan …`: route savings and capacity planning."""

from __future__ import annotations

import typer

from openlocker.planning.capacity.cli import capacity_command
from openlocker.planning.routes.cli import routes_command

plan_app = typer.Typer(help="Planning: what lockers save, and how many compartments a site needs.")
plan_app.command("routes")(routes_command)
plan_app.command("capacity")(capacity_command)
