"""The server secret every key derives from (``core.keys``).

``OPENLOCKER_SECRET_KEY`` when set. Otherwise SQLite, the zero-setup default, keeps a random
secret in its data folder, made on the first start; PostgreSQL refuses to start, since its
server processes may run on several machines and must all share one secret.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from openlocker.core.config import Settings

SECRET_FILE = "secret.key"
MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class SecretKeyMissing(Exception):
    """No secret to start with; the message says how to provide one."""


def resolve_secret_key(settings: Settings) -> str:
    """The secret for ``settings``: ``settings.secret_key``, else on SQLite the one in
    ``settings.data_folder / SECRET_FILE`` (made with mode 0600 and announced on stderr the
    first time). Raises ``SecretKeyMissing`` on other databases, or when that file is empty.
    """
    if settings.secret_key:
        return settings.secret_key
    if make_url(settings.database_url).get_backend_name() != "sqlite":
        raise SecretKeyMissing(
            "OPENLOCKER_SECRET_KEY is not set. On PostgreSQL every server process needs the "
            f"same secret: make one with\n    {MAKE_ONE}\nset OPENLOCKER_SECRET_KEY to it "
            "wherever OpenLocker runs, and back it up."
        )
    return _kept_secret(settings.data_folder / SECRET_FILE)


def _kept_secret(path: Path) -> str:
    """The secret in ``path``, made first when there is none yet."""
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    # Written whole under a private name (mkstemp: O_EXCL, 0600), then linked into place,
    # which fails if the name exists: of processes starting at once one wins, the others
    # read its complete file.
    descriptor, draft = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            return _read(path)
    finally:
        os.unlink(draft)
    _sync_folder(path.parent)
    print(
        f"OpenLocker made its secret key: {path}. Back this up: without it no API key, "
        "pickup code or QR code issued here works. (Or set OPENLOCKER_SECRET_KEY.)",
        file=sys.stderr,
    )
    return secret


def _read(path: Path) -> str:
    secret = path.read_text().strip()
    if not secret:
        raise SecretKeyMissing(
            f"{path} is empty: restore it from your backup, or set OPENLOCKER_SECRET_KEY."
        )
    return secret


def _sync_folder(folder: Path) -> None:
    """Make the new file's name survive a power cut (where folders can be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
