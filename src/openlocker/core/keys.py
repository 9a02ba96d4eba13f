"""Keys derived from the server secret: HMACs for codes, Ed25519 keys for sites and for
the audit log's checkpoints, and sealed boxes for credentials that wait in the outbox.

Nothing here stores a code: callers keep only ``digest(...)`` values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Decode base64url; raises ``ValueError`` on any character outside the alphabet."""
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


#: Derived site keys a process keeps (a key is 32 bytes; a network has thousands of sites).
_MAX_SITE_KEYS = 100_000


class Keyring:
    """Every key the server derives from ``OPENLOCKER_SECRET_KEY``."""

    def __init__(self, secret_key: str) -> None:
        self._root = hashlib.sha256(secret_key.encode()).digest()
        self._digest_key = self._derive(b"digest")
        self._box = Sealer(self._derive(b"outbox-box"), b"outbox")
        self._site_keys: dict[tuple[str, int], Ed25519PrivateKey] = {}
        self._audit_key = Ed25519PrivateKey.from_private_bytes(self._derive(b"audit-signing"))
        public = self._audit_key.public_key()
        self._audit_public_key = b64url(public.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def _derive(self, purpose: bytes) -> bytes:
        return hmac.new(self._root, b"openlocker:" + purpose, hashlib.sha256).digest()

    def digest(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` for ``purpose`` (hex); what is stored instead of a code."""
        message = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._digest_key, message, hashlib.sha256).hexdigest()

    def kiosk_digest_key(self, site_id: str) -> bytes:
        """The key a site's kiosk digests codes with (``access.credentials.kiosk_digest``):
        derived for that site alone, so one kiosk's store opens nothing at another site."""
        return self._derive(f"kiosk-digest:{site_id}".encode())

    def site_signing_key(self, site_id: str, version: int = 1) -> Ed25519PrivateKey:
        """The site's Ed25519 key; derived, so no private key is ever stored (on disk: each
        process keeps the keys it derived, as it keeps the secret they come from)."""
        key = self._site_keys.get((site_id, version))
        if key is None:
            seed = self._derive(f"site-signing:{site_id}:v{version}".encode())
            key = Ed25519PrivateKey.from_private_bytes(seed)
            if len(self._site_keys) >= _MAX_SITE_KEYS:
                self._site_keys.clear()
            self._site_keys[(site_id, version)] = key
        return key

    def site_public_key(self, site_id: str, version: int = 1) -> str:
        """The site's public key (base64url, raw 32 bytes), for its kiosk."""
        public = self.site_signing_key(site_id, version).public_key()
        return b64url(public.public_bytes(Encoding.Raw, PublicFormat.Raw))

    def audit_signing_key(self) -> Ed25519PrivateKey:
        """The key that signs the audit log's checkpoints; derived, never stored."""
        return self._audit_key

    def audit_public_key(self) -> str:
        """The checkpoints' public key (base64url, raw 32 bytes), for operators who verify."""
        return self._audit_public_key

    def seal(self, plaintext: str) -> str:
        """Encrypt with AES-GCM; for credentials waiting in the outbox."""
        return self._box.seal(plaintext)

    def unseal(self, sealed: str) -> str:
        return self._box.unseal(sealed)

    def sealer(self, purpose: str) -> Sealer:
        """An AES-GCM box under a key derived for ``purpose`` alone (``webhook-secret`` …), for
        secrets the server must read back, unlike codes, which it only compares."""
        return Sealer(self._derive(f"sealer:{purpose}".encode()), purpose.encode())


class Sealer:
    """AES-GCM with a random nonce; ``bound_to`` ties a sealed value to its row (its id), so
    it opens only there."""

    def __init__(self, key: bytes, purpose: bytes) -> None:
        self._aead = AESGCM(key)
        self._purpose = purpose

    def seal(self, plaintext: str, bound_to: str = "") -> str:
        nonce = os.urandom(12)
        return b64url(nonce + self._aead.encrypt(nonce, plaintext.encode(), self._aad(bound_to)))

    def unseal(self, sealed: str, bound_to: str = "") -> str:
        """The plaintext; raises ``cryptography.exceptions.InvalidTag`` for anything else."""
        raw = unb64url(sealed)
        return self._aead.decrypt(raw[:12], raw[12:], self._aad(bound_to)).decode()

    def _aad(self, bound_to: str) -> bytes:
        # Without a row the associated data is the purpose alone, as the outbox box always was.
        return self._purpose + b"\x00" + bound_to.encode() if bound_to else self._purpose


def load_public_key(encoded: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(unb64url(encoded))
