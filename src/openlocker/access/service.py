"""Pickup credentials: issue, check and void them; count wrong typed PINs per kiosk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from openlocker.access import attempts, credentials
from openlocker.access.models import Credential
from openlocker.core.context import Context
from openlocker.core.db import is_postgres
from openlocker.core.errors import Conflict, Forbidden, NotFound, TooManyAttempts
from openlocker.core.ids import new_id
from openlocker.core.keys import load_public_key
from openlocker.lockers.models import Compartment, KioskAttempts, Site
from openlocker.parcels.models import Parcel

#: Link tokens are not tied to a site: the recipient's page finds the parcel from the token.
_ANY_SITE = "*"
_PIN_RETRIES = 20


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


def do_issue_credentials(
    session: Session, ctx: Context, *, parcel_id: str, site: Site, expires_at: datetime
) -> IssuedCredentials:
    """Issue a PIN (unique among the site's active ones), a signed QR token and a link token."""
    for _ in range(_PIN_RETRIES):
        pin = credentials.generate_pin(ctx.settings.pin_length)
        pin_digest = _digest(ctx, "pin", site.id, pin)
        with session.no_autoflush:  # pending writes go out together at commit
            taken = session.scalar(
                select(Credential.id).where(
                    Credential.site_id == site.id,
                    Credential.kind == "pin",
                    Credential.digest == pin_digest,
                    Credential.active.is_(True),
                )
            )
        if taken is None:
            break
    else:  # pragma: no cover - needs ~10^7 active parcels at one site
        raise Conflict("No free PIN at this site; try again.", code="pin_space_exhausted")
    qr = credentials.issue_qr(
        ctx.keyring.site_signing_key(site.id, site.key_version),
        parcel_id=parcel_id,
        site_id=site.id,
        expires_at=expires_at,
        key_version=site.key_version,
    )
    link = credentials.generate_link_token()
    now = ctx.clock()
    for kind, secret in (("pin", pin), ("qr", qr), ("link", link)):
        session.add(
            Credential(
                id=new_id("crd"),
                parcel_id=parcel_id,
                site_id=site.id,
                kind=kind,
                digest=_digest(ctx, kind, site.id, secret),
                active=True,
                expires_at=expires_at,
                created_at=now,
            )
        )
    return IssuedCredentials(pin, qr, link, expires_at)


def do_void_credentials(
    session: Session, parcel_id: str, now: datetime, *, used_kind: str | None = None
) -> None:
    """Make every active credential of a parcel unusable (pickup, expiry, reissue)."""
    values: dict[str, Any] = {"active": False}
    if used_kind is not None:
        values["used_at"] = case((Credential.kind == used_kind, now), else_=Credential.used_at)
    session.execute(
        update(Credential)
        .where(Credential.parcel_id == parcel_id, Credential.active.is_(True))
        .values(**values)
    )


@dataclass(frozen=True)
class Match:
    """The credential a code matched, with its parcel (locked) and the parcel's compartment."""

    credential: Credential
    parcel: Parcel
    compartment: Compartment | None


def check_credential(session: Session, ctx: Context, site: Site, kind: str, secret: str) -> Match:
    """The active credential matching ``secret`` at ``site``, its parcel locked for update.

    Raises ``invalid_code`` (unknown or voided), ``code_used``, ``code_expired`` or ``wrong_site``.
    """
    now = ctx.clock()
    if kind == "qr":
        # The same check a locker makes offline with only the site's public key.
        credentials.verify_qr(secret, load_public_key(site.public_key), site_id=site.id, now=now)
    # Digests of PINs and QR tokens include the site, so only a link can match elsewhere.
    query = (
        select(Credential, Parcel, Compartment)
        .join(Parcel, Parcel.id == Credential.parcel_id)
        .outerjoin(Compartment, Compartment.id == Parcel.compartment_id)
        .where(Credential.kind == kind, Credential.digest == _digest(ctx, kind, site.id, secret))
        .order_by(Credential.active.desc())
        .limit(1)
    )
    if is_postgres(session):
        query = query.with_for_update(of=Parcel)
    row = session.execute(query).first()
    if row is None:
        raise Forbidden("The code is not valid at this locker.", code="invalid_code")
    credential = row.Credential
    if credential.site_id != site.id:
        raise Forbidden("This code is for another locker site.", code="wrong_site")
    if credential.used_at is not None:
        raise Forbidden("The code has already been used.", code="code_used")
    if credential.expires_at <= now:
        raise Forbidden("The code has expired.", code="code_expired")
    if not credential.active:
        raise Forbidden("The code is no longer valid.", code="invalid_code")
    return Match(credential, row.Parcel, row.Compartment)


def access_kiosk_site(session: Session, site_id: str) -> tuple[Site, datetime | None]:
    """The site and until when its kiosk refuses typed PINs, in one query."""
    row = session.execute(
        select(Site, KioskAttempts.locked_until)
        .join(KioskAttempts, KioskAttempts.site_id == Site.id)
        .where(Site.id == site_id)
    ).first()
    if row is None:
        raise NotFound(f"No site {site_id!r}.", code="site_not_found")
    return row.Site, row.locked_until


def _attempts_row(session: Session, site_id: str) -> KioskAttempts:
    query = select(KioskAttempts).where(KioskAttempts.site_id == site_id)
    if is_postgres(session):
        query = query.with_for_update()
    return session.scalars(query).one()


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


def do_count_pin_failure(session: Session, site_id: str, now: datetime) -> int:
    """Count a wrong typed PIN; returns the lockout it starts, in seconds (0 for none).

    Only quiet time forgives earlier failures, never another recipient's right PIN: else an
    attacker would get fresh guesses after every pickup at a busy locker (docs/security.md).
    """
    row = _attempts_row(session, site_id)
    row.consecutive_failures = (
        attempts.recent_failures(row.consecutive_failures, row.last_failure_at, now) + 1
    )
    row.last_failure_at = now
    lockout = attempts.lockout_seconds(row.consecutive_failures)
    row.locked_until = now + timedelta(seconds=lockout) if lockout else None
    return lockout
