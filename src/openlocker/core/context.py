"""What every use case needs: the database, the keys, the settings and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from openlocker.core.cache import TtlCache
from openlocker.core.clock import Clock, system_clock
from openlocker.core.config import Settings, get_settings
from openlocker.core.db import Database
from openlocker.core.keys import Keyring
from openlocker.core.secret import resolve_secret_key


@dataclass
class Context:
    db: Database
    keyring: Keyring
    settings: Settings
    clock: Clock = field(default=system_clock)
    #: Rarely changing data (API keys, size classes), seen by every process within ``ttl``.
    cache: TtlCache = field(default_factory=lambda: TtlCache(ttl=10.0))

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, clock: Clock = system_clock
    ) -> Context:
        """The context of a server process; raises ``core.secret.SecretKeyMissing`` when
        there is no secret to derive the keys from."""
        settings = settings or get_settings()
        keyring = Keyring(resolve_secret_key(settings))
        return cls(Database(settings.database_url), keyring, settings, clock)


@dataclass(frozen=True)
class Actor:
    """Who did it: written into every audit event (``key:<id>``, ``system:expiry`` …)."""

    name: str
    org_id: str | None = None
