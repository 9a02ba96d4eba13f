"""Settings, read from the environment (prefix ``OPENLOCKER_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process settings; every field has an ``OPENLOCKER_<NAME>`` variable."""

    model_config = SettingsConfigDict(env_prefix="OPENLOCKER_", extra="ignore")

    database_url: str = "sqlite:///./var/openlocker.db"
    #: Files the server keeps beside the database (its secret on SQLite, audit checkpoints);
    #: unset: the SQLite file's folder, else ``./var``.
    data_dir: Path | None = None
    #: Every key derives from it (``core.keys``). Unset: SQLite makes one and keeps it in
    #: ``data_folder``; PostgreSQL refuses to start (``core.secret``).
    secret_key: str | None = None
    #: ``smtp://host:port``, ``smtps://user:pass@host``, ``smtp://host?starttls=1``; unset:
    #: recipients' emails wait in the outbox (``openlocker demo`` uses its mailbox instead).
    smtp_url: str | None = None
    smtp_from: str = "OpenLocker <no-reply@openlocker.invalid>"
    #: An SMS gateway: a Twilio-style ``.../Messages.json`` URL gets a form post, any other
    #: a JSON post (``sms_format`` overrides the guess).
    sms_url: str | None = None
    sms_format: Literal["auto", "twilio", "json"] = "auto"
    sms_from: str | None = None
    #: Keep recipients' messages in the demo's built-in mailbox (``/demo/mailbox``) instead of
    #: sending them, for the channels that have no SMTP or SMS URL.
    mailbox: bool = False
    #: Sites without their own: the language and time zone of recipients' messages.
    default_language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    default_timezone: str = "UTC"
    #: Where a phone number given without a country code is read (ISO 3166 code).
    phone_region: str = Field(default="PL", pattern=r"^[A-Z]{2}$")
    mqtt_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    pin_length: int = Field(default=8, ge=6, le=12)
    default_dwell_hours: int = Field(default=72, ge=1)
    reservation_hold_hours: int = Field(default=24, ge=1)
    expiry_interval_seconds: float = Field(default=30.0, gt=0)
    audit_seal_interval_seconds: float = Field(default=0.5, gt=0)
    #: Most time between signed checkpoints of a moving chain: events sealed since the newest
    #: one can still be removed unnoticed; each costs a row, a line (~260 bytes) and an fsync.
    audit_checkpoint_interval_seconds: float = Field(default=10.0, gt=0)
    #: The dispatcher: how often it looks for new messages, how many it takes at once, how
    #: many it sends at the same time, and its retry policy (exponential backoff, jittered).
    notify_poll_seconds: float = Field(default=0.2, gt=0)
    notify_batch: int = Field(default=100, ge=1, le=1000)
    notify_concurrency: int = Field(default=8, ge=1, le=100)
    notify_max_attempts: int = Field(default=10, ge=1)
    notify_backoff_seconds: float = Field(default=2.0, gt=0)
    notify_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    #: A claimed message is retaken by another dispatcher after this long (a crashed one's).
    notify_lease_seconds: float = Field(default=120.0, gt=0)
    notify_timeout_seconds: float = Field(default=20.0, gt=0)
    #: How often reminders and expiry notices are queued.
    notices_interval_seconds: float = Field(default=60.0, gt=0)
    #: A door command (``kiosk.open_compartment``) the kiosk has not run by then is refused
    #: there, not run late: someone who asked to open it may have walked away.
    command_ttl_s: float = Field(default=120.0, gt=0)
    log_level: str = "INFO"
    #: Threads per process that run requests; few, because each holds the GIL while it works.
    request_threads: int = Field(default=8, ge=1, le=200)
    #: Webhook endpoints may be plain http and on loopback or private addresses (tests, demo).
    webhooks_allow_private: bool = False
    #: One webhook attempt, DNS to answer, is cut off after this long.
    webhooks_timeout_seconds: float = Field(default=15.0, gt=0)
    webhooks_interval_seconds: float = Field(default=0.5, gt=0)
    #: Webhook sends in flight per process, in all and to one endpoint.
    webhooks_concurrency: int = Field(default=64, ge=1, le=1000)
    webhooks_per_endpoint: int = Field(default=4, ge=1, le=100)
    #: After a rotation the old secret also signs deliveries for this long.
    webhooks_rotation_overlap_hours: float = Field(default=24.0, ge=0)

    @field_validator("pin_length")
    @classmethod
    def _pin_length_meets_the_goal(cls, length: int) -> int:
        # Imported here: the arithmetic lives with the lockout schedule it depends on.
        from openlocker.access.attempts import check_pin_length

        check_pin_length(length)
        return length

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        ZoneInfo(name)  # raises for an unknown zone
        return name

    @property
    def data_folder(self) -> Path:
        """Where the server keeps its own files (``data_dir``, else beside a SQLite file)."""
        if self.data_dir is not None:
            return self.data_dir
        if self.database_url.startswith("sqlite:///"):
            path = self.database_url.removeprefix("sqlite:///").split("?", 1)[0]
            if path and path != ":memory:":
                return Path(path).parent
        return Path("var")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
