"""Pickup credentials: issue, check and void them; count wrong typed PINs per bucket."""

from __future__ import annotations

import hashlib
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
    "INSERT INTO credential_sets (id, parcel_id, order_id, site_id, pin_digest, qr_digest,"
    " link_digest, phone_tag, sealed, active, expires_at, created_at, kiosk_pin, kiosk_qr,"
    " kiosk_phone) VALUES (:id, :parcel_id, :order_id, :site_id, :pin, :qr, :link, :phone_tag,"
    " :sealed, TRUE, :expires_at, :created_at, :kiosk_pin, :kiosk_qr, :kiosk_phone)"
    " ON CONFLICT (site_id, pin_digest) WHERE active DO NOTHING RETURNING id"
)


def do_issue_credentials(
    ctx: Context,
    tx: Tx,
    *,
    parcel_id: str,
    site: SiteInfo,
    expires_at: datetime,
    phone: str | None = None,
    order_id: str | None = None,
) -> IssuedCredentials:
    """Issue a PIN (unique among the site's active ones), a signed QR token and a link token.

    The three are stored in one row as digests, with the tag of the recipient's ``phone``
    suffix when there is one (the PIN is then also accepted typed with that suffix, in its own
    lockout bucket), and the PIN and QR token sealed for the link's page
    (``credentials.seal_for_link``). A PIN already active at the site is refused by the unique
    index and drawn again.
    With ``order_id`` the set opens every item of that order (``parcel_id`` is its first item)
    and the QR token names the order. The site's kiosk gets its own digests of the PIN, QR
    token and phone suffix (``credentials.kiosk_digest``), so it decides offline.
    """
    suffix = credentials.phone_suffix(phone)
    kiosk_key = ctx.keyring.kiosk_digest_key(site.id)
    qr = credentials.issue_qr(
        ctx.keyring.site_signing_key(site.id, site.key_version),
        parcel_id=order_id or parcel_id,
        site_id=site.id,
        expires_at=expires_at,
        key_version=site.key_version,
    )
    link = credentials.generate_link_token()
    params = {
        "id": new_id("crd"),
        "parcel_id": parcel_id,
        "order_id": order_id,
        "site_id": site.id,
        "qr": _digest(ctx, "qr", site.id, qr),
        "link": _digest(ctx, "link", site.id, link),
        "phone_tag": credentials.phone_tag(ctx.keyring, site.id, suffix) if suffix else None,
        "expires_at": expires_at,
        "created_at": ctx.clock(),
        "kiosk_qr": credentials.kiosk_digest(kiosk_key, "qr", qr),
        "kiosk_phone": credentials.kiosk_digest(kiosk_key, "phone", suffix) if suffix else None,
    }
    for _ in range(_PIN_RETRIES):
        pin = credentials.generate_pin(ctx.settings.pin_length)
        sealed = credentials.seal_for_link(ctx.keyring, link, str(params["id"]), pin, qr)
        pin_digest = _digest(ctx, "pin", site.id, pin)
        kiosk_pin = credentials.kiosk_digest(kiosk_key, "pin", pin)
        if tx.one(
            _INSERT_SET, {**params, "pin": pin_digest, "sealed": sealed, "kiosk_pin": kiosk_pin}
        ):
            return IssuedCredentials(pin, qr, link, expires_at)
    # pragma: no cover - needs ~10^7 active parcels at one site
    raise Conflict("No free PIN at this site; try again.", code="pin_space_exhausted")


def do_void_credentials(
    tx: Tx, parcel_id: str, now: datetime, *, used_kind: str | None = None
) -> None:
    """Make a parcel's active credentials unusable (pickup with ``used_kind``, expiry, reissue);
    the box sealed for the link is dropped, so its page has nothing left to show.

    An order's set is left alone: it opens the order's other items (``do_void_order_credentials``).
    """
    tx.defer(
        "UPDATE credential_sets SET active = FALSE, used_at = :used_at, used_kind = :used_kind,"
        " sealed = NULL WHERE parcel_id = :parcel_id AND active AND order_id IS NULL",
        {
            "used_at": now if used_kind else None,
            "used_kind": used_kind,
            "parcel_id": parcel_id,
        },
    )


def do_void_order_credentials(
    tx: Tx, order_id: str, now: datetime, *, used_kind: str | None = None
) -> None:
    """Make an order's active set unusable: its last item left (``used_kind``), the order
    ended, or its credentials were reissued. A set voided unused loses the box sealed for its
    link; a used one keeps it, in case the kiosk reports an item left behind
    (``do_reactivate_order_credentials``)."""
    sealed = "sealed" if used_kind else "NULL"
    tx.defer(
        "UPDATE credential_sets SET active = FALSE, used_at = :used_at, used_kind = :used_kind,"
        f" sealed = {sealed} WHERE order_id = :order_id AND active",
        {"used_at": now if used_kind else None, "used_kind": used_kind, "order_id": order_id},
    )


