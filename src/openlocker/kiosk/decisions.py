"""What the kiosk decides on its own: plain functions over plain data, no store, no clock.

The rules are the server's (``access``): a PIN opens while its credential is active and not
expired, typed PINs are locked after repeated wrong ones (``access.attempts``), a QR token
opens when a valid key of the site signed it. The kiosk adds one: a code used here is used,
whatever the server has heard yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openlocker.access import attempts as schedule
from openlocker.access.credentials import QrClaims, read_qr, verify_qr
from openlocker.core.errors import Forbidden, NotFound, TooManyAttempts
from openlocker.kiosk.store import Attempts, Compartment, Credential, Expected, SizeClass
from openlocker.lockers import allocation

#: The bucket of PINs typed alone; a PIN typed with a phone suffix counts in the suffix's.
PIN_ALONE = ""
#: Wrong courier codes count in a bucket of their own, on the PINs' schedule.
COURIER_BUCKET = "courier"


def invalid_code() -> Forbidden:
    return Forbidden("The code is not valid at this locker.", code="invalid_code")


def check_credential(
    credential: Credential | None, now: datetime, *, phone: str | None = None
) -> Credential:
    """The credential a typed or scanned code found, if it opens now.

    ``phone`` is the kiosk digest of the phone suffix typed with a PIN: it must be the
    credential's. Raises ``Forbidden`` with ``invalid_code`` (unknown, no longer active, or
    another phone), ``code_used`` (used at this kiosk) or ``code_expired``.
    """
    if credential is None or (phone is not None and credential.phone != phone):
        raise invalid_code()
    if credential.used_at is not None:
        raise Forbidden("The code has already been used.", code="code_used")
    if not credential.active:
        raise invalid_code()
    if now >= credential.expires_at:
        raise Forbidden("The code has expired.", code="code_expired")
    return credential


@dataclass(frozen=True, slots=True)
class QrRefusal:
    """Why a QR token was refused, for the log (never the token)."""

    code: str
    reason: str


def check_qr(
    token: str, public_keys: Mapping[int, Ed25519PublicKey], *, site_id: str, now: datetime
) -> QrClaims:
    """The claims of a QR token signed by a valid key of ``site_id`` and not expired.

    Needs only the public keys the kiosk holds. A token of a key version the kiosk does not
    hold (unknown or revoked) is ``invalid_code``, as is a bad signature; ``wrong_site`` and
    ``code_expired`` as ``access.credentials.verify_qr`` says. The error's ``extra["reason"]``
    says which, for the log.
    """
    claims = read_qr(token)
    key = public_keys.get(claims.key_version)
    if key is None:
        refused = invalid_code()
        refused.extra = {"reason": f"no valid site key of version {claims.key_version}"}
        raise refused
    try:
        return verify_qr(token, key, site_id=site_id, now=now)
    except Forbidden as refused:
        if refused.code == "invalid_code":
            refused.extra = {"reason": "signature does not verify"}
        raise


def check_allowed(attempts: Attempts | None, now: datetime, *, bucket: str) -> None:
    """Raise ``too_many_attempts`` (with ``retry_after``) while ``bucket`` is locked out."""
    if attempts is None or attempts.locked_until is None or attempts.locked_until <= now:
        return
    wait = max(1, int((attempts.locked_until - now).total_seconds() + 0.999))
    if bucket == COURIER_BUCKET:
        detail = f"Too many wrong courier codes at this locker; try again in {wait} s."
    elif bucket == PIN_ALONE:
        detail = (
            f"Too many wrong PINs at this locker; PINs typed alone are refused for {wait} s."
            " Type the PIN with the last 4 digits of your phone number, or use the QR code."
        )
    else:
        detail = (
            f"Too many wrong PINs with this phone number; they are refused for {wait} s."
            " QR codes still work."
        )
    raise TooManyAttempts(
        detail,
        extra={"retry_after": wait, "phone_accepted": bucket == PIN_ALONE},
        headers={"Retry-After": str(wait)},
    )


@dataclass(frozen=True, slots=True)
class Counted:
    """A wrong code, counted: the bucket's new record and whether a lockout began with it
    (the moment the kiosk raises ``brute_force``)."""

    attempts: Attempts
    lockout_began: bool


def count_failure(attempts: Attempts | None, now: datetime) -> Counted:
    """Count one more wrong code in a bucket, on the server's schedule: the first
    ``FREE_FAILURES - 1`` are free, then each starts a lockout (30 s, doubling, capped)."""
    before = (
        0
        if attempts is None
        else schedule.recent_failures(attempts.failures, attempts.last_failure_at, now)
    )
    failures = before + 1
    lockout = schedule.lockout_seconds(failures)
    until = now + timedelta(seconds=lockout) if lockout else None
    return Counted(
        Attempts(failures, now, until),
        lockout_began=lockout > 0 and schedule.lockout_seconds(before) == 0,
    )


def check_expected(found: Iterable[Expected], *, org_id: str) -> Expected:
    """The announced parcel a courier of ``org_id`` scanned, if it may be deposited now.

    Raises ``parcel_not_expected`` (no announced parcel with that tracking number here),
    ``wrong_carrier`` (another carrier's parcel) or ``already_deposited``.
    """
    parcels = list(found)
    if not parcels:
        raise NotFound(
            "No parcel with this tracking number is announced for this locker.",
            code="parcel_not_expected",
        )
    own = [p for p in parcels if p.org_id == org_id]
    if not own:
        raise Forbidden("This parcel belongs to another carrier.", code="wrong_carrier")
    waiting = [p for p in own if not p.deposited]
    if not waiting:
        raise Forbidden("This parcel has been deposited already.", code="already_deposited")
    return waiting[0]


def choose_compartment(
    parcel: Expected,
    compartments: Iterable[Compartment],
    *,
    busy: set[str],
    sizes: Iterable[SizeClass] = (),
) -> Compartment | None:
    """Where a courier puts ``parcel``: its reserved compartment while that can take it, else
    the best free one (``lockers.allocation.rank_candidates``: smallest fitting size, then
    label), or None.

    ``busy`` are compartments whose doors are open for something else. Only compartments on
    the board map count. Without the site's size classes (``sizes``), only the parcel's own
    size fits.
    """
    usable = [c for c in compartments if c.address is not None and c.id not in busy]
    reserved = next((c for c in usable if c.id == parcel.compartment_id), None)
    if reserved is not None and reserved.state in ("reserved", "free"):
        return reserved
    free = [c for c in usable if c.state == "free"]
    if parcel.size is None:
        return None
    classes = {
        size.code: allocation.SizeClass(size.code, size.width_mm, size.height_mm, size.depth_mm)
        for size in sizes
    }
    if parcel.size not in classes:
        # Without the site's size classes only the parcel's own size is known to fit.
        free = [c for c in free if c.size == parcel.size]
        classes[parcel.size] = allocation.SizeClass(parcel.size, 1, 1, 1)
    free = [c for c in free if c.size in classes]
    by_id = {c.id: c for c in free}
    ranked = allocation.rank_candidates(
        allocation.ParcelNeed(None, parcel.size, parcel.temperature),
        (allocation.Candidate(c.id, c.label, classes[c.size], c.temperature, 0, 0) for c in free),
        sizes=classes,
    )
    return by_id[ranked[0].id] if ranked else None
