"""Settings, read from the environment (prefix ``OPENLOCKER_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET_KEY = "openlocker-dev-secret-change-me"


class Settings(BaseSettings):
    """Process settings; every field has an ``OPENLOCKER_<NAME>`` variable."""

    model_config = SettingsConfigDict(env_prefix="OPENLOCKER_", extra="ignore")

    database_url: str = "sqlite:///./var/openlocker.db"
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