def do_reactivate_order_credentials(tx: Tx, order_id: str, used_at: datetime) -> str:
    """Make the order's set that the pickup at ``used_at`` used up open its items again, for
    an item the kiosk reports left behind. Returns ``reactivated``, ``active`` (an earlier
    report did it already) or ``pin_withdrawn``: another set of the site drew the same PIN
    meanwhile (about k in 10^8 for k waiting parcels), so only the QR code and link work
    (at the kiosk too: its PIN digest goes with it).
    """
    taken = (
        "EXISTS (SELECT 1 FROM credential_sets o WHERE o.site_id = credential_sets.site_id"
        " AND o.pin_digest = credential_sets.pin_digest AND o.active)"
    )
    row = tx.one(
        "UPDATE credential_sets SET active = TRUE, used_at = NULL, used_kind = NULL,"
        f" pin_digest = CASE WHEN {taken} THEN 'void:' || id ELSE pin_digest END,"
        f" kiosk_pin = CASE WHEN {taken} THEN NULL ELSE kiosk_pin END"
        " WHERE order_id = :order_id AND NOT active AND used_at = :used_at"
        " RETURNING pin_digest",
        {"order_id": order_id, "used_at": used_at},
    )
    if row is None:
        return "active"
    return "pin_withdrawn" if str(row[0]).startswith("void:") else "reactivated"


