"""Settings, read from the environment (prefix ``OPENLOCKER_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "openlocker-dev-secret-change-me"


class Settings(BaseSettings):
    """Process settings; every field has an ``OPENLOCKER_<NAME>`` variable."""

    model_config = SettingsConfigDict(env_prefix="OPENLOCKER_", extra="ignore")

    database_url: str = "sqlite:///./var/openlocker.db"
    #: Files the server keeps beside the database (its secret on SQLite, audit checkpoints);
    #: unset: the SQLite file's folder, else ``./var``.
    data_dir: Path | None = None
    secret_key: str = DEV_SECRET_KEY
    smtp_url: str | None = None
    mqtt_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    pin_length: int = Field(default=8, ge=6, le=12)
    default_dwell_hours: int = Field(default=72, ge=1)
    reservation_hold_hours: int = Field(default=24, ge=1)
    expiry_interval_seconds: float = Field(default=30.0, gt=0)
    audit_seal_interval_seconds: float = Field(default=0.5, gt=0)
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
