"""How one kiosk is set up: its site, its server, its boards and its timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class KioskSettings:
    """What ``openlocker kiosk`` is given; the timings have defaults for a real locker."""

    site_id: str
    server: str
    key: str = field(repr=False)
    boards: tuple[str, ...] = ("sim",)
    data_dir: Path = Path("./var/kiosk")
    ui_host: str = "127.0.0.1"
    ui_port: int = 8080
    #: Seconds between two syncs while online (an event queued starts one at once).
    sync_interval_s: float = 3.0
    #: Seconds between two tries while the server cannot be reached.
    offline_retry_s: float = 5.0
    #: Timeout of each sync request.
    request_timeout_s: float = 10.0
    #: How long a recipient waits for the server to decide a code the kiosk does not know.
    fallback_timeout_s: float = 3.0
    #: A door open this long raises ``door_left_open``.
    door_left_open_s: float = 120.0
    #: A courier signed in and idle this long is signed out.
    courier_idle_s: float = 300.0
    #: Rows asked for per sync page, and events per push.
    pull_limit: int = 1000
    push_limit: int = 200
    #: The fleet channel's broker (``docs/fleet.md``), ``mqtt[s]://SITE_ID:PASSWORD@host``;
    #: None: HTTP polling alone.
    mqtt_url: str | None = field(default=None, repr=False)
    #: The kiosk's MQTT password when the URL has none (its user is then the site id).
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_topic_root: str = "openlocker/v1"
    #: Seconds between two heartbeats on the fleet channel.
    heartbeat_s: float = 10.0

    @property
    def store_path(self) -> Path:
        return self.data_dir / "kiosk.db"

    @property
    def command_log_path(self) -> Path:
        """The fleet channel's command log (``kiosk.mqtt.SqliteCommandLog``)."""
        return self.data_dir / "fleet-commands.db"
