"""Presence codes: the short code a site's kiosk screen shows, rotating every minute.

The pickup page opens a compartment only for someone who types the code shown at the
locker, so a link alone (a forwarded email, a phone at home) never opens a door remotely.
A code is ``HMAC(server key, site, minute) mod 10^6``: derived, so every server process
agrees without storing anything, and unpredictable without the server secret. The code of
the current and of the previous minute are accepted, so a code read at the screen a moment
before it rotates still works.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from openlocker.core.keys import Keyring

DIGITS = 6
ROTATION_S = 60
#: Minutes a code stays accepted: the current one and the one before.
ACCEPTED_MINUTES = 2


def minute_of(now: datetime) -> int:
    """Minutes since the epoch: the rotation a presence code belongs to."""
    return int(now.timestamp()) // ROTATION_S


def presence_code(keyring: Keyring, site_id: str, minute: int) -> str:
    """The site's presence code for ``minute`` (``DIGITS`` digits, leading zeros kept)."""
    value = int(keyring.digest("presence", f"{site_id}\x00{minute}"), 16) % 10**DIGITS
    return f"{value:0{DIGITS}d}"


@dataclass(frozen=True, slots=True)
class ShownCode:
    """What a kiosk screen shows: the code and when the next one replaces it."""

    code: str
    rotates_at: datetime
    #: Until when a page still accepts this code (one rotation after it is replaced).
    accepted_until: datetime


def current_code(keyring: Keyring, site_id: str, now: datetime) -> ShownCode:
    """The code a site's kiosk shows at ``now``."""
    minute = minute_of(now)
    rotates_at = datetime.fromtimestamp((minute + 1) * ROTATION_S, UTC)
    return ShownCode(
        presence_code(keyring, site_id, minute),
        rotates_at,
        rotates_at + timedelta(seconds=ROTATION_S * (ACCEPTED_MINUTES - 1)),
    )


def is_present(keyring: Keyring, site_id: str, typed: str, now: datetime) -> bool:
    """Whether ``typed`` is the site's code of this minute or the one before (spaces ignored)."""
    typed = "".join(typed.split())
    minute = minute_of(now)
    # Compared in constant time, and every accepted minute is compared, so timing tells nothing.
    matches = [
        hmac.compare_digest(typed.encode(), presence_code(keyring, site_id, m).encode())
        for m in range(minute - ACCEPTED_MINUTES + 1, minute + 1)
    ]
    return any(matches)
