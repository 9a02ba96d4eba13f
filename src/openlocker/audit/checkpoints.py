"""Signed checkpoints of the audit chain, as Certificate Transparency's signed tree heads.

A checkpoint says "the chain had ``count`` events and its head hash was ``hash`` at ``at``",
signed with the server's audit key (``Keyring.audit_signing_key``), so that anyone with the
public key can check it. The sealer stores each one in the database and appends it to
``audit-checkpoints.jsonl`` in the data folder; someone who can write to the database but
holds neither the secret key nor that file can then only remove or rewrite events sealed
after the newest checkpoint.

The signed bytes are ``b"openlocker/audit-checkpoint\\0"``, then the count (8 bytes), the
head hash (32 bytes) and ``at`` in unix microseconds (8 bytes, signed), all big-endian. A
file line, and an item of ``GET /v1/audit/checkpoints``, is the JSON object of
``to_json``: ``count``, ``hash`` (hex), ``at`` (ISO 8601), ``key_id``, ``signature``.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from openlocker.core.clock import as_utc
from openlocker.core.keys import b64url, load_public_key, unb64url

FILE_NAME = "audit-checkpoints.jsonl"
#: Keeps a checkpoint's signature from ever reading as anything else the key could sign.
DOMAIN = b"openlocker/audit-checkpoint\0"
_BODY = struct.Struct(">Q32sq")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(r"[0-9a-f]{16}")
#: Where a process that starts looks for the newest checkpoint: lines are appended in order
#: of count, so the newest is among the last ones (about 240 lines).
_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Checkpoint:
    count: int
    hash: str
    at: datetime
    key_id: str
    #: Ed25519 over ``signed_bytes(count, hash, at)``, base64url.
    signature: str


def key_id(public_key: Ed25519PublicKey) -> str:
    """A public key's short name: the first 8 bytes of the SHA-256 of its raw bytes, hex."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signed_bytes(count: int, head_hash: str, at: datetime) -> bytes:
    micros = (as_utc(at) - _EPOCH) // timedelta(microseconds=1)
    return DOMAIN + _BODY.pack(count, bytes.fromhex(head_hash), micros)


def sign_checkpoint(key: Ed25519PrivateKey, count: int, head_hash: str, at: datetime) -> Checkpoint:
    """The checkpoint of a chain of ``count`` events whose head is ``head_hash``, at ``at``."""
    signature = b64url(key.sign(signed_bytes(count, head_hash, at)))
    return Checkpoint(count, head_hash, as_utc(at), key_id(key.public_key()), signature)


