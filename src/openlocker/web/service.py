"""The pickup page's use cases: what the holder of a link sees, and what the link may do.

The link token is the credential: the page shows its parcel only, and only while the link
is valid. Unknown tokens are counted per client slot (``LinkMisses``) and answered ``429``
past ``MISSES_PER_MINUTE``: 128-bit tokens cannot be guessed, so the limit is there to keep
floods of guesses cheap for the server and out of the log. A known token is never refused
for its client's misses (phones share addresses behind carrier NAT).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from openlocker.access import credentials, presence
from openlocker.access import service as access
from openlocker.core.context import Context
from openlocker.core.errors import NotFound, TooManyAttempts
from openlocker.core.sql import Tx
from openlocker.lockers.service import SiteInfo, access_site_info
from openlocker.orgs.service import Principal
from openlocker.parcels import service as parcels
from openlocker.web.models import SLOTS
from openlocker.web.schemas import PresenceCodeOut

#: Unknown tokens a client slot may ask for in one minute before it is answered ``429``.
MISSES_PER_MINUTE = 10
#: A link token's shape: base64url of ``LINK_TOKEN_BYTES`` bytes, unpadded (22 characters).
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{-(-credentials.LINK_TOKEN_BYTES * 4 // 3)}}}")
log = logging.getLogger("openlocker.web")

State = Literal["waiting", "picked_up", "expired", "replaced"]


@dataclass(frozen=True)
class PickupPage:
    """What the page shows for a link; ``pin`` and ``qr`` only while it is ``waiting``."""

    state: State
    site: SiteInfo
    tracking_number: str
    recipient_language: str | None
    compartment_label: str | None
    compartment_size: str | None
    deadline: datetime | None
    extended: bool
    picked_up_at: datetime | None
    pin: str | None = None
    qr: str | None = None

    @property
    def can_extend(self) -> bool:
        return self.state == "waiting" and not self.extended and self.site.extension_hours > 0


_PARCEL = (
    "SELECT p.status, p.tracking_number, p.recipient, m.label, m.size_code, p.dwell_deadline,"
    " p.deadline_extended_at, p.picked_up_at FROM parcels p"
    " LEFT JOIN compartments m ON m.id = p.compartment_id WHERE p.id = :id"
)


def _state(status: str, link: access.LinkSet, now: datetime) -> State:
    if status == "picked_up":
        return "picked_up"
    if status in ("expired", "returned") or link.expires_at <= now:
        return "expired"
    if status == "deposited" and link.active:
        return "waiting"
    # A newer issue voided this link (deposit replayed, credentials reissued).
    return "replaced"


def _page(ctx: Context, tx: Tx, link_token: str, link: access.LinkSet) -> PickupPage:
    row = tx.one(_PARCEL, {"id": link.parcel_id})
    assert row is not None, "a credential set's parcel exists (foreign key)"
    status, tracking, recipient, label, size, deadline, extended_at, picked_up_at = row
    state = _state(status, link, ctx.clock())
    codes = link.open(ctx, link_token) if state == "waiting" else None
    return PickupPage(
        state=state,
        site=access_site_info(ctx, tx, link.site_id),
        tracking_number=tracking,
        recipient_language=(tx.json(recipient) or {}).get("language"),
        compartment_label=label,
        compartment_size=size,
        deadline=tx.time(deadline),
        extended=extended_at is not None,
        picked_up_at=tx.time(picked_up_at),
        pin=codes[0] if codes else None,
        qr=codes[1] if codes else None,
    )


def pickup_page(ctx: Context, link_token: str, client: str) -> PickupPage:
    """The page of ``link_token``: its parcel's state, and its PIN and QR code while waiting.

    Raises ``link_not_found`` for a token never issued (counted against ``client``'s slot),
    ``too_many_attempts`` once the slot asked for too many.
    """
    if _TOKEN.fullmatch(link_token):
        with ctx.db.sql.transaction(write=False) as tx:
            link = access.access_link(ctx, tx, link_token)
            if link is not None:
                return _page(ctx, tx, link_token, link)
    raise count_miss(ctx, client)


def _slot(ctx: Context, client: str) -> int:
    return int(ctx.keyring.digest("link-miss-slot", client)[:8], 16) % SLOTS


_COUNT_MISS = (
    "INSERT INTO link_misses (slot, minute, misses) VALUES (:slot, :minute, 1)"
    " ON CONFLICT (slot) DO UPDATE SET misses = CASE WHEN link_misses.minute = :minute"
    " THEN link_misses.misses + 1 ELSE 1 END, minute = :minute"
    " WHERE link_misses.minute <> :minute OR link_misses.misses <= :limit RETURNING misses"
)


def count_miss(ctx: Context, client: str) -> NotFound | TooManyAttempts:
    """Count an unknown token asked for by ``client``; the error to answer it with.

    Past the limit nothing more is counted (the row stays as it is), and only the miss that
    crosses it is logged, so a flood writes one log line a minute per slot.
    """
    now = ctx.clock()
    minute = presence.minute_of(now)
    slot = _slot(ctx, client)
    with ctx.db.sql.transaction() as tx:
        misses = tx.scalar(
            _COUNT_MISS, {"slot": slot, "minute": minute, "limit": MISSES_PER_MINUTE}
        )
    if misses is not None and misses <= MISSES_PER_MINUTE:
        return NotFound("No parcel has this link.", code="link_not_found")
    if misses is not None:
        log.warning("unknown pickup links limited", extra={"slot": slot})
    wait = (minute + 1) * presence.ROTATION_S - int(now.timestamp())
    return TooManyAttempts(
        "Too many unknown links from this network; wait a minute.",
        code="too_many_unknown_links",
        extra={"retry_after": wait},
        headers={"Retry-After": str(wait)},
    )


def _known(ctx: Context, client: str, error: NotFound) -> NotFound | TooManyAttempts:
    return count_miss(ctx, client) if error.code == "link_not_found" else error


def extend(ctx: Context, link_token: str, client: str) -> None:
    """Extend the link's deadline once (``parcels.service.extend_deadline``); an unknown
    token is counted like a page view."""
    try:
        parcels.extend_deadline(ctx, link_token)
    except NotFound as error:
        raise _known(ctx, client, error) from None


def open_compartment(ctx: Context, link_token: str, code: str, client: str) -> None:
    """Open the link's compartment for someone at the locker
    (``parcels.service.pickup_by_link``); an unknown token is counted like a page view."""
    try:
        parcels.pickup_by_link(ctx, link_token, code)
    except NotFound as error:
        raise _known(ctx, client, error) from None


def kiosk_presence_code(ctx: Context, principal: Principal, site_id: str) -> PresenceCodeOut:
    """The presence code the site's kiosk screen shows now, for the site's kiosk key."""
    principal.check_kiosk(site_id)
    with ctx.db.sql.transaction(write=False) as tx:
        site = access_site_info(ctx, tx, site_id)
    shown = presence.current_code(ctx.keyring, site.id, ctx.clock())
    return PresenceCodeOut(
        code=shown.code, rotates_at=shown.rotates_at, accepted_until=shown.accepted_until
    )
