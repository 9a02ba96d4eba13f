"""Pickup credentials as values: PINs, link tokens and signed QR tokens.

A QR token is ``base64url(payload || signature)``; the signature is Ed25519 by the site's key
over a domain tag and the payload, so a locker holding only its site's public key checks a
token offline. Payload (big-endian):

====== ====== =====================================================================
bytes  field
====== ====== =====================================================================
1      format ``1``: both ids are ``prc_``/``sit_`` ULIDs, 16 bytes each;
              ``2``: any ids, each as a length byte and UTF-8
1      key    the site key version that signed it (1-255)
16/1+n parcel id
16/1+n site id
4      expiry unix seconds
2      nonce  random, so re-issued tokens for one parcel differ
====== ====== =====================================================================

With the usual ids a token is 104 bytes, 139 characters. The nonce only makes a re-issued
token a different string: unforgeability comes from the signature, single use and voiding
from the server's records. Secrets are plain ``str`` values: never log them.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from openlocker.access.models import KINDS
from openlocker.core.clock import as_utc
from openlocker.core.errors import Forbidden
from openlocker.core.ids import CROCKFORD
from openlocker.core.keys import Keyring, b64url, unb64url

PIN_LENGTH = 8
#: Digits of the recipient's phone number typed with a PIN (the lockout counts per suffix).
PHONE_SUFFIX_DIGITS = 4
LINK_TOKEN_BYTES = 16
#: The mask of every QR image of a token (page, email): segno's choice of the best of eight
#: costs it 16 ms or more of CPU, and any mask is valid for a reader.
QR_MASK = 0

FORMAT_ULID = 1
FORMAT_TEXT = 2
PARCEL_PREFIX = "prc"
SITE_PREFIX = "sit"
NONCE_BYTES = 2
SIGNATURE_BYTES = 64
#: Signed before the payload so a site key's signature on anything else never reads as a QR token.
_DOMAIN = b"openlocker/qr\x00"
_HEAD = struct.Struct(">BB")
_TAIL = struct.Struct(f">I{NONCE_BYTES}s")
_MAX_TOKEN_CHARS = 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_CROCKFORD_VALUE = {char: value for value, char in enumerate(CROCKFORD)}
_ULID_CHARS = 26


def generate_pin(length: int = PIN_LENGTH) -> str:
    """A uniformly random PIN of ``length`` decimal digits; leading zeros are kept."""
    if length < 1:
        raise ValueError("a PIN has at least one digit")
    return f"{secrets.randbelow(10**length):0{length}d}"


def generate_link_token() -> str:
    """A random, URL-safe token of 128 bits for the recipient's pickup link."""
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def credential_digest(keyring: Keyring, kind: str, site_id: str, secret: str) -> str:
    """What is stored for a credential: an HMAC under the server key, scoped to kind and site.

    The same PIN at two sites gives two unrelated digests, so a PIN means something only at
    its own site.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown credential kind {kind!r}")
    return keyring.digest(f"credential:{kind}", f"{site_id}\x00{secret}")


#: What a kiosk digests: typed PINs, scanned QR tokens, phone suffixes, courier codes.
KIOSK_KINDS = ("pin", "qr", "phone", "courier")


def kiosk_digest(key: bytes, kind: str, secret: str) -> str:
    """A code as a site's kiosk stores and looks it up: HMAC-SHA256 under the site's kiosk
    digest key (``Keyring.kiosk_digest_key``) over ``kind``, a zero byte and ``secret``, hex.

    Pure, so the kiosk runs it over what is typed or scanned (a phone as its
    ``phone_suffix``) and the server over what it issues.
    """
    if kind not in KIOSK_KINDS:
        raise ValueError(f"unknown kiosk digest kind {kind!r}")
    return hmac.new(key, kind.encode() + b"\x00" + secret.encode(), hashlib.sha256).hexdigest()


def _link_box(keyring: Keyring, link_token: str) -> AESGCM:
    # A PRF of the token under the server key: the stored link digest (another purpose)
    # does not give it, and neither does the server key without the token.
    return AESGCM(bytes.fromhex(keyring.digest("credential:link-box", link_token)))


def seal_for_link(keyring: Keyring, link_token: str, set_id: str, pin: str, qr: str) -> str:
    """The PIN and QR token sealed (AES-GCM) under a key only the link's holder can derive.

    Bound to the credential set ``set_id``: a box copied to another row does not open.
    """
    nonce = os.urandom(12)
    plain = f"{pin}\x00{qr}".encode()
    return b64url(nonce + _link_box(keyring, link_token).encrypt(nonce, plain, set_id.encode()))


def open_for_link(keyring: Keyring, link_token: str, set_id: str, sealed: str) -> tuple[str, str]:
    """The (PIN, QR token) that ``seal_for_link`` sealed; ``ValueError`` for another token."""
    raw = unb64url(sealed)
    try:
        plain = _link_box(keyring, link_token).decrypt(raw[:12], raw[12:], set_id.encode())
    except InvalidTag:
        raise ValueError("the box was not sealed for this link") from None
    pin, _, qr = plain.decode().partition("\x00")
    return pin, qr


def phone_suffix(phone: str | None) -> str | None:
    """The last ``PHONE_SUFFIX_DIGITS`` digits of a phone number, however it is written
    (``+48 601-234-567`` and ``601234567`` agree); None when it has fewer digits."""
    digits = "".join(char for char in phone or "" if char.isascii() and char.isdigit())
    return digits[-PHONE_SUFFIX_DIGITS:] if len(digits) >= PHONE_SUFFIX_DIGITS else None


def phone_tag(keyring: Keyring, site_id: str, suffix: str) -> str:
    """What is stored for a recipient's phone suffix at a site: an HMAC, like a credential.

    Typed PINs are counted per tag (``access.service``), so the tag is scoped to the site.
    """
    return keyring.digest("credential:phone", f"{site_id}\x00{suffix}")


@dataclass(frozen=True, slots=True)
class QrClaims:
    """What a QR token says. Trust it only when it came from ``verify_qr``."""

    version: int
    key_version: int
    parcel_id: str
    site_id: str
    expires_at: datetime
    nonce: bytes


def _ulid_bytes(identifier: str, prefix: str) -> bytes | None:
    """The 16 bytes of ``prefix_<ULID>``, or None when the id has another shape."""
    head, _, ulid = identifier.partition("_")
    if head != prefix or len(ulid) != _ULID_CHARS or ulid[0] > "7":
        return None
    value = 0
    for char in ulid:
        digit = _CROCKFORD_VALUE.get(char)
        if digit is None:
            return None
        value = value << 5 | digit
    return value.to_bytes(16, "big")


def _ulid_text(raw: bytes, prefix: str) -> str:
    value = int.from_bytes(raw, "big")
    chars = [CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return f"{prefix}_{''.join(chars)}"


def _text_field(identifier: str) -> bytes:
    encoded = identifier.encode()
    if not 1 <= len(encoded) <= 255:
        raise ValueError(f"id {identifier!r} must be 1-255 bytes of UTF-8")
    return bytes([len(encoded)]) + encoded


def _encode_ids(parcel_id: str, site_id: str) -> tuple[int, bytes]:
    """The payload format and id bytes: 32 bytes for the usual ULIDs, length-prefixed text else."""
    parcel = _ulid_bytes(parcel_id, PARCEL_PREFIX)
    site = _ulid_bytes(site_id, SITE_PREFIX)
    if parcel is not None and site is not None:
        return FORMAT_ULID, parcel + site
    return FORMAT_TEXT, _text_field(parcel_id) + _text_field(site_id)


def issue_qr(
    key: Ed25519PrivateKey,
    *,
    parcel_id: str,
    site_id: str,
    expires_at: datetime,
    key_version: int = 1,
) -> str:
    """A QR token for ``parcel_id`` at ``site_id``, valid until ``expires_at`` (to the second,
    rounded down), signed with the site's key of ``key_version``. Each call draws a new nonce.
    """
    if not 1 <= key_version <= 255:
        raise ValueError("key_version must be 1-255")
    expiry = int(as_utc(expires_at).timestamp())
    if not 0 <= expiry < 2**32:
        raise ValueError("expires_at must fall between 1970 and 2106")
    version, ids = _encode_ids(parcel_id, site_id)
    payload = (
        _HEAD.pack(version, key_version)
        + ids
        + _TAIL.pack(expiry, secrets.token_bytes(NONCE_BYTES))
    )
    return b64url(payload + key.sign(_DOMAIN + payload))


def _invalid() -> Forbidden:
    return Forbidden("The code is not valid at this locker.", code="invalid_code")


def _split(token: str) -> tuple[bytes, bytes]:
    """The payload and signature of a well-formed token; ``invalid_code`` otherwise."""
    if len(token) > _MAX_TOKEN_CHARS or not _B64URL.fullmatch(token):
        raise _invalid()
    try:
        raw = unb64url(token)
    except (binascii.Error, ValueError):
        raise _invalid() from None
    # One token, one spelling: reject encodings with stray low bits.
    if b64url(raw) != token or len(raw) <= SIGNATURE_BYTES:
        raise _invalid()
    return raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]


def _parse(payload: bytes) -> QrClaims:
    if len(payload) < _HEAD.size:
        raise _invalid()
    version, key_version = _HEAD.unpack_from(payload)
    body = payload[_HEAD.size :]
    if version == FORMAT_ULID:
        if len(body) != 32 + _TAIL.size:
            raise _invalid()
        parcel_id = _ulid_text(body[:16], PARCEL_PREFIX)
        site_id = _ulid_text(body[16:32], SITE_PREFIX)
        tail = body[32:]
    elif version == FORMAT_TEXT:
        ids = []
        for _ in range(2):
            if not body or len(body) < 1 + body[0]:
                raise _invalid()
            try:
                ids.append(body[1 : 1 + body[0]].decode())
            except UnicodeDecodeError:
                raise _invalid() from None
            body = body[1 + body[0] :]
        parcel_id, site_id = ids
        if len(body) != _TAIL.size or not parcel_id or not site_id:
            raise _invalid()
        tail = body
    else:
        raise _invalid()
    expiry, nonce = _TAIL.unpack(tail)
    return QrClaims(
        version, key_version, parcel_id, site_id, datetime.fromtimestamp(expiry, UTC), nonce
    )


def read_qr(token: str) -> QrClaims:
    """What ``token`` claims, without checking its signature (to pick the key to check it with).

    Raises ``Forbidden`` with ``invalid_code`` when the token is not a well-formed QR token.
    """
    payload, _ = _split(token)
    return _parse(payload)


def verify_qr(token: str, public_key: Ed25519PublicKey, *, site_id: str, now: datetime) -> QrClaims:
    """The claims of a token signed by ``public_key`` for ``site_id`` and still valid at ``now``.

    Needs nothing but the site's public key, so a locker runs it offline. Raises ``Forbidden``
    with ``invalid_code`` (malformed, or not signed by this key), ``wrong_site`` (made for
    another site) or ``code_expired``. Single use and voiding are the caller's records.
    """
    payload, signature = _split(token)
    claims = _parse(payload)
    if claims.site_id != site_id:
        raise Forbidden("This code is for another locker site.", code="wrong_site")
    try:
        public_key.verify(signature, _DOMAIN + payload)
    except InvalidSignature:
        raise _invalid() from None
    if as_utc(now) >= claims.expires_at:
        raise Forbidden("The code has expired.", code="code_expired")
    return claims