def do_cap_credential_expiry(
    tx: Tx, until: datetime, *, parcel_id: str | None = None, order_id: str | None = None
) -> None:
    """Let a parcel's (or an order's) active set expire at ``until`` at the latest."""
    column, value = ("order_id", order_id) if order_id else ("parcel_id", parcel_id)
    tx.defer(
        "UPDATE credential_sets SET expires_at = :until"
        f" WHERE {column} = :value AND active AND expires_at > :until",
        {"until": until, "value": value},
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
    #: The order whose one set matched (the parcel is then its first item).
    order_id: str | None = None


#: The bucket of PINs typed without a phone suffix (one per site).
PIN_ALONE = ""


def pin_bucket(ctx: Context, site_id: str, phone: str | None) -> str:
    """Where a typed PIN is counted: the site's PIN-alone bucket, or its phone suffix's."""
    suffix = credentials.phone_suffix(phone)
    return PIN_ALONE if suffix is None else credentials.phone_tag(ctx.keyring, site_id, suffix)


def _bucket_lock_key(site_id: str, bucket: str) -> int:
    digest = hashlib.blake2b(f"pin-attempts:{site_id}:{bucket}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def check_credential(
    ctx: Context, tx: Tx, site: SiteInfo, kind: str, secret: str, *, bucket: str = PIN_ALONE
) -> Match:
    """The parcel whose active credential matches ``secret`` at ``site``, locked for update.

    A typed PIN is judged holding its ``bucket``'s lock (``pin_bucket``) until the
    transaction ends, so a wrong one is counted (``do_count_pin_failure``) before the next
    PIN of the bucket is judged, whatever the number of server processes. Raises
    ``too_many_attempts`` while the bucket refuses PINs (before saying anything about the
    PIN), then ``invalid_code`` (unknown, voided, or typed with another phone suffix),
    ``code_used``, ``code_expired`` or ``wrong_site``.
    """
    now = ctx.clock()
    if kind == "pin":
        tx.serialize(_bucket_lock_key(site.id, bucket))
    elif kind == "qr":
        # The same check a locker makes offline with only the site's public key.
        credentials.verify_qr(secret, load_public_key(site.public_key), site_id=site.id, now=now)
    # Digests of PINs and QR tokens include the site, so only a link can match elsewhere.
    row = tx.one(
        "SELECT (SELECT locked_until FROM pin_attempts WHERE site_id = :site_id"
        " AND bucket = :bucket), c.site_id, c.used_kind, c.expires_at, c.active, c.phone_tag,"
        " p.id, p.status, p.tracking_number, p.carrier_org_id, m.id, m.label, m.size_code,"
        " c.order_id"
        " FROM credential_sets c JOIN parcels p ON p.id = c.parcel_id"
        " LEFT JOIN compartments m ON m.id = p.compartment_id"
        f" WHERE c.{_DIGEST_COLUMN[kind]} = :digest ORDER BY c.active DESC LIMIT 1" + tx.lock("p"),
        {"site_id": site.id, "bucket": bucket, "digest": _digest(ctx, kind, site.id, secret)},
    )
    if kind == "pin":
        locked_until = tx.time(row[0]) if row is not None else pin_locked_until(tx, site.id, bucket)
        check_typed_pins_allowed(locked_until, now, with_phone=bucket != PIN_ALONE)
    if row is None or (bucket != PIN_ALONE and row[5] != bucket):
        raise Forbidden("The code is not valid at this locker.", code="invalid_code")
    _, site_id, used_kind, expires_at, active, _, *parcel = row
    if site_id != site.id:
        raise Forbidden("This code is for another locker site.", code="wrong_site")
    if used_kind == kind:
        raise Forbidden("The code has already been used.", code="code_used")
    if tx.time(expires_at) <= now:  # type: ignore[operator]
        raise Forbidden("The code has expired.", code="code_expired")
    if not active:
        raise Forbidden("The code is no longer valid.", code="invalid_code")
    return Match(*parcel)


def pin_locked_until(tx: Tx, site_id: str, bucket: str = PIN_ALONE) -> datetime | None:
    """Until when the site refuses PINs typed in ``bucket`` (None: it takes them)."""
    return tx.time(
        tx.scalar(
            "SELECT locked_until FROM pin_attempts WHERE site_id = :s AND bucket = :b",
            {"s": site_id, "b": bucket},
        )
    )


def check_typed_pins_allowed(
    locked_until: datetime | None, now: datetime, *, with_phone: bool = False
) -> None:
    """Raise ``too_many_attempts`` (with Retry-After) while a bucket's typed PINs are locked."""
    if locked_until is None or locked_until <= now:
        return
    wait = max(1, int((locked_until - now).total_seconds() + 0.999))
    detail = (
        f"Too many wrong PINs with this phone number; they are refused for {wait} s. "
        "QR codes and links still work."
        if with_phone
        else f"Too many wrong PINs at this locker; PINs typed alone are refused for {wait} s. "
        "Type the PIN with the last 4 digits of your phone number, or use the QR code or link."
    )
    raise TooManyAttempts(
        detail,
        extra={"retry_after": wait, "phone_accepted": not with_phone},
        headers={"Retry-After": str(wait)},
    )


_UPSERT_ATTEMPTS = (
    "INSERT INTO pin_attempts (site_id, bucket, consecutive_failures, last_failure_at,"
    " locked_until, refusals) VALUES (:site_id, :bucket, :failures, :now, :until, 0)"
    " ON CONFLICT (site_id, bucket) DO UPDATE SET consecutive_failures = :failures,"
    " last_failure_at = :now, locked_until = :until, refusals = 0"
)


@dataclass(frozen=True, slots=True)
class Counted:
    """A wrong PIN, counted: the lockout it starts (s, 0 for none) and the PINs refused
    since the previous wrong one (they wrote no audit event of their own)."""

    lockout_s: int
    refused_before: int


def do_count_pin_failure(tx: Tx, site_id: str, bucket: str, now: datetime) -> Counted:
    """Count a wrong typed PIN in its bucket (whose lock ``check_credential`` holds).

    Only quiet time forgives earlier failures, never another recipient's right PIN: else an
    attacker would get fresh guesses after every pickup at a busy locker (docs/security.md).
    """
    row = tx.one(
        "SELECT consecutive_failures, last_failure_at, refusals FROM pin_attempts"
        " WHERE site_id = :site_id AND bucket = :bucket",
        {"site_id": site_id, "bucket": bucket},
    )
    count, last, refused = (row[0], tx.time(row[1]), row[2]) if row is not None else (0, None, 0)
    failures = attempts.recent_failures(count, last, now) + 1
    lockout = attempts.lockout_seconds(failures)
    tx.defer(
        _UPSERT_ATTEMPTS,
        {
            "site_id": site_id,
            "bucket": bucket,
            "failures": failures,
            "now": now,
            "until": now + timedelta(seconds=lockout) if lockout else None,
        },
    )
    return Counted(lockout, refused)


def do_count_refusal(tx: Tx, site_id: str, bucket: str) -> bool:
    """Count a PIN refused during a lockout; True for the lockout's first refusal, the only
    one worth an audit event (the rest are summed into the next ``pickup.failed``)."""
    refused = tx.scalar(
        "UPDATE pin_attempts SET refusals = refusals + 1"
        " WHERE site_id = :site_id AND bucket = :bucket RETURNING refusals",
        {"site_id": site_id, "bucket": bucket},
    )
    return bool(refused == 1)


def prune_pin_attempts(ctx: Context, *, batch: int = 500) -> int:
    """Delete counts that no longer weigh: every failure forgiven, no lockout running, and no
    refusal waiting to be reported by the next ``pickup.failed``. Returns how many went.

    A row changed since it was read (a new failure) is left: the delete names what it read.
    """
    now = ctx.clock()
    with ctx.db.sql.transaction() as tx:
        rows = tx.all(
            "SELECT site_id, bucket, consecutive_failures, last_failure_at FROM pin_attempts"
            " WHERE refusals = 0 AND last_failure_at <= :quiet"
            " AND (locked_until IS NULL OR locked_until < :now) LIMIT :batch",
            {
                "quiet": now - timedelta(seconds=attempts.FORGIVE_SECONDS),
                "now": now,
                "batch": batch,
            },
        )
        gone = [
            {"site_id": site_id, "bucket": bucket, "count": count, "last": last}
            for site_id, bucket, count, last in rows
            if attempts.recent_failures(count, tx.time(last), now) == 0
        ]
        for key in gone:
            tx.execute(
                "DELETE FROM pin_attempts WHERE site_id = :site_id AND bucket = :bucket"
                " AND consecutive_failures = :count AND last_failure_at = :last AND refusals = 0",
                key,
            )
    return len(gone)


# --- the link's page -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkSet:
    """The credential set a link token belongs to (active or not), as its page needs it."""

    id: str
    parcel_id: str
    site_id: str
    active: bool
    used_kind: str | None
    expires_at: datetime
    #: The PIN and QR token for ``credentials.open_for_link``; None once voided.
    sealed: str | None
    presence_failures: int
    presence_last_failure_at: datetime | None
    presence_locked_until: datetime | None

    def open(self, ctx: Context, link_token: str) -> tuple[str, str] | None:
        """The (PIN, QR token) for the holder of ``link_token``; None when none is kept."""
        if self.sealed is None:
            return None
        return credentials.open_for_link(ctx.keyring, link_token, self.id, self.sealed)


def access_link(ctx: Context, tx: Tx, link_token: str) -> LinkSet | None:
    """The credential set issued with ``link_token``, or None for a token never issued."""
    row = tx.one(
        "SELECT id, parcel_id, site_id, active, used_kind, expires_at, sealed, presence_failures,"
        " presence_last_failure_at, presence_locked_until FROM credential_sets"
        " WHERE link_digest = :digest ORDER BY active DESC LIMIT 1",
        {"digest": _digest(ctx, "link", _ANY_SITE, link_token)},
    )
    if row is None:
        return None
    set_id, parcel_id, site_id, active, used_kind, expires_at, sealed, failures, last, until = row
    return LinkSet(
        set_id,
        parcel_id,
        site_id,
        bool(active),
        used_kind,
        tx.time(expires_at),  # type: ignore[arg-type]
        sealed,
        failures,
        tx.time(last),
        tx.time(until),
    )


def check_presence_allowed(link: LinkSet, now: datetime) -> None:
    """Raise ``too_many_attempts`` (with Retry-After) while the link refuses presence codes."""
    until = link.presence_locked_until
    if until is None or until <= now:
        return
    wait = max(1, int((until - now).total_seconds() + 0.999))
    raise TooManyAttempts(
        f"Too many wrong codes; try again in {wait} s.",
        extra={"retry_after": wait},
        headers={"Retry-After": str(wait)},
    )


def do_count_presence_failure(tx: Tx, link: LinkSet, now: datetime) -> int:
    """Count a wrong presence code typed with ``link`` (whose parcel the caller has locked);
    returns the lockout it starts (s, 0 for none), on the schedule of typed PINs."""
    failures = (
        attempts.recent_failures(link.presence_failures, link.presence_last_failure_at, now) + 1
    )
    lockout = attempts.lockout_seconds(failures)
    tx.defer(
        "UPDATE credential_sets SET presence_failures = :failures,"
        " presence_last_failure_at = :now, presence_locked_until = :until WHERE id = :id",
        {
            "failures": failures,
            "now": now,
            "until": now + timedelta(seconds=lockout) if lockout else None,
            "id": link.id,
        },
    )
    return lockout


def do_extend_credentials(
    ctx: Context, tx: Tx, link: LinkSet, link_token: str, site: SiteInfo, expires_at: datetime
) -> None:
    """Make ``link``'s credentials valid until ``expires_at``.

    The PIN and the link keep working; the QR token carries its expiry, so a new one is
    signed (and sealed for the link) and the old one stops opening the door.
    """
    params: dict[str, object] = {"id": link.id, "expires_at": expires_at}
    sql = "UPDATE credential_sets SET expires_at = :expires_at"
    codes = link.open(ctx, link_token)
    if codes is not None:
        qr = credentials.issue_qr(
            ctx.keyring.site_signing_key(site.id, site.key_version),
            parcel_id=link.parcel_id,
            site_id=site.id,
            expires_at=expires_at,
            key_version=site.key_version,
        )
        sql += ", qr_digest = :qr, kiosk_qr = :kiosk_qr, sealed = :sealed"
        params["qr"] = _digest(ctx, "qr", site.id, qr)
        params["kiosk_qr"] = credentials.kiosk_digest(
            ctx.keyring.kiosk_digest_key(site.id), "qr", qr
        )
        params["sealed"] = credentials.seal_for_link(ctx.keyring, link_token, link.id, codes[0], qr)
    tx.defer(sql + " WHERE id = :id", params)
