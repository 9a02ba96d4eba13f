"""Pickup credentials: issue, check and void them; count wrong typed PINs per kiosk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from openlocker.access import attempts, credentials
from openlocker.core.context import Context
from openlocker.core.errors import Conflict, Forbidden, TooManyAttempts
from openlocker.core.ids import new_id
from openlocker.core.keys import load_public_key
from openlocker.core.sql import Tx
from openlocker.lockers.service import SiteInfo

#: Link tokens are not tied to a site: the recipient's page finds the parcel from the token.
_ANY_SITE = "*"
_PIN_RETRIES = 20
_DIGEST_COLUMN = {"pin": "pin_digest", "qr": "qr_digest", "link": "link_digest"}


@dataclass(frozen=True)
class IssuedCredentials:
    """Plain credentials, returned once to the caller; only their digests are stored."""

    pin: str
    qr: str
    link_token: str
    expires_at: datetime


def _digest(ctx: Context, kind: str, site_id: str, secret: str) -> str:
    scope = _ANY_SITE if kind == "link" else site_id
    return credentials.credential_digest(ctx.keyring, kind, scope, secret)


_INSERT_SET = (
    "INSERT INTO credential_sets (id, parcel_id, site_id, pin_digest, qr_digest, link_digest,"
    " active, expires_at, created_at) VALUES (:id, :parcel_id, :site_id, :pin, :qr, :link,"
    " TRUE, :expires_at, :created_at)"
    " ON CONFLICT (site_id, pin_digest) WHERE active DO NOTHING RETURNING id"
)


def do_issue_credentials(
    ctx: Context, tx: Tx, *, parcel_id: str, site: SiteInfo, expires_at: datetime
) -> IssuedCredentials:
    """Issue a PIN (unique among the site's active ones), a signed QR token and a link token.

    The three are stored in one row; a PIN already active at the site is refused by the
    unique index and drawn again.
    """
    qr = credentials.issue_qr(
        ctx.keyring.site_signing_key(site.id, site.key_version),
        parcel_id=parcel_id,
        site_id=site.id,
        expires_at=expires_at,
        key_version=site.key_version,
    )
    link = credentials.generate_link_token()
    params = {
        "id": new_id("crd"),
        "parcel_id": parcel_id,
        "site_id": site.id,
        "qr": _digest(ctx, "qr", site.id, qr),
        "link": _digest(ctx, "link", site.id, link),
        "expires_at": expires_at,
        "created_at": ctx.clock(),
    }
    for _ in range(_PIN_RETRIES):
        pin = credentials.generate_pin(ctx.settings.pin_length)
        if tx.one(_INSERT_SET, {**params, "pin": _digest(ctx, "pin", site.id, pin)}):
            return IssuedCredentials(pin, qr, link, expires_at)
    # pragma: no cover - needs ~10^7 active parcels at one site
    raise Conflict("No free PIN at this site; try again.", code="pin_space_exhausted")


def do_void_credentials(
    tx: Tx, parcel_id: str, now: datetime, *, used_kind: str | None = None
) -> None:
    """Make a parcel's active credentials unusable (pickup with ``used_kind``, expiry, reissue)."""
    tx.defer(
        "UPDATE credential_sets SET active = FALSE, used_at = :used_at, used_kind = :used_kind"
        " WHERE parcel_id = :parcel_id AND active",
        {
            "used_at": now if used_kind else None,
            "used_kind": used_kind,
            "parcel_id": parcel_id,
        },
    )


@dataclass(frozen=True, slots=True)
class Match:
    """The parcel a code matched (locked for update), with the compartment it is in."""

    parcel_id: str
    status: str
    tracking_number: str
    carrier_org_id: str
    compartment_id: str | None
    compartment_label: str | None
    compartment_size: str | None


def check_credential(ctx: Context, tx: Tx, site: SiteInfo, kind: str, secret: str) -> Match:
    """The parcel whose active credential matches ``secret`` at ``site``, locked for update.

    Raises ``too_many_attempts`` for a typed PIN while the kiosk refuses them (before saying
    anything about the PIN), then ``invalid_code`` (unknown or voided), ``code_used``,
    ``code_expired`` or ``wrong_site``.
    """
    now = ctx.clock()
    if kind == "qr":
        # The same check a locker makes offline with only the site's public key.
        credentials.verify_qr(secret, load_public_key(site.public_key), site_id=site.id, now=now)
    # Digests of PINs and QR tokens include the site, so only a link can match elsewhere.
    row = tx.one(
        "SELECT (SELECT locked_until FROM kiosk_attempts WHERE site_id = :site_id),"
        " c.site_id, c.used_kind, c.expires_at, c.active, p.id, p.status,"
        " p.tracking_number, p.carrier_org_id, m.id, m.label, m.size_code"
        " FROM credential_sets c JOIN parcels p ON p.id = c.parcel_id"
        " LEFT JOIN compartments m ON m.id = p.compartment_id"
        f" WHERE c.{_DIGEST_COLUMN[kind]} = :digest ORDER BY c.active DESC LIMIT 1" + tx.lock("p"),
        {"site_id": site.id, "digest": _digest(ctx, kind, site.id, secret)},
    )
    if kind == "pin":
        check_typed_pins_allowed(
            tx.time(row[0]) if row is not None else kiosk_locked_until(tx, site.id), now
        )
    if row is None:
        raise Forbidden("The code is not valid at this locker.", code="invalid_code")
    _, site_id, used_kind, expires_at, active, *parcel = row
    if site_id != site.id:
        raise Forbidden("This code is for another locker site.", code="wrong_site")
    if used_kind == kind:
        raise Forbidden("The code has already been used.", code="code_used")
    if tx.time(expires_at) <= now:  # type: ignore[operator]
        raise Forbidden("The code has expired.", code="code_expired")
    if not active:
        raise Forbidden("The code is no longer valid.", code="invalid_code")
    return Match(*parcel)


def kiosk_locked_until(tx: Tx, site_id: str) -> datetime | None:
    """Until when the site's kiosk refuses typed PINs (None: it takes them)."""
    return tx.time(
        tx.scalar("SELECT locked_until FROM kiosk_attempts WHERE site_id = :s", {"s": site_id})
    )


def check_typed_pins_allowed(locked_until: datetime | None, now: datetime) -> None:
    """Raise ``too_many_attempts`` (with Retry-After) while the kiosk's typed PINs are locked."""
    if locked_until is not None and locked_until > now:
        wait = max(1, int((locked_until - now).total_seconds() + 0.999))
        raise TooManyAttempts(
            f"Too many wrong PINs at this locker; typed PINs are refused for {wait} s. "
            "QR codes and links still work.",
            extra={"retry_after": wait},
            headers={"Retry-After": str(wait)},
        )


def do_count_pin_failure(tx: Tx, site_id: str, now: datetime) -> int:
    """Count a wrong typed PIN; returns the lockout it starts, in seconds (0 for none).

    Only quiet time forgives earlier failures, never another recipient's right PIN: else an
    attacker would get fresh guesses after every pickup at a busy locker (docs/security.md).
    """
    row = tx.one(
        "SELECT consecutive_failures, last_failure_at FROM kiosk_attempts"
        f" WHERE site_id = :site_id{tx.lock()}",
        {"site_id": site_id},
    )
    assert row is not None, "every site has its kiosk_attempts row"
    failures = attempts.recent_failures(row[0], tx.time(row[1]), now) + 1
    lockout = attempts.lockout_seconds(failures)
    tx.defer(
        "UPDATE kiosk_attempts SET consecutive_failures = :failures, last_failure_at = :now,"
        " locked_until = :until WHERE site_id = :site_id",
        {
            "failures": failures,
            "now": now,
            "until": now + timedelta(seconds=lockout) if lockout else None,
            "site_id": site_id,
        },
    )
    return lockout