def signature_valid(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    """Whether ``public_key`` signed exactly this count, hash and time."""
    try:
        public_key.verify(
            unb64url(checkpoint.signature),
            signed_bytes(checkpoint.count, checkpoint.hash, checkpoint.at),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def to_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "count": checkpoint.count,
        "hash": checkpoint.hash,
        "at": checkpoint.at.isoformat(timespec="microseconds"),
        "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }


def from_json(value: Any) -> Checkpoint:
    """A checkpoint from its JSON object; ``ValueError`` when it is not one, spelled the one
    way ``to_json`` spells it (the signature is not checked here)."""
    if not isinstance(value, dict):
        raise ValueError("not an object")
    count, head_hash, at, signer, signature = (
        value.get(name) for name in ("count", "hash", "at", "key_id", "signature")
    )
    if type(count) is not int or not 1 <= count < 2**63:
        raise ValueError("count must be a whole number from 1")
    if not isinstance(head_hash, str) or not _HEX64.fullmatch(head_hash):
        raise ValueError("hash must be 64 lowercase hex digits")
    if not isinstance(signer, str) or not _KEY_ID.fullmatch(signer):
        raise ValueError("key_id must be 16 lowercase hex digits")
    if not isinstance(at, str):
        raise ValueError("at must be an ISO 8601 time")
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        raise ValueError("at must carry its offset from UTC")
    if not isinstance(signature, str) or len(signature) != 86:
        raise ValueError("signature must be 64 bytes in base64url")
    if b64url(unb64url(signature)) != signature:
        raise ValueError("signature must be 64 bytes in base64url")
    return Checkpoint(count, head_hash, as_utc(moment), signer, signature)


def parse_line(line: bytes) -> Checkpoint | None:
    """The checkpoint a line of a checkpoint file holds, or ``None``."""
    try:
        return from_json(orjson.loads(line))
    except ValueError:  # orjson.JSONDecodeError is one
        return None


def read_checkpoints(path: Path) -> Iterator[tuple[str, Checkpoint | None]]:
    """Every checkpoint in ``path`` with where it stands (``line 7``); ``None`` for an entry
    that is not one. Reads JSON lines, each a checkpoint or an answer of
    ``GET /v1/audit/checkpoints``, or one such answer (or a list) spread over many lines."""
    with path.open("rb") as file:
        try:
            orjson.loads(file.readline() or b"null")
        except orjson.JSONDecodeError:  # not JSON lines: one document (say, ``jq .``'s output)
            file.seek(0)
            try:
                document = orjson.loads(file.read())
            except orjson.JSONDecodeError:
                yield "line 1", None
                return
            yield from _entries(document, "the document")
            return
        file.seek(0)
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                if line.endswith(b"\n"):  # else a sealer is still writing it
                    yield f"line {number}", None
                continue
            yield from _entries(value, f"line {number}")


def _entries(value: Any, where: str) -> Iterator[tuple[str, Checkpoint | None]]:
    if isinstance(value, dict) and isinstance(value.get("items"), list):
        value = value["items"]
    if isinstance(value, list):
        entries = [(f"{where}, item {i}", entry) for i, entry in enumerate(value, 1)]
    else:
        entries = [(where, value)]
    for place, entry in entries:
        try:
            yield place, from_json(entry)
        except ValueError:
            yield place, None


class Witness:
    """What this process knows of one checkpoint file and one key: the newest checkpoint it
    wrote, read in the file or was shown by the sealer, kept in memory even when the file is
    later cut or deleted. Safe to share between threads."""

    def __init__(self, path: Path, public_key: Ed25519PublicKey) -> None:
        self.path = path
        self.key_id = key_id(public_key)
        self._public_key = public_key
        self._lock = threading.Lock()
        self._newest: Checkpoint | None = None
        self._file: tuple[int, int] | None = None
        self._read_to = 0
        self._verified: set[Checkpoint] = set()

    def newest(self) -> Checkpoint | None:
        """The newest checkpoint of this key seen so far; reads the file only where it grew."""
        with self._lock:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return self._newest
            start = None
            if (stat.st_dev, stat.st_ino) != self._file or stat.st_size < self._read_to:
                # First look, or the file was replaced or cut: only its tail can be newer.
                self._file = (stat.st_dev, stat.st_ino)
                start = max(0, stat.st_size - _TAIL_BYTES)
            if start is not None or stat.st_size > self._read_to:
                self._read_lines(start)
            return self._newest

    def _read_lines(self, tail: int | None) -> None:
        with self.path.open("rb") as file:
            if tail is None:
                file.seek(self._read_to)
            elif tail > 0:
                file.seek(tail - 1)
                file.readline()  # the tail may start inside a line: skip to the next whole one
            self._read_to = file.tell()
            for line in file:
                if not line.endswith(b"\n"):
                    break  # still being written: read it next time
                self._read_to += len(line)
                checkpoint = parse_line(line)
                if checkpoint is not None and checkpoint.key_id == self.key_id:
                    self._remember(checkpoint)

    def remember(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` if it is newer than the newest known (it must be verified)."""
        with self._lock:
            self._remember(checkpoint)

    def _remember(self, checkpoint: Checkpoint) -> None:
        if self._newest is None or checkpoint.count > self._newest.count:
            self._newest = checkpoint

    def verified(self, checkpoint: Checkpoint) -> bool:
        """Whether this witness's key signed ``checkpoint`` (each one is checked once)."""
        with self._lock:
            if checkpoint in self._verified:
                return True
            if checkpoint.key_id != self.key_id:
                return False
            if not signature_valid(checkpoint, self._public_key):
                return False
            if len(self._verified) >= 8:
                self._verified.clear()
            self._verified.add(checkpoint)
            return True

    def append(self, checkpoint: Checkpoint) -> None:
        """Remember ``checkpoint`` and append it to the file as one line, fsynced."""
        self.remember(checkpoint)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps(to_json(checkpoint)) + b"\n"
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a line a crash cut short stays on a line of its own
            while line:
                line = line[os.write(fd, line) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if size == 0:
            _fsync_folder(self.path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a new file's name durable too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_witnesses: dict[tuple[Path, str], Witness] = {}
_witnesses_lock = threading.Lock()


def witness(path: Path, public_key: str) -> Witness:
    """This process's witness of the checkpoint file ``path`` for ``public_key`` (base64url)."""
    key = (path.absolute(), public_key)
    with _witnesses_lock:
        found = _witnesses.get(key)
        if found is None:
            found = _witnesses[key] = Witness(key[0], load_public_key(public_key))
        return found
