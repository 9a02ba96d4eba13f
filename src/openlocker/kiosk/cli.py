"""``openlocker kiosk`` (also ``python -m openlocker.kiosk``, which loads none of the server)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from openlocker.core.errors import InvalidInput
from openlocker.core.logging import setup_logging
from openlocker.core.mqtt import Broker
from openlocker.kiosk.boards import BoardPortError, board_from_spec
from openlocker.kiosk.config import KioskSettings
from openlocker.kiosk.run import serve_kiosk


def kiosk(
    site: Annotated[str, typer.Option("--site", help="The site this locker is (sit_…).")],
    server: Annotated[str, typer.Option("--server", help="The server's base URL.")],
    board: Annotated[
        list[str],
        typer.Option(
            "--board",
            help="A bus of lock boards: sim[:BOARDSxLOCKS], kerong:PORT[@BAUD],"
            " bu8a:PORT[@BAUD] (docs/kiosk-boards.md). Repeat for several buses; boards are"
            " numbered across them in order.",
        ),
    ],
    key: Annotated[
        str,
        typer.Option("--key", envvar="OPENLOCKER_KIOSK_KEY", help="The site's kiosk API key."),
    ],
    ui_port: Annotated[
        int, typer.Option("--ui-port", help="Port of the touchscreen and its API.")
    ] = 8080,
    ui_host: Annotated[
        str, typer.Option("--ui-host", help="Address the UI port listens on.")
    ] = "127.0.0.1",
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Folder of the kiosk's store (default ./var/kiosk/SITE)."),
    ] = None,
    sync_interval: Annotated[
        float, typer.Option("--sync-interval", min=0.05, help="Seconds between syncs while online.")
    ] = 3.0,
    offline_retry: Annotated[
        float,
        typer.Option("--offline-retry", min=0.05, help="Seconds between tries while offline."),
    ] = 5.0,
    door_left_open: Annotated[
        float, typer.Option("--door-left-open", min=0.1, help="Seconds before door_left_open.")
    ] = 120.0,
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            envvar="OPENLOCKER_KIOSK_MQTT_URL",
            help="The fleet channel's broker, mqtt[s]://SITE_ID[:PASSWORD]@HOST[:PORT]"
            " (docs/fleet.md); without it the kiosk polls the server alone.",
        ),
    ] = None,
    mqtt_password: Annotated[
        str | None,
        typer.Option(
            "--mqtt-password",
            envvar="OPENLOCKER_KIOSK_MQTT_PASSWORD",
            help="The kiosk's MQTT password when the URL has none (its user is then the site"
            " id); prefer the environment variable, which ps does not show.",
        ),
    ] = None,
    mqtt_topic_root: Annotated[
        str, typer.Option("--mqtt-topic-root", help="The fleet's topic root (the server's).")
    ] = "openlocker/v1",
    heartbeat: Annotated[
        float, typer.Option("--heartbeat", min=0.05, help="Seconds between fleet heartbeats.")
    ] = 10.0,
) -> None:
    """Run the locker's kiosk agent: drive its boards, decide codes locally, sync with the
    server, and with --mqtt take door commands over the fleet channel; until SIGTERM."""
    settings = KioskSettings(
        site_id=site,
        server=server,
        key=key,
        boards=tuple(board),
        data_dir=data or Path("./var/kiosk") / site,
        ui_host=ui_host,
        ui_port=ui_port,
        sync_interval_s=sync_interval,
        offline_retry_s=offline_retry,
        door_left_open_s=door_left_open,
        mqtt_url=mqtt or None,
        mqtt_password=mqtt_password or None,
        mqtt_topic_root=mqtt_topic_root,
        heartbeat_s=heartbeat,
    )
    if settings.mqtt_url:
        try:
            Broker.from_url(settings.mqtt_url)
        except ValueError as bad:
            raise typer.BadParameter(str(bad), param_hint="--mqtt") from None
    try:
        drivers = [board_from_spec(spec) for spec in settings.boards]
    except InvalidInput as refused:
        raise typer.BadParameter(refused.detail, param_hint="--board") from None
    # Only once the command line is accepted: a refused one leaves the caller's logging be.
    setup_logging(os.environ.get("OPENLOCKER_LOG_LEVEL", "INFO"))
    try:
        asyncio.run(serve_kiosk(settings, drivers=drivers))
    except BoardPortError as fault:
        typer.echo(f"Cannot open the boards: {fault.detail}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    typer.run(kiosk)
