"""What the pickup page's tests share: a parcel with its link token, the kiosk's code."""

from __future__ import annotations

from typing import Any

from openlocker.access import presence
from openlocker.core.context import Context


def link_token(parcel: dict[str, Any]) -> str:
    """The token of a deposited parcel's pickup link."""
    token: str = parcel["pickup"]["link"].rsplit("/p/", 1)[1]
    return token


def kiosk_code(ctx: Context, site_id: str) -> str:
    """The presence code the site's kiosk shows now (on the context's clock)."""
    return presence.current_code(ctx.keyring, site_id, ctx.clock()).code


def wrong_code(ctx: Context, site_id: str) -> str:
    """A code that is neither this minute's nor the last one's."""
    now = presence.minute_of(ctx.clock())
    valid = {presence.presence_code(ctx.keyring, site_id, m) for m in (now, now - 1)}
    return next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in valid)
